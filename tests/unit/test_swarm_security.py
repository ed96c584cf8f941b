"""Swarm security and init-only options (phoenix_tasks/swarm/security.py): exact argv of
every new command, the new `docker info` fields from recorded data, plans from recorded
facts (pool drift is a warning, a locked manager is unlocked from the key file or blocked
with what to do), the key file's mode, and the tasks over scripted connections: no join
token and no unlock key in any output, log or exception."""

from __future__ import annotations

import copy
import json
import os
import re
import stat
from pathlib import Path

import pytest
from invoke import MockContext, Result
from invoke.exceptions import Exit
from rich.console import Console

from phoenix_tasks.config import load_config
from phoenix_tasks.lab.configgen import write_lab_config
from phoenix_tasks.core.secrets import Secret
from phoenix_tasks.show.plans import show_plan
from phoenix_tasks.swarm import commands, events, security
from phoenix_tasks.swarm.facts import LOCKED, parse_info
from phoenix_tasks.swarm.plan import Options, classify, plan_phases
from phoenix_tasks.tasks import common
from phoenix_tasks.tasks import swarm as swarm_tasks
from phoenix_tasks.core.transport import Transport, shell_command

from swarm_recorded import CONVERGED, FRESH, converged_outputs, facts, infos, recorded

KEY = "SWMKEY-1-7c37Cc8654o6p38HnroywCi19pllOnGtbdZEgtKxZu8"
OLD = "SWMTKN-1-0123456789abcdefghijklmnopqrstuvwxyz0123456789abcdef-oldoldoldoldoldoldoldoldol"
NEW = "SWMTKN-1-0123456789abcdefghijklmnopqrstuvwxyz0123456789abcdef-newnewnewnewnewnewnewnewne"
EVENT_CREATE = re.compile(r"docker config create --label io\.phoenix\.event=.* -- phx-cluster-event-\S+ -")


def config_with(tmp_path: Path, **swarm):
    """The recorded 3-VM lab config (tests/data/swarm) with swarm settings added."""
    out = tmp_path / "etc"
    write_lab_config(out, 3, subnet="198.18.90.0/24", bridge="phxrec0", state_dir=str(tmp_path / "state"))
    path = out / "phoenix_hypervisor_config.json"
    doc = json.loads(path.read_text())
    doc["swarm"].update(swarm)
    path.write_text(json.dumps(doc))
    return load_config(out)


def manager_info(pool=None, size=24, autolock=False) -> dict:
    """info_manager.json (recorded, default pool) edited: another pool / autolock on."""
    doc = copy.deepcopy(recorded("info_manager.json"))
    doc["Swarm"]["Cluster"]["DefaultAddrPool"] = pool
    doc["Swarm"]["Cluster"]["SubnetSize"] = size
    doc["Swarm"]["Cluster"]["Spec"]["EncryptionConfig"]["AutoLockManagers"] = autolock
    return doc


def key_file(tmp_path: Path, text: str = KEY + "\n", mode: int = 0o600) -> Path:
    path = tmp_path / "etc" / "swarm_unlock.key"
    path.write_text(text)
    path.chmod(mode)
    return path


# -- commands ------------------------------------------------------------------------

