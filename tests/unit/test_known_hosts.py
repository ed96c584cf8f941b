"""A malformed known_hosts line (for any host) stops a run with one line that names
the file and the line number, exit 1, no traceback, before any connection (issue 21,
item 4).  paramiko's own loader raised InvalidHostKey with a traceback."""

import pytest
from invoke import MockContext
from invoke.exceptions import Exit

from phoenix_tasks.core.ssh_connection import check_known_hosts
from phoenix_tasks.tasks import swarm as swarm_tasks
from phoenix_tasks.core.transport import KnownHostsInvalid, Transport

from swarm_recorded import lab_config

GOOD = ("198.18.90.11 ssh-ed25519 "
        "AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl")
BAD_LINES = {
    "@revoked * x": "marker line",
    "@cert-authority *.example.com ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl":
        "marker line",
    "unrelated.example.org ssh-ed25519 not-base64!": "not valid base64",
    "unrelated.example.org ssh-ed25519 AAAA": "cannot be read",
    "only-a-name": "not a known_hosts line",
}


@pytest.fixture
def config(tmp_path, monkeypatch):
    config = lab_config(tmp_path)
    monkeypatch.setenv("PHOENIX_CONFIG_DIR", str(config.config_dir))
    return config


def write(config, *lines):
    path = config.hypervisor.vm_access.known_hosts_file
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(line + "\n" for line in lines))
    return path


@pytest.mark.parametrize("bad", sorted(BAD_LINES))
def test_a_bad_line_is_named_by_file_and_line_number(config, bad):
    path = write(config, "# comment", GOOD, "", bad, GOOD)
    with pytest.raises(KnownHostsInvalid) as exc:
        check_known_hosts(path)
    message = str(exc.value)
    assert message.startswith(f"known_hosts {path}, line 4: ") and BAD_LINES[bad] in message
    assert "\n" not in message


def test_good_lines_comments_and_unknown_key_types_pass(config):
    path = write(config, "# comment", "", GOOD, "other.example.org ssh-unknown-type AAAA")
    check_known_hosts(path)


def test_not_utf8_is_named(config):
    path = config.hypervisor.vm_access.known_hosts_file
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(GOOD.encode() + b"\n\xff\xfe\n")
    with pytest.raises(KnownHostsInvalid, match="not UTF-8"):
        check_known_hosts(path)


def test_the_transport_raises_it_once_for_the_run_not_per_vm(config):
    write(config, GOOD, "@revoked * x")
    t = Transport(config.hypervisor.vm_access)  # the real SSH connection factory
    with pytest.raises(KnownHostsInvalid, match=r"line 2: .*marker"):
        t.each(config.real_vms, lambda vm: t.run(vm, ["hostname"], mutating=False))
    assert [r.vm for r in t.log]  # the command was asked for; no connection was opened
    assert not any(getattr(c, "is_connected", False) for c in t._connections.values())


def test_a_task_prints_one_line_and_exits_1(config, capsys):
    path = write(config, GOOD, "unrelated.example.org ssh-ed25519 not-base64!")
    with pytest.raises(Exit) as exc:
        swarm_tasks.status(MockContext())
    assert exc.value.code == 1
    captured = capsys.readouterr()
    errors = [line for line in captured.err.splitlines() if line.strip()]
    assert errors == [f"error: known_hosts {path}, line 2: the key is not valid base64; fix or remove that line "
                      "(nothing was connected)"]
    assert "Traceback" not in captured.out + captured.err
