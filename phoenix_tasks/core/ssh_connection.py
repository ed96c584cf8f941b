"""The Fabric connection to a host, built from Phoenix's settings only (the rest of the
transport is `transport.py`).

Kept apart so that tasks which never reach a VM (`inv --list`, `validate`, `--help`)
do not import Fabric and paramiko: `transport.py` imports this module on the first
connection it opens.
"""

from __future__ import annotations

import io
import logging
import threading
from pathlib import Path

import paramiko
from fabric import Config as FabricConfig
from fabric import Connection
from fabric.runners import Remote
from invoke.exceptions import CommandTimedOut
from invoke.runners import Result

from .model import VMAccess
from .reach import KnownHostsInvalid, Reachable, Unreachable


def _quiet_paramiko() -> None:
    """paramiko logs every failed connection at ERROR, traceback line by traceback line
    (a port that is not SSH, a session that never came up); with no logging configured
    Python prints that to stderr.  Phoenix reports the same failure as one line
    (`Unreachable`), so paramiko's own records stop at its logger."""
    logger = logging.getLogger("paramiko")
    if not any(isinstance(h, logging.NullHandler) for h in logger.handlers):
        logger.addHandler(logging.NullHandler())
    logger.propagate = False


_quiet_paramiko()


class _AcceptNewPolicy(paramiko.MissingHostKeyPolicy):
    """Like OpenSSH's accept-new: unknown hosts are added; changed keys still fail."""

    _lock = threading.Lock()

    def __init__(self, path: Path):
        self.path = path

    def missing_host_key(self, client, hostname, key):
        with self._lock:
            client.get_host_keys().add(hostname, key.get_name(), key)
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with self.path.open("a", encoding="utf-8") as fh:
                fh.write(f"{hostname} {key.get_name()} {key.get_base64()}\n")


class _AcceptAnyPolicy(paramiko.MissingHostKeyPolicy):
    def missing_host_key(self, client, hostname, key):
        return None


def check_known_hosts(path: Path) -> None:
    """Every line of a known_hosts file is one paramiko can use, or KnownHostsInvalid
    names the file and the first line that is not (paramiko's own loader raises
    InvalidHostKey, with a traceback and no line number, for a key that is not
    base64: a line for any host stops every connection).

    A marker line (`@revoked`, `@cert-authority`) is refused too: paramiko does not
    honour markers (it would even read `@revoked` as a host name), and ignoring a
    revocation is not safe.  A key type paramiko does not know is skipped, as paramiko
    and OpenSSH skip it."""
    try:
        text = path.read_bytes().decode("utf-8")
    except UnicodeDecodeError as exc:
        raise KnownHostsInvalid(f"known_hosts {path}: not UTF-8 text (byte {exc.start}): "
                                "fix the file or point vm_access.known_hosts_file at another one") from None
    except OSError as exc:
        raise KnownHostsInvalid(f"known_hosts {path}: cannot be read: {exc.strerror or exc}") from None
    for lineno, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        reason = None
        if line.startswith("@"):
            reason = (f"a {line.split()[0][:20]!r} marker line: markers (@revoked, @cert-authority) are not "
                      "supported by Phoenix's SSH client")
        else:
            try:
                if paramiko.hostkeys.HostKeyEntry.from_line(line, lineno) is None and len(line.split()) < 3:
                    reason = "not a known_hosts line (host names, key type, key)"
            except paramiko.hostkeys.InvalidHostKey:
                reason = "the key is not valid base64"
            except Exception as exc:  # noqa: BLE001 - any key paramiko cannot read is a bad line
                reason = f"the key cannot be read ({type(exc).__name__}: {str(exc)[:80] or 'no detail'})"
        if reason:
            raise KnownHostsInvalid(f"known_hosts {path}, line {lineno}: {reason}; fix or remove that line "
                                    "(nothing was connected)")


def _ssh_client(access: VMAccess) -> paramiko.SSHClient:
    client = paramiko.SSHClient()
    known = access.known_hosts_file
    if access.host_key_policy == "strict":
        if not known.is_file():
            raise Unreachable(f"known_hosts file {known} not found, and host_key_policy is 'strict'")
        check_known_hosts(known)
        client.load_host_keys(str(known))
        client.set_missing_host_key_policy(paramiko.RejectPolicy())
    elif access.host_key_policy == "accept-new":
        if known.is_file():
            check_known_hosts(known)
            client.get_host_keys().load(str(known))
        client.set_missing_host_key_policy(_AcceptNewPolicy(known))
    else:
        client.set_missing_host_key_policy(_AcceptAnyPolicy())
    return client