def test_argv_of_every_new_command():
    assert commands.swarm_init("198.18.66.11", ["10.123.0.0/16", "10.124.0.0/16"], 26) == [
        "docker", "swarm", "init", "--advertise-addr", "198.18.66.11",
        "--default-addr-pool", "10.123.0.0/16", "--default-addr-pool", "10.124.0.0/16",
        "--default-addr-pool-mask-length", "26"]
    assert commands.swarm_init("198.18.66.11", ["10.20.0.0/16"]) == [
        "docker", "swarm", "init", "--advertise-addr", "198.18.66.11", "--default-addr-pool", "10.20.0.0/16"]
    assert commands.swarm_init("198.18.66.11") == ["docker", "swarm", "init", "--advertise-addr", "198.18.66.11"]
    assert commands.rotate_join_token("worker") == ["docker", "swarm", "join-token", "--rotate", "-q", "worker"]
    assert commands.rotate_join_token("manager") == ["docker", "swarm", "join-token", "--rotate", "-q", "manager"]
    assert commands.unlock_key() == ["docker", "swarm", "unlock-key", "-q"]
    assert commands.swarm_autolock(True) == ["docker", "swarm", "update", "--autolock=true"]
    assert commands.swarm_autolock(False) == ["docker", "swarm", "update", "--autolock=false"]
    assert commands.swarm_unlock() == ["docker", "swarm", "unlock"]  # the key: on stdin
    event = events.Event("phx-cluster-event-20261126T040000Z-abc123", "rotate-join-token", "worker",
                         "root@host", 1795665600, "portainer")
    assert events.create_argv(event) == [
        "docker", "config", "create", "--label", "io.phoenix.event=rotate-join-token",
        "--label", "io.phoenix.event.what=worker", "--label", "io.phoenix.event.who=root@host",
        "--label", "io.phoenix.event.at=1795665600", "--label", "io.phoenix.event.on=portainer",
        "--", "phx-cluster-event-20261126T040000Z-abc123", "-"]
    assert events.read_argv() == ["sh", "-c", events.READ_SCRIPT]
    assert "token" not in events.event_data(event).lower().replace("rotate-join-token", "")


@pytest.mark.parametrize("role", ["admin", "worker; reboot", "both"])
def test_a_rotated_role_is_checked(role):
    with pytest.raises(ValueError):
        commands.rotate_join_token(role)


def test_rotate_flag_values():
    assert security.roles_from("both") == ("worker", "manager")
    assert security.roles_from("worker") == ("worker",)
    with pytest.raises(security.BadFlag) as exc:
        security.roles_from("all")
    assert exc.value.exit_code == 2


def test_events_parse_oldest_first_and_ignore_foreign_configs():
    lines = [json.dumps({"Name": "phx-cluster-event-b", "Labels": {
                 "io.phoenix.event": "autolock", "io.phoenix.event.what": "on", "io.phoenix.event.who": "a@b",
                 "io.phoenix.event.at": "20", "io.phoenix.event.on": "portainer"}}),
             json.dumps({"Name": "someone-elses", "Labels": {"io.phoenix.event.at": "x"}}),
             json.dumps({"Name": "phx-cluster-event-a", "Labels": {
                 "io.phoenix.event": "rotate-join-token", "io.phoenix.event.what": "worker",
                 "io.phoenix.event.at": "10"}})]
    found = events.parse_read("\n".join(lines) + "\n")
    assert [e.name for e in found] == ["phx-cluster-event-a", "phx-cluster-event-b"]
    assert events.last(found, "autolock").describe() == "autolock on at 1970-01-01 00:00:20 UTC by a@b on portainer"


# -- facts ----------------------------------------------------------------------------

def test_parse_info_reads_pool_subnet_size_and_autolock_of_a_manager(tmp_path):
    vm = config_with(tmp_path).swarm_vms[0]
    custom = parse_info(vm, json.dumps(recorded("info_manager_pool_autolock.json")))
    assert (custom.default_addr_pool, custom.subnet_size, custom.autolock) == (
        ("10.123.0.0/16", "10.124.0.0/16"), 26, True)
    default = parse_info(vm, json.dumps(recorded("info_manager.json")))
    assert (default.default_addr_pool, default.subnet_size, default.autolock) == ((), 24, False)
    worker = parse_info(vm, json.dumps(recorded("info_worker_gpu.json")))
    assert (worker.default_addr_pool, worker.subnet_size, worker.autolock) == (None, None, None)
    locked = parse_info(vm, json.dumps(recorded("info_locked.json")))
    assert (locked.state, locked.node_id, locked.default_addr_pool) == (LOCKED, None, None)
    assert "unlock" in locked.detail


