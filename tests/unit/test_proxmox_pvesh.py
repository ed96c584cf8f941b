"""The pvesh client: exact commands for every `api` builder, answers and errors as
pvesh prints them, and the SSH runner against the SSH server in the test process
(tests/unit/ssh_server.py), which is not a Proxmox host: it has no pvesh.

The stdout/stderr shapes are hand-made from pve-manager's and pve-common's source,
not captured from a live host: `--output-format json` prints `to_json(data)` and a
newline (CLIFormatter::print_api_result), nothing for a `null` result; a task runs in
the foreground, its log on stdout before the UPID (RESTEnvironment::fork_worker, 'cli'
environment); an error is the handler's `die` text on stderr (PVE::Exception::stringify:
"CODE MSG", then "name: message" per parameter, then the usage), a lock wait prints
"trying to acquire lock..." first (PVE::Tools::lock_file_full)."""

from __future__ import annotations

import json
import logging
import shlex

import pytest

from phoenix_tasks.core.argv import shell_command
from phoenix_tasks.core.errors import PhoenixError
from phoenix_tasks.core.model import ProxmoxSettings
from phoenix_tasks.providers.proxmox import api
from phoenix_tasks.providers.proxmox.http import ApiUnreachable
from phoenix_tasks.providers.proxmox.pvesh import (
    CHANGE_TIMEOUT_S, READ_TIMEOUT_S, PveshClient, PveshUnavailable, api_error, pvesh_argv, ssh_runner,
)
from phoenix_tasks.providers.proxmox.task_wait import ApiError, LOCK_TIMEOUT, wait_task, when_unlocked

from proxmox_recorded import PUBLIC_KEY, data
from ssh_server import silent, ssh_server

UPID = data("clone_response.json")


def settings(**kw) -> ProxmoxSettings:
    values = dict(host="10.0.0.13", node="phoenix", ssh_user="root", ssh_port=22, api_token_env=None, api="ssh")
    values.update(kw)
    return ProxmoxSettings(**values)


class FakeRun:
    """Records each command and answers (exit, stdout, stderr) in turn."""

    def __init__(self, *answers):
        self.answers = list(answers) or [(0, "", "")]
        self.calls: list[tuple[list[str], bool, float]] = []

    def __call__(self, argv, *, mutating, timeout_s):
        self.calls.append((list(argv), mutating, timeout_s))
        return self.answers.pop(0) if len(self.answers) > 1 else self.answers[0]


def json_line(doc) -> str:
    return json.dumps(doc, sort_keys=True, separators=(",", ":")) + "\n"


# -- exact commands ------------------------------------------------------------------------

JSON = ["--output-format", "json"]
SSHKEYS = api.encode_sshkeys(PUBLIC_KEY + "\n")


@pytest.mark.parametrize("call, argv", [
    (api.cluster_vms(), ["pvesh", "get", "/cluster/resources", "--type", "vm", *JSON]),
    (api.vm_config("phoenix", 1002), ["pvesh", "get", "/nodes/phoenix/qemu/1002/config", *JSON]),
    (api.task_status("phoenix", UPID), ["pvesh", "get", f"/nodes/phoenix/tasks/{UPID}/status", *JSON]),
    (api.clone("phoenix", 9000, 1002, "drphoenix"),
     ["pvesh", "create", "/nodes/phoenix/qemu/9000/clone", "--newid", "1002", "--name", "drphoenix", "--full", "1",
      *JSON]),
    (api.clone("phoenix", 9000, 1002, "drphoenix", target_node="pve2", storage="local-lvm"),
     ["pvesh", "create", "/nodes/phoenix/qemu/9000/clone", "--newid", "1002", "--name", "drphoenix", "--full", "1",
      "--target", "pve2", "--storage", "local-lvm", *JSON]),
    (api.set_config("phoenix", 1002, {"cores": "4", "memory": "4096", "sshkeys": SSHKEYS}),
     ["pvesh", "create", "/nodes/phoenix/qemu/1002/config", "--cores", "4", "--memory", "4096", "--sshkeys", SSHKEYS,
      *JSON]),
    (api.resize("phoenix", 1002, "scsi0", 32), ["pvesh", "set", "/nodes/phoenix/qemu/1002/resize", "--disk", "scsi0",
                                                "--size", "32G", *JSON]),
    (api.regenerate_cloudinit("phoenix", 1002), ["pvesh", "set", "/nodes/phoenix/qemu/1002/cloudinit", *JSON]),
    (api.start("phoenix", 1002), ["pvesh", "create", "/nodes/phoenix/qemu/1002/status/start", *JSON]),
], ids=lambda v: v.path if isinstance(v, api.ApiCall) else None)
def test_every_builder_becomes_one_exact_pvesh_command(call, argv):
    assert pvesh_argv(call) == argv
    run = FakeRun((0, json_line(UPID) if call.returns_task else json_line({}), ""))
    PveshClient(settings(), run=run).request(call)
    assert run.calls == [(argv, call.mutating, CHANGE_TIMEOUT_S if call.mutating else READ_TIMEOUT_S)]


