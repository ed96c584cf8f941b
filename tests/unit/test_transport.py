"""The transport against an SSH server in the test process (tests/unit/ssh_server.py):
Fabric's config comes from Phoenix's settings only, timeouts are floats that are
honoured, every command has a deadline, and a failed connection is one line."""

from __future__ import annotations

import logging
import subprocess
import sys
import time
from pathlib import Path

import pytest
from fabric import Config as FabricConfig

from phoenix_tasks.core.model import Host, VMAccess
from phoenix_tasks.core.transport import TimedOut, Transport, Unreachable, fabric_connection

from ssh_server import not_ssh, silent, ssh_server

HOST = Host("vm1", "127.0.0.1")
REPO = Path(__file__).resolve().parents[2]


def access(tmp_path: Path, port: int, **changes) -> VMAccess:
    values = dict(user="phoenix", port=port, private_key_file=tmp_path / "id_rsa", host_key_policy="accept-new",
                  known_hosts_file=tmp_path / "known_hosts", connect_timeout_s=5.0, command_timeout_s=10.0)
    values.update(changes)
    return VMAccess(**values)


# -- Fabric's config: Phoenix's settings, nothing else -------------------------------------

HOSTILE_YAML = """\
gateway: "touch {marker}; nc %h %p"
run: {{dry: true, echo: true}}
connect_kwargs: {{key_filename: [/tmp/someone-elses-key], allow_agent: true}}
timeouts: {{connect: 1, command: 1}}
user: intruder
port: 2222
load_ssh_configs: true
"""
HOSTILE_PY = """\
open({marker!r}, "w").write("executed")
gateway = "touch {marker}"
run = {{"dry": True}}
"""
HOSTILE_SSH_CONFIG = """\
Host *
    ProxyCommand touch {marker}
    IdentityFile /tmp/someone-elses-key
    User intruder
    Port 2222
"""


@pytest.fixture
def hostile(tmp_path, monkeypatch):
    """A HOME with ~/.fabric.yaml and ~/.ssh/config, a system prefix with fabric.py (which
    writes a marker file when executed), and FABRIC_/INVOKE_ variables: all hostile."""
    home, system = tmp_path / "home", tmp_path / "etc"
    (home / ".ssh").mkdir(parents=True)
    system.mkdir()
    marker = tmp_path / "marker"
    (home / ".fabric.yaml").write_text(HOSTILE_YAML.format(marker=marker))
    (home / ".ssh" / "config").write_text(HOSTILE_SSH_CONFIG.format(marker=marker))
    (system / "fabric.py").write_text(HOSTILE_PY.format(marker=str(marker)))
    monkeypatch.setenv("HOME", str(home))
    for name in ("FABRIC_RUN_DRY", "INVOKE_RUN_DRY", "FABRIC_GATEWAY"):
        monkeypatch.setenv(name, "true")
    return system, marker


def test_the_hostile_files_are_effective_for_a_plain_fabric_config(hostile):
    # The control: Fabric's own Config reads them (so the test below means something).
    system, marker = hostile
    config = FabricConfig(system_prefix=f"{system}/")
    assert config.run.dry is True and config.user == "intruder"
    assert marker.read_text() == "executed"  # fabric.py was executed
    config = FabricConfig()
    assert config.gateway.startswith("touch ") and config.connect_kwargs.key_filename == ["/tmp/someone-elses-key"]
    assert config.base_ssh_config.lookup("10.0.0.1")["proxycommand"].startswith("touch ")