def test_config_builds_the_pool_the_size_and_the_key_file_relative_to_the_config_dir(tmp_path):
    config = config_with(tmp_path, default_addr_pool=["10.123.0.0/16", "10.124.0.0/16"], subnet_size=26,
                         autolock_key_file="secrets/unlock.key")
    s = config.hypervisor.swarm
    assert [str(p) for p in s.default_addr_pool] == ["10.123.0.0/16", "10.124.0.0/16"] and s.subnet_size == 26
    assert s.autolock_key_file == tmp_path / "etc" / "secrets" / "unlock.key"
    plain = config_with(tmp_path / "plain").hypervisor.swarm
    assert (plain.default_addr_pool, plain.subnet_size, plain.autolock_key_file) == ((), None, None)


# -- plans ------------------------------------------------------------------------------

def test_init_passes_the_configured_pool(tmp_path):
    config = config_with(tmp_path, default_addr_pool=["10.123.0.0/16"], subnet_size=26)
    plan = plan_phases(config, facts(config, infos(FRESH)), Options())
    init = plan.actions[0]
    assert init.argv == ("docker", "swarm", "init", "--advertise-addr", "198.18.90.11",
                         "--default-addr-pool", "10.123.0.0/16", "--default-addr-pool-mask-length", "26")
    assert init.summary == "initialise the swarm, advertising 198.18.90.11, overlay address pool 10.123.0.0/16 in /26s"
    assert plan.warnings == []


def test_pool_drift_is_a_warning_never_an_action(tmp_path):
    config = config_with(tmp_path, default_addr_pool=["10.20.0.0/16"])
    plan = plan_phases(config, facts(config, infos(CONVERGED)), Options())
    assert plan.empty and not plan.blocked
    assert plan.warnings == [
        "default_addr_pool differs: the swarm has 10.0.0.0/8 (docker's default) in /24s, the config says "
        "10.20.0.0/16 in /24s; changing it needs a new swarm (not done by Phoenix)"]
    same = plan_phases(config, facts(config, infos(CONVERGED, portainer=manager_info(["10.20.0.0/16"]))), Options())
    assert same.empty and same.warnings == []
    sized = config_with(tmp_path / "sized", default_addr_pool=["10.20.0.0/16"], subnet_size=26)
    plan = plan_phases(sized, facts(sized, infos(CONVERGED, portainer=manager_info(["10.20.0.0/16"]))), Options())
    assert plan.empty and plan.warnings == [
        "default_addr_pool differs: the swarm has 10.20.0.0/16 in /24s, the config says 10.20.0.0/16 in /26s; "
        "changing it needs a new swarm (not done by Phoenix)"]
    # No pool configured: docker's default is what the config asks for; nothing to say.
    plain = config_with(tmp_path / "plain")
    assert plan_phases(plain, facts(plain, infos(CONVERGED, portainer=manager_info(["10.20.0.0/16"]))),
                       Options()).warnings == []


def test_a_locked_manager_with_its_key_file_is_unlocked_first(tmp_path):
    config = config_with(tmp_path, autolock_key_file="swarm_unlock.key")
    path = key_file(tmp_path)
    f = facts(config, infos(CONVERGED, portainer="info_locked.json"))
    assert classify(config, f)[1001].kind == LOCKED
    opts = Options(unlock_key=security.read_key_file(path))
    plan = plan_phases(config, f, opts)
    [unlock] = plan.actions
    assert (unlock.kind, unlock.where.name, unlock.phase) == ("unlock", "portainer", "unlock")
    assert unlock.argv == ("docker", "swarm", "unlock")
    assert unlock.summary == f"unlock (key from {path})"
    assert isinstance(unlock.stdin.data, Secret) and unlock.stdin.data.reveal() == KEY + "\n"
    assert not plan.blocked
    assert plan.warnings == ["portainer locked: the other phases are planned once unlocked "
                             "(a locked manager's swarm state cannot be read)"]
    console = Console(record=True, width=200)
    show_plan(console, plan, verbose=True)
    shown = console.export_text()
    assert "portainer (vmid 1001)  unlock   unlock (key from" in shown
    assert f"$ docker swarm unlock < unlock key from {path} (53 bytes)" in shown
    assert KEY not in shown + repr(plan) + str(unlock.stdin)
    # Only the phases that start with unlock unlock; the locked VM says where that happens.
    assert plan_phases(config, f, opts, ["labels"]).empty
    hinted = security.with_unlock_hints(classify(config, f), opts.unlock_key)
    assert hinted[1001].detail == f"`inv swarm.join` (or sync-all) unlocks it with the key in {path}"