def test_the_upid_path_is_raw_and_sshkeys_go_as_the_api_encodes_them():
    # pvesh takes path segments, not a URL: the UPID's ':', '@', '!' stay as they are.
    assert pvesh_argv(api.task_status("phoenix", UPID))[2] == (
        "/nodes/phoenix/tasks/UPID:phoenix:000A1B2C:01F2E3D4:6650A1B2:qmclone:9000:root@pam!phoenix:/status")
    # qemu-server URL-decodes sshkeys itself; pvesh passes the value through untouched.
    assert SSHKEYS.startswith("ssh-ed25519%20AAAA") and SSHKEYS.endswith("%0A")
    argv = pvesh_argv(api.set_config("phoenix", 1002, {"sshkeys": SSHKEYS}))
    assert argv[argv.index("--sshkeys") + 1] == SSHKEYS


HOSTILE = "dev1; rm -rf / $(id) `id` 'single' \"double\" \\ \n| & > < *"


def test_a_hostile_value_reaches_pvesh_as_one_argument_quoted_once():
    argv = pvesh_argv(api.set_config("phoenix", 1002, {"description": HOSTILE}))
    assert argv[3:5] == ["--description", HOSTILE]
    line = shell_command(argv)
    assert line == ("pvesh create /nodes/phoenix/qemu/1002/config --description "
                    "'dev1; rm -rf / $(id) `id` '\"'\"'single'\"'\"' \"double\" \\ \n| & > < *' --output-format json")
    assert shlex.split(line) == argv


@pytest.mark.parametrize("name", ["x; id", "--full", "Name", "", "output-format", "quiet", "noproxy"])
def test_a_parameter_name_that_is_not_one_or_is_pvesh_s_own_option_is_refused(name):
    with pytest.raises(ValueError, match="not a Proxmox API parameter name"):
        pvesh_argv(api.set_config("phoenix", 1002, {name: "1"}))


# -- answers -------------------------------------------------------------------------------

def test_a_read_answers_the_json_pvesh_printed():
    doc = data("cluster_resources_vm.json")
    client = PveshClient(settings(), run=FakeRun((0, json_line(doc), "")))
    assert client.request(api.cluster_vms()) == doc


def test_no_output_is_none():
    # PUT .../cloudinit returns null: print_api_result prints nothing at all
    assert PveshClient(settings(), run=FakeRun((0, "", ""))).request(api.regenerate_cloudinit("phoenix", 1002)) is None
    assert PveshClient(settings(), run=FakeRun((0, "\n", ""))).request(api.vm_config("phoenix", 1002)) is None


CLONE_LOG = ("create full clone of drive scsi0 (local-lvm:base-9000-disk-0)\n"
             "  Logical volume \"vm-1002-disk-0\" created.\n"
             "transferred 0.0 B of 16.0 GiB (0.00%)\n"
             "transferred 16.0 GiB of 16.0 GiB (100.00%)\n")


def test_a_task_run_in_the_foreground_answers_the_upid_after_its_log():
    run = FakeRun((0, CLONE_LOG + json_line(UPID), ""))
    assert PveshClient(settings(), run=run).request(api.clone("phoenix", 9000, 1002, "drphoenix")) == UPID


def test_a_failed_task_exits_0_and_is_read_from_its_status_like_over_https():
    # fork_worker prints the task's error on stderr and still returns the UPID (exit 0)
    run = FakeRun((0, CLONE_LOG + json_line(UPID), "clone failed: no space left on device\n"),
                  (0, json_line(data("task_status_failed.json")), ""))
    client = PveshClient(settings(), run=run)
    upid = client.request(api.clone("phoenix", 9000, 1002, "drphoenix"))
    result = wait_task(lambda: client.request(api.task_status("phoenix", upid)), timeout_s=10, interval_s=1,
                       clock=lambda: 0.0, sleep=lambda s: None)
    assert not result.ok and result.exitstatus == data("task_status_failed.json")["exitstatus"]
    assert [c[0][1] for c in run.calls] == ["create", "get"]


@pytest.mark.parametrize("stdout", ["not json\n", CLONE_LOG])
def test_output_that_is_not_json_is_one_line_naming_the_call(stdout):
    with pytest.raises(ApiUnreachable) as exc:
        PveshClient(settings(), run=FakeRun((0, stdout, ""))).request(api.clone("phoenix", 9000, 1002, "x"))
    assert str(exc.value) == ("pvesh on 10.0.0.13:22 answered POST /nodes/phoenix/qemu/9000/clone "
                              "with something that is not JSON")