def test_phoenix_connection_reads_no_fabric_or_ssh_config(hostile, tmp_path):
    system, marker = hostile
    acc = access(tmp_path, 22)
    conn = fabric_connection(HOST, acc)
    expected_kwargs = {"key_filename": [str(acc.private_key_file)], "look_for_keys": False, "allow_agent": False,
                       "timeout": 5.0, "banner_timeout": 5.0, "auth_timeout": 5.0, "channel_timeout": 5.0}
    config = conn.config

    def clean(cfg):
        assert cfg.run.dry is False and cfg.run.echo is False
        assert cfg.gateway is None and cfg.timeouts.command is None and cfg.timeouts.connect is None
        assert dict(cfg.connect_kwargs) == {}
        assert cfg.load_ssh_configs is False
        assert cfg.base_ssh_config.lookup("127.0.0.1") == {"hostname": "127.0.0.1"}

    clean(config)
    assert conn.gateway is False and conn.forward_agent is False
    assert (conn.host, conn.user, conn.port, conn.connect_timeout) == ("127.0.0.1", "phoenix", 22, None)
    assert conn.connect_kwargs == expected_kwargs
    # Even pointed at the hostile system prefix and asked to load everything, as a
    # caller (or Fabric itself, cloning the config for a ProxyJump hop) might:
    config._set(_system_prefix=f"{system}/")
    config.load_base_conf_files()
    config.load_system()
    config.load_user()
    config.load_project()
    config.load_runtime()
    config.load_shell_env()
    config.load_ssh_config()
    config.merge()
    clean(config)
    clean(config.clone())
    assert not marker.exists()


def test_phoenix_connection_runs_for_real_with_a_hostile_home(hostile, tmp_path):
    _, marker = hostile
    with ssh_server(tmp_path) as server, Transport(access(tmp_path, server.port)) as t:
        res = t.run(HOST, ["echo", "real"], mutating=False)
    assert res.stdout == "real\n"  # not a dry run
    assert server.commands == ["echo real"]
    assert not marker.exists()  # no ProxyCommand ran


# -- timeouts are floats, and honoured ---------------------------------------------------------

def test_a_fractional_connect_timeout_reaches_paramiko_as_given(tmp_path, monkeypatch):
    conn = fabric_connection(HOST, access(tmp_path, 22, connect_timeout_s=0.5))
    seen = {}

    def connect(**kwargs):
        seen.update(kwargs)
        raise OSError("stop here")

    monkeypatch.setattr(conn.client, "connect", connect)
    with pytest.raises(OSError):
        conn.open()
    assert seen["timeout"] == 0.5  # Fabric's connect_timeout would have made it int(0.5) == 0: none
    assert seen["banner_timeout"] == seen["auth_timeout"] == seen["channel_timeout"] == 0.5
    assert "sock" not in seen  # no gateway


def test_a_silent_port_fails_within_a_fractional_connect_timeout(tmp_path):
    with silent() as port, Transport(access(tmp_path, port, connect_timeout_s=0.5)) as t:
        started = time.monotonic()
        with pytest.raises(Unreachable) as exc:
            t.run(HOST, ["echo", "x"], mutating=False)
        elapsed = time.monotonic() - started
    assert elapsed < 3, elapsed
    assert str(exc.value).startswith(f"vm1: SSH to 127.0.0.1:{port} failed") and "\n" not in str(exc.value)


# -- every command has a deadline ----------------------------------------------------------------

def test_a_command_that_never_exits_times_out_by_name_and_the_next_one_runs(tmp_path):
    with ssh_server(tmp_path) as server, Transport(access(tmp_path, server.port, command_timeout_s=0.5)) as t:
        started = time.monotonic()
        with pytest.raises(TimedOut) as exc:
            t.run(HOST, ["sleep-forever"], mutating=False)
        assert time.monotonic() - started < 5
        assert str(exc.value) == "vm1: `sleep-forever` did not finish within 0.5 s " \
                                 "(the engine or the VM's sshd may be hung)"
        assert isinstance(exc.value, Unreachable)
        assert t.run(HOST, ["echo", "after"], mutating=False).stdout == "after\n"


def test_the_deadline_covers_an_exec_request_that_is_never_answered(tmp_path):
    with ssh_server(tmp_path) as server, Transport(access(tmp_path, server.port, command_timeout_s=0.5)) as t:
        started = time.monotonic()
        with pytest.raises(TimedOut):
            t.run(HOST, ["hang-exec"], mutating=False)
        assert time.monotonic() - started < 5


def test_the_deadline_covers_a_session_that_is_never_opened(tmp_path):
    with ssh_server(tmp_path, hang_sessions=True) as server, \
            Transport(access(tmp_path, server.port, connect_timeout_s=30, command_timeout_s=0.5)) as t:
        started = time.monotonic()
        with pytest.raises(TimedOut):
            t.run(HOST, ["echo", "x"], mutating=False)
        assert time.monotonic() - started < 5