def test_a_locked_manager_without_its_key_file_is_blocked_with_what_to_do(tmp_path):
    config = config_with(tmp_path, autolock_key_file="swarm_unlock.key")
    f = facts(config, infos(CONVERGED, portainer="info_locked.json"))
    path = config.hypervisor.swarm.autolock_key_file
    plan = plan_phases(config, f, Options(unlock_key=security.read_key_file(path)))
    assert plan.empty
    reasons = [b.reason for b in plan.blocked if b.subject.name == "portainer"]
    assert reasons[0:1] == [
        f"its swarm is locked (autolock): the unlock key file {path} (swarm.autolock_key_file) does not exist: "
        "put the key there (mode 0600), or run `docker swarm unlock` on the VM and give it the key "
        "(`docker swarm unlock-key -q` on an unlocked manager shows it); then run again"]
    assert "cannot be while a configured manager's state is unknown" in reasons[1]  # so no second init
    unset = plan_phases(config, f, Options(unlock_key=security.read_key_file(None)))
    assert any("or set swarm.autolock_key_file to a file holding the key" in b.reason for b in unset.blocked)


def test_the_key_file_is_refused_when_open_to_others_or_not_a_key(tmp_path):
    (tmp_path / "etc").mkdir()
    assert security.read_key_file(key_file(tmp_path)).usable
    loose = security.read_key_file(key_file(tmp_path, mode=0o644))
    assert not loose.usable and "open to others (mode 0644): chmod 600" in loose.problem
    bad = security.read_key_file(key_file(tmp_path, text="hunter2-not-a-key\n"))
    assert "does not hold a swarm unlock key" in bad.problem and "hunter2" not in bad.problem
    assert "not a regular file" in security.read_key_file(tmp_path).problem


def test_the_key_file_is_written_0600_and_never_open_to_others_even_briefly(tmp_path, monkeypatch):
    path = tmp_path / "unlock.key"
    path.write_text("old\n")
    path.chmod(0o644)
    seen = []
    real_replace = os.replace

    def replace(src, dst):
        seen.append((stat.S_IMODE(os.stat(src).st_mode), Path(src).read_text()))
        return real_replace(src, dst)

    monkeypatch.setattr(os, "replace", replace)
    old_umask = os.umask(0)
    try:
        security.write_key_file(path, Secret(KEY))
    finally:
        os.umask(old_umask)
    assert seen == [(0o600, KEY + "\n")]
    assert stat.S_IMODE(path.stat().st_mode) == 0o600 and path.read_text() == KEY + "\n"
    assert [p.name for p in tmp_path.iterdir()] == ["unlock.key"]  # no temporary file left


def test_a_key_file_that_cannot_be_written_is_refused_before_any_connection(tmp_path):
    with pytest.raises(security.PhoenixError, match="swarm.autolock_key_file is not set"):
        security.check_key_file_writable(None)
    with pytest.raises(security.PhoenixError, match="does not exist; create it"):
        security.check_key_file_writable(tmp_path / "missing" / "unlock.key")
    with pytest.raises(security.PhoenixError, match="is a directory"):
        security.check_key_file_writable(tmp_path)


# -- tasks over scripted connections ------------------------------------------------