# -- errors --------------------------------------------------------------------------------

def test_vm_locked_is_an_api_error_with_its_lock_and_when_unlocked_waits_for_it():
    run = FakeRun((2, "", "VM is locked (clone)\n"), (0, json_line(UPID), ""))
    client = PveshClient(settings(), run=run)
    with pytest.raises(ApiError) as exc:
        client.request(api.start("phoenix", 1002))
    assert (exc.value.status, exc.value.reason, exc.value.lock) == (500, "VM is locked (clone)", "clone")
    run = FakeRun((2, "", "VM is locked (clone)\n"), (0, json_line(UPID), ""))
    client = PveshClient(settings(), run=run)
    waited = []
    assert when_unlocked(lambda: client.request(api.start("phoenix", 1002)), wait_for_lock=waited.append) == UPID
    assert waited == ["clone"]


def test_a_lock_timeout_is_its_message_not_the_lock_wait_before_it():
    stderr = "trying to acquire lock...\ncan't lock file '/var/lock/qemu-server/lock-1002.conf' - got timeout\n"
    with pytest.raises(ApiError) as exc:
        PveshClient(settings(), run=FakeRun((255, "", stderr))).request(api.resize("phoenix", 1002, "scsi0", 32))
    assert exc.value.reason == "can't lock file '/var/lock/qemu-server/lock-1002.conf' - got timeout"
    assert LOCK_TIMEOUT.search(exc.value.reason) and exc.value.lock is None


def test_a_parameter_error_keeps_its_status_and_each_parameter_not_the_usage():
    stderr = ("400 Parameter verification failed.\n"
              "size: value does not match the regex pattern\n"
              "disk: value 'scsi9' does not have a value in the enumeration 'ide0, scsi0'\n"
              "\n"
              "pvesh set <api_path> --disk <string> --size <string> [OPTIONS] [FORMAT_OPTIONS]\n")
    err = api_error(255, stderr)
    assert (err.status, err.reason) == (400, "Parameter verification failed. (disk: value 'scsi9' does not have a "
                                             "value in the enumeration 'ide0, scsi0'; size: value does not match "
                                             "the regex pattern)")


@pytest.mark.parametrize("exit_code, stderr, reason", [
    (2, "Configuration file 'nodes/phoenix/qemu-server/1009.conf' does not exist\n",
     "Configuration file 'nodes/phoenix/qemu-server/1009.conf' does not exist"),
    (1, "No 'get' handler defined for '/nodes/phoenix/qemu/1002/nothing'\n",
     "No 'get' handler defined for '/nodes/phoenix/qemu/1002/nothing'"),
    (255, "WARN: something to note\n  unable to create VM 1002 - storage 'fast' does not exist  \n",
     "unable to create VM 1002 - storage 'fast' does not exist"),
    (13, "", "pvesh exited 13 with no error message"),
    (127, "some handler died\n", "some handler died"),  # 127 is only "not found" when the shell says so
])
def test_any_other_failure_is_an_api_error_with_the_first_line_that_says_something(exit_code, stderr, reason):
    with pytest.raises(ApiError) as exc:
        PveshClient(settings(), run=FakeRun((exit_code, "", stderr))).request(api.vm_config("phoenix", 1002))
    assert (exc.value.status, exc.value.reason) == (500, reason)


@pytest.mark.parametrize("exit_code, stderr, says", [
    (127, "bash: line 1: pvesh: command not found\n", "pvesh is not on 10.0.0.13:22 (exit 127: bash: line 1: "
                                                      "pvesh: command not found); is it a Proxmox VE host?"),
    (255, "please run as root\n", "pvesh on 10.0.0.13:22 refuses user root: it runs only as root"),
])
def test_no_pvesh_or_not_root_is_said_plainly(exit_code, stderr, says):
    with pytest.raises(PveshUnavailable) as exc:
        PveshClient(settings(), run=FakeRun((exit_code, "", stderr))).request(api.cluster_vms())
    assert str(exc.value).startswith(says) and "\n" not in str(exc.value)
    assert isinstance(exc.value, ApiUnreachable)


def test_repr_and_log_hold_no_secret_and_name_the_host(caplog):
    caplog.set_level(logging.DEBUG)
    client = PveshClient(settings(api_token_env="PHOENIX_PROXMOX_API_TOKEN"), run=FakeRun((0, "", "WARN: x\n")))
    client.request(api.vm_config("phoenix", 1002))
    assert repr(client) == str(client) == "PveshClient(ssh://root@10.0.0.13:22, pvesh)"
    assert client.where == "10.0.0.13:22"
    assert "GET /nodes/phoenix/qemu/1002/config" in caplog.text


# -- the SSH runner, against the SSH server in the test process ----------------------------