class _InMemoryStdinRemote(Remote):
    """Invoke reads a command's stdin one byte per 10 ms (it is built to mirror an
    interactive terminal): a 1 KiB compose file took 10 s to send.  Data Phoenix sends
    from memory is read in 64 KiB chunks; anything else is left to Invoke.

    The deadline (`run(timeout=...)`) covers the whole command: Invoke starts its timer
    only once the session is open and the exec request answered, and a hung sshd
    answers neither; here the timer starts before both.  When it fires, the channel is
    closed (or, while the session is still being opened, the SSH connection: the next
    command reconnects), and whatever that makes the waiting call raise becomes
    Invoke's `CommandTimedOut`."""

    _deadline_passed = False

    def read_our_stdin(self, input_):
        if isinstance(input_, io.StringIO):
            return input_.read(65536)
        return super().read_our_stdin(input_)

    def start(self, command, shell, env, timeout=None):
        self.start_timer(self.opts["timeout"])
        super().start(command, shell, env, timeout)

    def start_timer(self, timeout):
        if self._timer is None:  # once: before the session is opened
            super().start_timer(timeout)

    def kill(self):  # in the timer's thread: it must not raise
        self._deadline_passed = True
        try:
            channel = getattr(self, "channel", None)
            if channel is not None:
                channel.close()
            elif self.context.transport is not None:
                self.context.transport.close()
        except Exception:  # noqa: BLE001 - a dead connection: the waiting call fails on its own
            pass

    @property
    def timed_out(self) -> bool:
        # Invoke's own test (the timer thread is no longer alive) is False while kill()
        # still runs, and the channel it closed has already woken the waiting thread.
        return self._deadline_passed

    def run(self, command, **kwargs):
        try:
            result = super().run(command, **kwargs)
        except CommandTimedOut:
            raise
        except Exception:
            if not self._deadline_passed:
                raise
            raise CommandTimedOut(Result(command=command, exited=-1), timeout=self.opts["timeout"]) from None
        if self._deadline_passed:
            raise CommandTimedOut(result, timeout=self.opts["timeout"])
        return result


class _IsolatedFabricConfig(FabricConfig):
    """Fabric's config from Phoenix's settings only.

    Left to itself Fabric reads /etc/fabric.{yaml,yml,json,py} and ~/.fabric.* (a
    `.py` one is executed), FABRIC_* variables (when its CLI asks) and the SSH config:
    a `gateway` there becomes a ProxyCommand, `connect_kwargs.key_filename` adds
    keys, `run.dry` fakes every command.  None of these loaders does anything here,
    clones included (Fabric clones the config for ProxyJump hops, and a clone reloads
    the system and user files)."""

    def load_base_conf_files(self) -> None:
        pass

    def load_system(self, merge: bool = True) -> None:
        pass

    def load_user(self, merge: bool = True) -> None:
        pass

    def load_project(self, merge: bool = True) -> None:
        pass

    def load_runtime(self, merge: bool = True) -> None:
        pass

    def load_shell_env(self) -> None:
        pass

    def load_ssh_config(self) -> None:
        pass


def fabric_config() -> FabricConfig:
    """Fabric's defaults, Phoenix's runner, no SSH config and nothing read from disk."""
    return _IsolatedFabricConfig(
        lazy=True,
        ssh_config=paramiko.SSHConfig(),
        overrides={
            "runners": {"remote": _InMemoryStdinRemote},
            "load_ssh_configs": False,
            "gateway": None,
            "timeouts": {"connect": None, "command": None},
        },
    )


def fabric_connection(host: Reachable, access: VMAccess) -> Connection:
    """A Fabric connection that reads no config file and no ~/.ssh/config, and uses only
    our key and known_hosts.

    The timeouts go to paramiko as given (floats): Fabric's own `connect_timeout`
    passes through `int()`, and 0.5 s would become 0, no timeout at all."""
    timeout = access.connect_timeout_s
    conn = Connection(
        host=host.address,
        user=access.user,
        port=access.port,
        config=fabric_config(),
        gateway=False,
        forward_agent=False,
        connect_kwargs={
            "key_filename": [str(access.private_key_file)],
            "look_for_keys": False,
            "allow_agent": False,
            "timeout": timeout,
            "banner_timeout": timeout,
            "auth_timeout": timeout,
            "channel_timeout": timeout,
        },
    )
    conn.client = _ssh_client(access)
    return conn