class Scripted:
    """A connection that answers recorded commands: per shell command (or regex) a list of
    results, used in order, the last one repeated; records every command with its stdin."""

    def __init__(self, name, script, ran):
        self.name, self.script, self.ran = name, script, ran

    def run(self, command, **kw):
        stdin = kw.get("in_stream")
        self.ran.append((self.name, command, stdin.getvalue() if stdin else None))
        for key, results in self.script.items():
            if key == command or (isinstance(key, re.Pattern) and key.fullmatch(command)):
                out, code, err = results.pop(0) if len(results) > 1 else results[0]
                return Result(stdout=out, exited=code, stderr=err)
        raise AssertionError(f"unrecorded command on {self.name}: {command}")


def script_of(outputs: dict) -> dict:
    """converged_outputs()-style {vm: {argv tuple: (out, code)}} as scripts."""
    return {vm: {shell_command(argv): [(out, code, "")] for argv, (out, code) in by_cmd.items()}
            for vm, by_cmd in outputs.items()}


@pytest.fixture
def wired(tmp_path, monkeypatch):
    """Tasks against the recorded 3-VM lab config, over scripted connections."""
    state = {"ran": [], "made": []}

    def use(config, scripts):
        monkeypatch.setenv("PHOENIX_CONFIG_DIR", str(config.config_dir))

        def transport_for(cfg, verbose):
            t = Transport(cfg.hypervisor.vm_access, echo=(lambda line: print(line)) if verbose else None,
                          connect=lambda vm, access: Scripted(vm.name, scripts[vm.name], state["ran"]))
            state["made"].append(t)
            return t
        monkeypatch.setattr(common, "transport_for", transport_for)
        return state
    return use


def run_task(task, capsys, **flags):
    code = 0
    message = ""
    try:
        task(MockContext(), **flags)
    except Exit as exc:
        code, message = exc.code, exc.message or ""
    captured = capsys.readouterr()
    return code, captured.out + captured.err + message


def test_tokens_rotate_worker_prints_that_it_rotated_never_the_token(tmp_path, wired, capsys, caplog):
    config = config_with(tmp_path)
    scripts = script_of(converged_outputs())
    m = scripts["portainer"]
    m[shell_command(commands.join_token("worker"))] = [(OLD + "\n", 0, ""), (NEW + "\n", 0, "")]
    m[shell_command(commands.rotate_join_token("worker"))] = [(NEW + "\n", 0, "")]
    m[EVENT_CREATE] = [("phx-cluster-event\n", 0, "")]
    state = wired(config, scripts)
    code, out = run_task(swarm_tasks.tokens, capsys, rotate="worker", verbose=True)
    assert code == 0, out
    assert "worker join token  rotate   the old token stops joining" in out
    assert re.search(r"rotated: the worker join token on portainer \(vmid 1001\) at \d{4}-\d\d-\d\d "
                     r"\d\d:\d\d:\d\d UTC; the old token no longer joins", out)
    assert re.search(r"recorded as cluster event phx-cluster-event-\d{8}T\d{6}Z-[0-9a-f]{6}", out)
    [t] = state["made"]
    assert [r.display.split(" --label")[0] for r in t.mutating_commands] == [
        "docker swarm join-token --rotate -q worker", "docker config create"]
    everything = out + caplog.text + repr(t.log) + repr(state["ran"][-1])
    assert OLD not in everything and NEW not in everything
    event_stdin = state["ran"][-1][2]
    assert json.loads(event_stdin)["kind"] == "rotate-join-token" and "SWMTKN" not in event_stdin


def test_tokens_rotate_dry_run_says_what_would_rotate_and_changes_nothing(tmp_path, wired, capsys):
    config = config_with(tmp_path)
    state = wired(config, script_of(converged_outputs()))
    code, out = run_task(swarm_tasks.tokens, capsys, rotate="both", dry_run=True)
    assert code == 0, out
    assert "swarm tokens: 2 changes" in out
    assert "worker join token  rotate" in out and "manager join token  rotate" in out
    assert "dry run: nothing was changed" in out
    assert state["made"][0].mutating_commands == []