def test_a_step_can_give_its_own_longer_deadline_and_secrets_stay_masked(tmp_path):
    from phoenix_tasks.core.secrets import Secret
    with ssh_server(tmp_path) as server, Transport(access(tmp_path, server.port, command_timeout_s=30)) as t:
        with pytest.raises(TimedOut) as exc:
            t.run(HOST, ["sleep-forever", Secret("s3cret")], mutating=False, timeout=0.25)
    assert "within 0.25 s" in str(exc.value)
    assert "s3cret" not in str(exc.value) and "'***'" in str(exc.value)


def test_stdin_still_arrives_in_one_piece(tmp_path):
    data = "x" * 200_000 + "\n"
    with ssh_server(tmp_path) as server, Transport(access(tmp_path, server.port)) as t:
        started = time.monotonic()
        res = t.run(HOST, ["cat"], mutating=False, stdin=data)
    assert res.stdout == data and time.monotonic() - started < 5


# -- a failed connection is one line, and paramiko prints nothing -------------------------------

QUIET_SCRIPT = """
import sys
from pathlib import Path
from phoenix_tasks.core.model import Host, VMAccess
from phoenix_tasks.core.transport import Transport, Unreachable
tmp = Path(sys.argv[2])
access = VMAccess("phoenix", int(sys.argv[1]), tmp / "id_rsa", "accept-new", tmp / "known_hosts", 2.0)
try:
    Transport(access).run(Host("vm1", "127.0.0.1"), ["echo", "x"], mutating=False)
except Unreachable as exc:
    print(exc)
import time; time.sleep(0.3)  # paramiko's transport thread logs after the client gave up
"""


def test_a_port_that_is_not_ssh_is_one_line_and_paramiko_prints_nothing(tmp_path):
    # In a process of its own: under pytest the root logger always has handlers, so
    # what Python prints when no logging is configured (paramiko's traceback, line by
    # line) can only be seen outside it.
    with not_ssh() as port:
        run = subprocess.run([sys.executable, "-c", QUIET_SCRIPT, str(port), str(tmp_path)], cwd=REPO,
                             capture_output=True, text=True, timeout=60)
    assert run.stderr == ""
    assert run.stdout == f"vm1: SSH to 127.0.0.1:{port} failed: Error reading SSH protocol banner\n"


def test_paramiko_records_do_not_reach_the_root_logger(tmp_path):
    seen: list[logging.LogRecord] = []
    collector = logging.Handler()
    collector.emit = seen.append
    root = logging.getLogger()
    root.addHandler(collector)
    try:
        with not_ssh() as port, Transport(access(tmp_path, port, connect_timeout_s=2)) as t:
            with pytest.raises(Unreachable) as exc:
                t.run(HOST, ["echo", "x"], mutating=False)
            time.sleep(0.2)
    finally:
        root.removeHandler(collector)
    assert not isinstance(exc.value, TimedOut) and "\n" not in str(exc.value)
    assert [r for r in seen if r.name.startswith("paramiko")] == []


def test_a_connection_that_breaks_while_feeding_stdin_is_unreachable_by_name_not_a_traceback(tmp_path):
    from invoke.exceptions import ThreadException
    from invoke.util import ExceptionWrapper

    class Broken:
        def run(self, *args, **kwargs):
            raise ThreadException([ExceptionWrapper({}, OSError, OSError("Socket is closed"), None)])

        def close(self):
            pass

    access = VMAccess("root", 22, tmp_path / "key", "off", tmp_path / "known_hosts", 1.0)
    host = Host("portainer", "127.0.0.1")
    with Transport(access, connect=lambda h, a: Broken()) as t:
        with pytest.raises(Unreachable) as exc:
            t.run(host, ["docker", "stack", "deploy", "--compose-file", "-", "x"], mutating=True, stdin="doc")
    assert str(exc.value) == ("portainer: the SSH connection to 127.0.0.1 broke during "
                              "`docker stack deploy --compose-file - x`: Socket is closed")