def local(server_port, tmp_path, **kw) -> ProxmoxSettings:
    values = dict(host="127.0.0.1", ssh_port=server_port, ssh_key_file=tmp_path / "id_rsa",
                  ssh_host_key_policy="accept-new", ssh_known_hosts_file=tmp_path / "known_hosts",
                  ssh_connect_timeout_s=5.0)
    values.update(kw)
    return settings(**values)


def test_the_runner_runs_the_quoted_line_and_answers_exit_stdout_stderr(tmp_path):
    with ssh_server(tmp_path) as server:
        run = ssh_runner(local(server.port, tmp_path))
        try:
            assert run(["echo", "it", "works"], mutating=False, timeout_s=5) == (0, "it works\n", "")
        finally:
            run.close()
    assert server.commands == ["echo it works"]
    assert "127.0.0.1" in (tmp_path / "known_hosts").read_text()  # accept-new recorded the host key


def test_the_final_line_on_the_host_is_the_single_quoting_of_the_argv(tmp_path):
    # The test server records the exact line it got; it has no pvesh (nor a shell).
    call = api.set_config("phoenix", 1002, {"description": HOSTILE})
    with ssh_server(tmp_path) as server, PveshClient(local(server.port, tmp_path),
                                                     run=ssh_runner(local(server.port, tmp_path))) as client:
        with pytest.raises(PhoenixError):
            client.request(call)
    assert server.commands == [shell_command(pvesh_argv(call))]
    assert shlex.split(server.commands[0]) == pvesh_argv(call)


def test_a_host_without_pvesh_is_said_plainly_through_ssh(tmp_path):
    with ssh_server(tmp_path) as server, PveshClient(local(server.port, tmp_path),
                                                     run=ssh_runner(local(server.port, tmp_path))) as client:
        with pytest.raises(PveshUnavailable) as exc:
            client.request(api.cluster_vms())
    assert server.commands == ["pvesh get /cluster/resources --type vm --output-format json"]
    assert str(exc.value) == (f"pvesh is not on 127.0.0.1:{server.port} (exit 127: sh: pvesh get /cluster/resources "
                              "--type vm --output-format json: not found); is it a Proxmox VE host? "
                              "(proxmox.api 'ssh' runs pvesh there)")


def test_without_a_key_file_the_keys_in_home_ssh_are_offered(tmp_path, monkeypatch):
    home = tmp_path / "home"
    (home / ".ssh").mkdir(parents=True)
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.delenv("SSH_AUTH_SOCK", raising=False)
    with ssh_server(tmp_path) as server:
        (home / ".ssh" / "id_rsa").write_bytes(server.key_file.read_bytes())
        run = ssh_runner(local(server.port, tmp_path, ssh_key_file=None))
        try:
            assert run(["echo", "agent-less"], mutating=False, timeout_s=5)[:2] == (0, "agent-less\n")
        finally:
            run.close()


def test_an_ssh_failure_is_one_line_naming_host_and_port(tmp_path):
    with silent() as port:
        client = PveshClient(local(port, tmp_path, ssh_connect_timeout_s=0.5),
                             run=ssh_runner(local(port, tmp_path, ssh_connect_timeout_s=0.5)))
        with pytest.raises(ApiUnreachable) as exc:
            client.request(api.cluster_vms())
        client.close()
    message = str(exc.value)
    assert message.startswith(f"proxmox host: SSH to 127.0.0.1:{port} failed")
    assert "\n" not in message


def test_a_strict_policy_without_the_host_in_known_hosts_refuses_to_connect(tmp_path):
    (tmp_path / "known_hosts").write_text("")
    with ssh_server(tmp_path) as server:
        run = ssh_runner(local(server.port, tmp_path, ssh_host_key_policy="strict"))
        with pytest.raises(ApiUnreachable) as exc:
            run(["echo", "x"], mutating=False, timeout_s=5)
        run.close()
    assert server.commands == []
    assert f"127.0.0.1:{server.port}" in str(exc.value) and "\n" not in str(exc.value)


def test_a_command_past_its_deadline_is_one_line_that_says_the_task_ends_with_it(tmp_path):
    with ssh_server(tmp_path) as server:
        run = ssh_runner(local(server.port, tmp_path))
        run(["echo", "connected"], mutating=False, timeout_s=5)  # the deadline then covers the command alone
        with pytest.raises(ApiUnreachable) as exc:
            run(["sleep-forever"], mutating=True, timeout_s=0.5)
        run.close()
    assert str(exc.value) == (f"proxmox host: `sleep-forever` on 127.0.0.1:{server.port} did not finish within "
                              "0.5 s (a task pvesh runs ends with its SSH session)")


def test_settings_without_a_known_hosts_file_are_refused_unless_the_policy_is_off():
    with pytest.raises(PhoenixError, match="no known_hosts file"):
        ssh_runner(settings())
    ssh_runner(settings(ssh_host_key_policy="off")).close()