def test_tokens_rotate_that_did_not_change_the_token_is_an_error(tmp_path, wired, capsys):
    config = config_with(tmp_path)
    scripts = script_of(converged_outputs())
    m = scripts["portainer"]
    m[shell_command(commands.join_token("manager"))] = [(OLD + "\n", 0, "")]  # read again: the same
    m[shell_command(commands.rotate_join_token("manager"))] = [(OLD + "\n", 0, "")]
    m[EVENT_CREATE] = [("x\n", 0, "")]
    wired(config, scripts)
    code, out = run_task(swarm_tasks.tokens, capsys, rotate="manager")
    assert code == 1
    assert "still pending after apply: manager join token" in out and OLD not in out


def test_tokens_usage_errors_exit_2_before_any_connection(tmp_path, wired, capsys):
    state = wired(config_with(tmp_path), {})
    assert run_task(swarm_tasks.tokens, capsys, rotate="all")[0] == 2
    assert run_task(swarm_tasks.tokens, capsys, rotate="worker", reveal=True)[0] == 2
    assert run_task(swarm_tasks.tokens, capsys, dry_run=True)[0] == 2
    assert state["made"] == [] or all(t.log == [] for t in state["made"])


def test_autolock_enable_writes_the_key_0600_and_never_prints_it(tmp_path, wired, capsys, caplog):
    config = config_with(tmp_path, autolock_key_file="swarm_unlock.key")
    scripts = script_of(converged_outputs())
    m = scripts["portainer"]
    m[shell_command(commands.facts())] = [(json.dumps(manager_info()), 0, ""),
                                         (json.dumps(manager_info(autolock=True)), 0, "")]
    m[shell_command(commands.swarm_autolock(True))] = [(f"Swarm updated.\n\n    {KEY}\n", 0, "")]
    m[shell_command(commands.unlock_key())] = [(KEY + "\n", 0, "")]
    m[EVENT_CREATE] = [("x\n", 0, "")]
    state = wired(config, scripts)
    code, out = run_task(swarm_tasks.autolock, capsys, enable=True, verbose=True)
    assert code == 0, out
    path = config.hypervisor.swarm.autolock_key_file
    assert "swarm  autolock turn autolock on" in out and f"{path}  key-file write the unlock key (mode 0600" in out
    assert f"autolock: on; key file: {path} (mode 0600, the swarm's current key)" in out
    assert "converged: facts read again, nothing pending" in out
    assert stat.S_IMODE(path.stat().st_mode) == 0o600 and path.read_text() == KEY + "\n"
    everything = out + caplog.text + repr(state["made"][0].log)
    assert KEY not in everything and KEY[9:30] not in everything
    # Again: nothing to do.
    m[shell_command(commands.facts())] = [(json.dumps(manager_info(autolock=True)), 0, "")]
    code, out = run_task(swarm_tasks.autolock, capsys, enable=True)
    assert code == 0 and "swarm autolock: no changes" in out
    assert state["made"][-1].mutating_commands == []


def test_autolock_status_says_when_the_key_file_is_missing(tmp_path, wired, capsys):
    config = config_with(tmp_path, autolock_key_file="swarm_unlock.key")
    scripts = script_of(converged_outputs())
    m = scripts["portainer"]
    m[shell_command(commands.facts())] = [(json.dumps(manager_info(autolock=True)), 0, "")]
    m[shell_command(commands.unlock_key())] = [(KEY + "\n", 0, "")]
    m[shell_command(events.read_argv())] = [("", 0, "")]
    wired(config, scripts)
    code, out = run_task(swarm_tasks.autolock, capsys)
    assert code == 1
    path = config.hypervisor.swarm.autolock_key_file
    assert f"autolock: on; key file: the unlock key file {path} (swarm.autolock_key_file) does not exist" in out
    assert "`inv swarm.autolock --enable` writes it" in out and KEY not in out


