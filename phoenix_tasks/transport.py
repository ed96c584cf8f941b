"""The one place where commands reach a VM.

Commands are argv lists (`list[str | Secret]`) built by pure functions; this module
quotes them once with `shlex.join` and hands them to one Fabric connection per VM,
reused for the whole run.  Echoed and logged forms show secrets as ``***``; any
secret value that comes back in a VM's output is scrubbed before it leaves here.
"""

from __future__ import annotations

import shlex
import socket
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable, Sequence, TypeVar

import paramiko
from fabric import Config as FabricConfig
from fabric import Connection

from .errors import PhoenixError
from .model import VM, VMAccess
from .secrets import MASK, Secret, scrub

Arg = str | Secret
Argv = Sequence[Arg]
T = TypeVar("T")


def shell_command(argv: Argv) -> str:
    """The command line sent to the VM: the single quoting boundary."""
    return shlex.join(a.reveal() if isinstance(a, Secret) else str(a) for a in argv)


def display_command(argv: Argv) -> str:
    """The command as people and logs see it: secrets masked."""
    return shlex.join(MASK if isinstance(a, Secret) else str(a) for a in argv)


class Unreachable(PhoenixError):
    """SSH to the VM failed: no connection, refused, auth or host key problem."""


class RemoteCommandFailed(PhoenixError):
    def __init__(self, vm: VM, display: str, exited: int, stderr: str):
        self.vm, self.display, self.exited, self.stderr = vm, display, exited, stderr
        detail = stderr.strip().splitlines()[-1] if stderr.strip() else "no error output"
        super().__init__(f"{vm}: `{display}` failed (exit {exited}): {detail}")


@dataclass(frozen=True)
class CommandResult:
    vm: VM
    display: str
    exited: int
    stdout: str
    stderr: str

    @property
    def ok(self) -> bool:
        return self.exited == 0


@dataclass(frozen=True)
class CommandRecord:
    """What the run log keeps of a command: never a secret."""

    vm: str
    display: str
    mutating: bool


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


def _ssh_client(access: VMAccess) -> paramiko.SSHClient:
    client = paramiko.SSHClient()
    known = access.known_hosts_file
    if access.host_key_policy == "strict":
        if not known.is_file():
            raise Unreachable(f"known_hosts file {known} not found, and host_key_policy is 'strict'")
        client.load_host_keys(str(known))
        client.set_missing_host_key_policy(paramiko.RejectPolicy())
    elif access.host_key_policy == "accept-new":
        if known.is_file():
            client.get_host_keys().load(str(known))
        client.set_missing_host_key_policy(_AcceptNewPolicy(known))
    else:
        client.set_missing_host_key_policy(_AcceptAnyPolicy())
    return client


ConnectionFactory = Callable[[VM, VMAccess], object]


def fabric_connection(vm: VM, access: VMAccess) -> Connection:
    """A Fabric connection that reads no ~/.ssh/config and uses only our key and known_hosts."""
    conn = Connection(
        host=vm.address,
        user=access.user,
        port=access.port,
        config=FabricConfig(ssh_config=paramiko.SSHConfig()),
        connect_timeout=access.connect_timeout_s,
        connect_kwargs={
            "key_filename": [str(access.private_key_file)],
            "look_for_keys": False,
            "allow_agent": False,
            "banner_timeout": access.connect_timeout_s,
            "auth_timeout": access.connect_timeout_s,
        },
    )
    conn.client = _ssh_client(access)
    return conn


class Transport:
    """One connection per VM per run; commands in, results out, secrets kept in."""

    def __init__(
        self,
        access: VMAccess,
        *,
        echo: Callable[[str], None] | None = None,
        connect: ConnectionFactory = fabric_connection,
        max_workers: int = 16,
    ):
        self.access = access
        self.echo = echo
        self._connect = connect
        self._connections: dict[int, object] = {}
        self._lock = threading.Lock()
        self._secrets: set[str] = set()
        self.max_workers = max_workers
        self.log: list[CommandRecord] = []

    # -- secrets -------------------------------------------------------------
    def keep_secret(self, secret: Secret) -> Secret:
        """Register a secret so that it is scrubbed from anything a VM prints back."""
        with self._lock:
            self._secrets.add(secret.reveal())
        return secret

    def _scrub(self, text: str) -> str:
        return scrub(text, self._secrets) if self._secrets else text

    # -- connections ----------------------------------------------------------
    def _connection(self, vm: VM):
        with self._lock:
            conn = self._connections.get(vm.vmid)
            if conn is None:
                conn = self._connections[vm.vmid] = self._connect(vm, self.access)
        return conn

    def close(self) -> None:
        with self._lock:
            conns, self._connections = list(self._connections.values()), {}
        for conn in conns:
            close = getattr(conn, "close", None)
            if close:
                close()

    def __enter__(self) -> "Transport":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # -- running ---------------------------------------------------------------
    def run(self, vm: VM, argv: Argv, *, mutating: bool, check: bool = True) -> CommandResult:
        """Run one command on a VM.  `check`: a non-zero exit raises RemoteCommandFailed."""
        display = display_command(argv)
        with self._lock:
            self.log.append(CommandRecord(vm.name, display, mutating))
        if self.echo:
            self.echo(f"[{vm.name}] $ {display}")
        conn = self._connection(vm)
        try:
            res = conn.run(shell_command(argv), hide=True, warn=True, in_stream=False)
        except paramiko.BadHostKeyException:
            raise Unreachable(
                f"{vm}: the host key of {vm.address} changed (known_hosts {self.access.known_hosts_file}); "
                f"refusing to connect. If the VM was re-created, remove its old key: "
                f"ssh-keygen -f {self.access.known_hosts_file} -R {vm.address}"
            ) from None
        except paramiko.SSHException as exc:
            raise Unreachable(f"{vm}: SSH to {vm.address}:{self.access.port} failed: {self._scrub(str(exc))}") from None
        except (OSError, socket.timeout, EOFError) as exc:
            reason = self._scrub(str(exc) or type(exc).__name__)
            raise Unreachable(f"{vm}: cannot reach {vm.address}:{self.access.port} over SSH: {reason}") from None
        result = CommandResult(vm, display, res.exited, self._scrub(res.stdout), self._scrub(res.stderr))
        if check and not result.ok:
            raise RemoteCommandFailed(vm, display, result.exited, result.stderr)
        return result

    def each(self, vms: Iterable[VM], fn: Callable[[VM], T], *, parallel: bool = True) -> dict[int, T | PhoenixError]:
        """`fn(vm)` on every VM (in parallel, or in order); a result or the PhoenixError
        it raised, per vmid."""
        vms = list(vms)
        if not vms:
            return {}

        def guarded(vm: VM):
            try:
                return fn(vm)
            except PhoenixError as exc:
                return exc

        workers = min(self.max_workers, len(vms)) if parallel else 1
        with ThreadPoolExecutor(max_workers=workers) as pool:
            results = list(pool.map(guarded, vms))
        return {vm.vmid: r for vm, r in zip(vms, results)}

    @property
    def mutating_commands(self) -> list[CommandRecord]:
        return [r for r in self.log if r.mutating]