def test_autolock_enable_without_a_key_file_setting_is_refused_before_any_connection(tmp_path, wired, capsys):
    state = wired(config_with(tmp_path), {})
    code, out = run_task(swarm_tasks.autolock, capsys, enable=True)
    assert code == 1 and "swarm.autolock_key_file is not set" in out
    assert state["made"] == []
    assert run_task(swarm_tasks.autolock, capsys, enable=True, disable=True)[0] == 2


def test_join_unlocks_a_locked_manager_from_the_key_file_on_stdin(tmp_path, wired, capsys, caplog):
    config = config_with(tmp_path, autolock_key_file="swarm_unlock.key")
    key_file(tmp_path)
    scripts = script_of(converged_outputs())
    m = scripts["portainer"]
    m[shell_command(commands.facts())] = [(json.dumps(recorded("info_locked.json")), 0, ""),
                                         (json.dumps(recorded("info_manager.json")), 0, "")]
    m[shell_command(commands.swarm_unlock())] = [("", 0, "")]
    state = wired(config, scripts)
    code, out = run_task(swarm_tasks.join, capsys, verbose=True)
    assert code == 0, out
    assert "portainer (vmid 1001)  unlock   unlock (key from" in out
    assert "converged: facts read again, nothing pending" in out
    [unlock] = [r for r in state["ran"] if r[1] == "docker swarm unlock"]
    assert unlock[2] == KEY + "\n"  # on stdin, never on the command line
    assert [r.display for r in state["made"][0].mutating_commands] == ["docker swarm unlock"]
    assert KEY not in out + caplog.text + repr(state["made"][0].log)


def test_a_failed_unlock_names_the_vm_and_never_the_key(tmp_path, wired, capsys):
    config = config_with(tmp_path, autolock_key_file="swarm_unlock.key")
    key_file(tmp_path)
    scripts = script_of(converged_outputs())
    m = scripts["portainer"]
    m[shell_command(commands.facts())] = [(json.dumps(recorded("info_locked.json")), 0, "")]
    m[shell_command(commands.swarm_unlock())] = [
        ("", 1, f"Error response from daemon: swarm could not be unlocked: invalid key provided {KEY}")]
    wired(config, scripts)
    code, out = run_task(swarm_tasks.join, capsys)
    assert code == 1
    assert "failed: portainer (vmid 1001)" in out and "invalid key provided ***" in out
    assert KEY not in out


def test_status_shows_the_pool_and_autolock_and_warns_without_the_key(tmp_path, wired, capsys):
    config = config_with(tmp_path, default_addr_pool=["10.123.0.0/16", "10.124.0.0/16"], subnet_size=26)
    outputs = converged_outputs()
    outputs["portainer"][tuple(commands.facts())] = (json.dumps(
        manager_info(["10.123.0.0/16", "10.124.0.0/16"], 26, autolock=True)), 0)
    wired(config, script_of(outputs))
    code, out = run_task(swarm_tasks.status, capsys)
    assert code == 0, out
    assert ("address pool: 10.123.0.0/16, 10.124.0.0/16 in /26s; autolock: on "
            "(key file: not configured (swarm.autolock_key_file))") in out
    assert "warning: autolock is on, and swarm.autolock_key_file is not set" in out
    code, out = run_task(swarm_tasks.status, capsys, json=True)
    doc = json.loads(out)
    assert (doc["default_addr_pool"], doc["subnet_size"], doc["autolock"]) == (
        ["10.123.0.0/16", "10.124.0.0/16"], 26, True)
    assert doc["autolock_key_file"] == "not configured (swarm.autolock_key_file)"
    assert len(doc["warnings"]) == 1


def test_status_of_a_default_swarm_shows_dockers_pool(tmp_path, wired, capsys):
    wired(config_with(tmp_path), script_of(converged_outputs()))
    code, out = run_task(swarm_tasks.status, capsys, json=True)
    doc = json.loads(out)
    assert (doc["default_addr_pool"], doc["subnet_size"], doc["autolock"], doc["warnings"]) == (
        ["10.0.0.0/8"], 24, False, [])
