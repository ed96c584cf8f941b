"""The one place where commands reach a host (a VM, or the hypervisor).

Commands are argv lists built by pure functions (`argv.py`); this module quotes them
once (`shell_command`) and hands them to one Fabric connection per host, reused for
the whole run.  That connection is built from Phoenix's settings only: no Fabric or
Invoke config file, no environment variable and no SSH config is read (`ssh_connection.py`,
imported on the first connection: Fabric and paramiko cost start-up time that tasks
reaching no VM should not pay).  At most MAX_CHANNELS_PER_HOST commands and tunnels
are open on a host's connection at once.  Every command
has a deadline unless a step gives its own: `vm_access.command_timeout_s` for a command
that changes something, the shorter `vm_access.read_timeout_s` for one that only reads.  Data a
command reads (a rendered compose file, a config's content) goes on the SSH channel's
stdin: never in a temporary file, never on a command line.
Echoed and logged forms show secrets as ``***`` and stdin only by its size; any
secret value that comes back in a host's output is scrubbed before it leaves here.
"""

from __future__ import annotations

import io
import socket
import threading
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Callable, Iterable, TypeVar

from invoke.exceptions import CommandTimedOut, ThreadException

from .argv import Arg, Argv, display_command, shell_command
from .errors import PhoenixError
from .model import VMAccess
from .reach import KnownHostsInvalid, Reachable, Unreachable
from .secrets import Secret, scrub

__all__ = ["Arg", "Argv", "CommandResult", "KnownHostsInvalid", "RemoteCommandFailed", "TimedOut", "Transport",
           "TunnelRefused", "Unreachable", "display_command", "shell_command"]

T = TypeVar("T")

# OpenSSH's sshd refuses more than `MaxSessions` (default 10) open channels on one
# connection ("Secsh channel open FAILED", paramiko's ChannelException(2, 'Connect
# failed')), and Phoenix keeps one connection per host: 20 label updates sent to the
# manager at once lost 10 of them.  Every command and tunnel to a host takes one of
# these slots for as long as its channel is open; the rest wait their turn.  8 stays
# below the default 10 with room for one interactive `ssh` of an operator (and for a
# channel paramiko has not finished closing yet).
MAX_CHANNELS_PER_HOST = 8


class TimedOut(Unreachable):
    """A command did not finish within its deadline (a hung engine, a hung sshd).

    An `Unreachable`: whoever reads facts treats the VM as one it could not read."""

    def __init__(self, host: "Reachable", display: str, timeout_s: float):
        self.host, self.display, self.timeout_s = host, display, timeout_s
        super().__init__(f"{host}: `{display}` did not finish within {_seconds(timeout_s)} s "
                         f"(the engine or the VM's sshd may be hung)")


def _seconds(value: float) -> str:
    return f"{value:g}"


class RemoteCommandFailed(PhoenixError):
    def __init__(self, host: Reachable, display: str, exited: int, stderr: str):
        self.host, self.display, self.exited, self.stderr = host, display, exited, stderr
        detail = stderr.strip().splitlines()[-1] if stderr.strip() else "no error output"
        super().__init__(f"{host}: `{display}` failed (exit {exited}): {detail}")


class TunnelRefused(PhoenixError):
    """SSH works, but the host could not open the TCP connection asked of it: nothing
    listens there (refused), or its sshd forbids forwarding (AllowTcpForwarding no)."""


@dataclass(frozen=True)
class CommandResult:
    host: Reachable
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

    vm: str  # the host's name
    display: str
    mutating: bool
    stdin_bytes: int = 0


ConnectionFactory = Callable[[Reachable, VMAccess], object]


def fabric_connection(host: Reachable, access: VMAccess):
    """A Fabric connection from Phoenix's settings only (see `ssh_connection.py`, imported
    here, on the first connection, so that tasks that reach no VM never load Fabric)."""
    from .ssh_connection import fabric_connection as connect
    return connect(host, access)


class _SlotChannel:
    """A tunnel's paramiko channel that gives its host's channel slot back when closed
    (once, however often `close` is called); everything else is the channel's."""

    def __init__(self, channel, release: Callable[[], None]):
        self._channel, self._release = channel, release
        self._released = False
        self._release_lock = threading.Lock()

    def close(self) -> None:
        try:
            self._channel.close()
        finally:
            with self._release_lock:
                if not self._released:
                    self._released = True
                    self._release()

    def __getattr__(self, name):
        return getattr(self._channel, name)

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()


class _OpenGate:
    """One host's SSH handshake: a lock, and how the last failed one failed."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.failures = 0
        self.error: BaseException | None = None


class Transport:
    """One connection per host per run; commands in, results out, secrets kept in."""

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
        self._connections: dict[str, object] = {}  # by host name
        self._slots: dict[str, threading.BoundedSemaphore] = {}  # by host name: MAX_CHANNELS_PER_HOST each
        self._gates: dict[str, _OpenGate] = {}  # by host name: one SSH handshake at a time
        self._lock = threading.Lock()
        self._secrets: set[str] = set()
        self.max_workers = max_workers
        self.log: list[CommandRecord] = []

    # -- secrets -------------------------------------------------------------
    def keep_secret(self, secret: Secret) -> Secret:
        """Register a secret so that it is scrubbed from anything a VM prints back (also
        without the trailing newline a value sent on stdin ends with)."""
        with self._lock:
            self._secrets.add(secret.reveal())
            if secret.reveal().strip():
                self._secrets.add(secret.reveal().strip())
        return secret

    def _scrub(self, text: str) -> str:
        return scrub(text, self._secrets) if self._secrets else text

    def scrub(self, text: str) -> str:
        """`text` with every secret this transport knows replaced by ***."""
        return self._scrub(text)

    # -- connections ----------------------------------------------------------
    def _connection(self, host: Reachable):
        with self._lock:
            conn = self._connections.get(host.name)
            if conn is None:
                conn = self._connections[host.name] = self._connect(host, self.access)
        return conn

    def _open(self, host: Reachable, conn) -> None:
        """Open the host's connection once, whichever thread asks first.  Two commands
        sent at once on a connection not yet open would each run the SSH handshake on
        the same client (Fabric's `open()` is not thread-safe): one transport leaks.
        Threads that ask while it opens wait for that handshake and share its failure,
        so an unreachable host costs one connect timeout, not one per thread."""
        if not callable(getattr(conn, "open", None)) or getattr(conn, "is_connected", True):
            return  # open already (or a test double that keeps no such state)
        with self._lock:
            gate = self._gates.setdefault(host.name, _OpenGate())
        ticket = gate.failures
        with gate.lock:
            if conn.is_connected:
                return
            if gate.failures != ticket and gate.error is not None:
                raise gate.error  # it failed while this thread waited: the same answer
            try:
                conn.open()
            except BaseException as exc:
                gate.failures, gate.error = gate.failures + 1, exc
                raise

    def _channel_slots(self, host: Reachable) -> threading.BoundedSemaphore:
        """The host's open-channel slots (shared by every connection to it, a reconnect included)."""
        with self._lock:
            slots = self._slots.get(host.name)
            if slots is None:
                slots = self._slots[host.name] = threading.BoundedSemaphore(MAX_CHANNELS_PER_HOST)
        return slots

    def _forget(self, host: Reachable, conn) -> None:
        """Drop a connection that timed out: the next command to the host opens a new one."""
        with self._lock:
            if self._connections.get(host.name) is conn:
                del self._connections[host.name]
        close = getattr(conn, "close", None)
        if close:
            try:
                close()
            except Exception:  # noqa: BLE001 - a hung connection may fail to close; it is dropped anyway
                pass

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
    def run(self, host: Reachable, argv: Argv, *, mutating: bool, check: bool = True,
            stdin: str | Secret | None = None, quiet: bool = False,
            timeout: float | None = None, secret_output: bool = False,
            display: str | None = None, hold_stdin: bool = False) -> CommandResult:
        """Run one command on a host.  `check`: a non-zero exit raises RemoteCommandFailed.
        `stdin`: data the command reads on its standard input (closed after it).
        `quiet`: not echoed (a poll repeated every second); still in the run log.
        `timeout`: the command's deadline in seconds (default: the access's
        `command_timeout_s` for a mutating command, `read_timeout_s` for a read, never more
        than the former); past it, TimedOut (an Unreachable).
        `secret_output`: the command prints a secret (a join token, an unlock key) that the
        caller wraps in a `Secret` at once: its stdout is returned as printed, not
        scrubbed of secrets already known (a token read twice must compare equal).
        `display`: how the command is echoed, logged and named in errors, when its argv
        alone says too little (an Engine API request on stdin, engine_api.py).
        `hold_stdin`: `stdin` is not closed after its data, only when the command ends (an
        engine's API stream, where a closed stdin cancels the request being answered)."""
        import paramiko  # loaded already by the connection; imported here, not at start-up

        display = display or display_command(argv)
        deadline = float(timeout) if timeout is not None else self.access.deadline(mutating)
        data = None
        if stdin is not None:
            data = self.keep_secret(stdin).reveal() if isinstance(stdin, Secret) else stdin
        size = len(data.encode()) if data is not None else 0
        with self._lock:
            self.log.append(CommandRecord(host.name, display, mutating, size))
        if self.echo and not quiet:
            self.echo(f"[{host.name}] $ {display}" + (f" < ({size} bytes on stdin)" if data is not None else ""))
        conn = self._connection(host)
        in_stream = (_HeldOpen(data) if hold_stdin else io.StringIO(data)) if data is not None else False
        try:
            self._open(host, conn)
            with self._channel_slots(host):
                res = conn.run(shell_command(argv), hide=True, warn=True, in_stream=in_stream, timeout=deadline)
        except CommandTimedOut:
            self._forget(host, conn)
            raise TimedOut(host, display, deadline) from None
        except paramiko.BadHostKeyException:
            raise Unreachable(
                f"{host}: the host key of {host.address} changed (known_hosts {self.access.known_hosts_file}); "
                f"refusing to connect. If the VM was re-created, remove its old key: "
                f"ssh-keygen -f {self.access.known_hosts_file} -R {host.address}"
            ) from None
        except paramiko.SSHException as exc:
            raise Unreachable(f"{host}: SSH to {host.address}:{self.access.port} failed: {self._scrub(str(exc))}") from None
        except (OSError, socket.timeout, EOFError) as exc:
            reason = self._scrub(str(exc) or type(exc).__name__)
            raise Unreachable(f"{host}: cannot reach {host.address}:{self.access.port} over SSH: {reason}") from None
        except ThreadException as exc:
            # The connection broke while Invoke's threads fed stdin or read output.
            self._forget(host, conn)
            causes = "; ".join(self._scrub(str(e.value) or e.type.__name__) for e in exc.exceptions)
            raise Unreachable(f"{host}: the SSH connection to {host.address} broke during "
                              f"`{display}`: {causes or 'no detail'}") from None
        stdout = res.stdout if secret_output else self._scrub(res.stdout)
        result = CommandResult(host, display, res.exited, stdout, self._scrub(res.stderr))
        if check and not result.ok:
            raise RemoteCommandFailed(host, display, result.exited, result.stderr)
        return result

    @contextmanager
    def channel(self, host: Reachable, argv: Argv, *, mutating: bool, timeout: float | None = None):
        """A command's raw SSH channel, for bytes streamed through this machine (a volume
        carried from one VM to another: portainer_data.py): yields the paramiko channel
        with the command started (send/recv/shutdown_write, recv_stderr, exit status);
        every blocking call on it waits at most `timeout` (default: the access's
        deadline for a read or a write).  Closed, and its slot given back, on exit."""
        import paramiko  # loaded already by the connection; imported here, not at start-up

        display = display_command(argv)
        deadline = float(timeout) if timeout is not None else self.access.deadline(mutating)
        with self._lock:
            self.log.append(CommandRecord(host.name, display, mutating))
        if self.echo:
            self.echo(f"[{host.name}] $ {display} (a byte stream, through SSH)")
        conn = self._connection(host)
        with self._channel_slots(host):
            try:
                self._open(host, conn)
                chan = conn.client.get_transport().open_session(timeout=self.access.connect_timeout_s)
                chan.settimeout(deadline)
                chan.exec_command(shell_command(argv))
            except paramiko.SSHException as exc:
                raise Unreachable(f"{host}: SSH to {host.address}:{self.access.port} failed: "
                                  f"{self._scrub(str(exc))}") from None
            except (OSError, EOFError) as exc:
                reason = self._scrub(str(exc) or type(exc).__name__)
                raise Unreachable(f"{host}: cannot reach {host.address}:{self.access.port} over SSH: "
                                  f"{reason}") from None
            try:
                yield chan
            except socket.timeout:
                raise TimedOut(host, display, deadline) from None
            finally:
                chan.close()

    def tunnel(self, host: Reachable, address: str, port: int):
        """A TCP stream to address:port, opened by the host's sshd (SSH `direct-tcpip`):
        the connection starts on the host, over its network.  A paramiko channel
        (sendall, recv, settimeout, close); the caller closes it.  Logged as a read."""
        display = f"connect {address}:{port}"
        with self._lock:
            self.log.append(CommandRecord(host.name, display, False))
        if self.echo:
            self.echo(f"[{host.name}] $ ({display}, through SSH)")
        slots = self._channel_slots(host)
        slots.acquire()  # held until the caller closes the stream
        try:
            channel = self._open_tunnel(host, address, port)
        except BaseException:
            slots.release()
            raise
        return _SlotChannel(channel, slots.release)

    def _open_tunnel(self, host: Reachable, address: str, port: int):
        import paramiko  # loaded already by the connection; imported here, not at start-up

        conn = self._connection(host)
        timeout = self.access.connect_timeout_s
        try:
            self._open(host, conn)
            return conn.client.get_transport().open_channel(
                "direct-tcpip", (address, int(port)), ("127.0.0.1", 0), timeout=timeout)
        except paramiko.ChannelException as exc:
            why = {1: "its sshd forbids TCP forwarding (AllowTcpForwarding)",
                   2: "connection refused or no route: nothing listens there"}.get(exc.code, exc.text)
            raise TunnelRefused(f"{host}: cannot connect to {address}:{port} from the VM: {why}") from None
        except paramiko.BadHostKeyException:
            raise Unreachable(f"{host}: the host key of {host.address} changed; refusing to connect") from None
        except paramiko.SSHException as exc:
            if "Timeout opening channel" in str(exc):
                raise TunnelRefused(f"{host}: cannot connect to {address}:{port} from the VM: "
                                    f"no answer within {_seconds(timeout)} s") from None
            raise Unreachable(f"{host}: SSH to {host.address}:{self.access.port} failed: {self._scrub(str(exc))}") from None
        except (OSError, EOFError) as exc:
            reason = self._scrub(str(exc) or type(exc).__name__)
            raise Unreachable(f"{host}: cannot reach {host.address}:{self.access.port} over SSH: {reason}") from None

    def each(self, hosts: Iterable[Reachable], fn: Callable[[Reachable], T], *,
             parallel: bool = True) -> dict[str, T | PhoenixError]:
        """`fn(host)` on every host (in parallel, or in order); a result or the
        PhoenixError it raised, per host name (one failing host never hides the others)."""
        hosts = list(hosts)
        if not hosts:
            return {}

        def guarded(host: Reachable):
            try:
                return fn(host)
            except KnownHostsInvalid:
                raise  # the same for every host: one message, not one per VM
            except PhoenixError as exc:
                return exc

        workers = min(self.max_workers, len(hosts)) if parallel else 1
        with ThreadPoolExecutor(max_workers=workers) as pool:
            results = list(pool.map(guarded, hosts))
        return {host.name: r for host, r in zip(hosts, results)}

    @property
    def mutating_commands(self) -> list[CommandRecord]:
        return [r for r in self.log if r.mutating]

    # -- streaming ---------------------------------------------------------------
    def stream(self, host: Reachable, argv: Argv, on_line: Callable[[str], None], *,
               stop: threading.Event | None = None, poll_s: float = 0.2) -> int | None:
        """Run a long-lived read (`docker service logs --follow`) on a host and hand each
        line of its output to `on_line` as it comes, until the command ends (its exit
        status is returned) or `stop` is set (None is returned).

        The command runs on a pseudo-terminal, so that closing the channel ends it: sshd
        closes the terminal and the kernel hangs up (SIGHUP) the command's process group.
        Without a terminal, sshd only closes the command's pipes, and a `--follow` that has
        nothing to write never notices: it would stay on the VM after the run.  A terminal
        merges stderr into the output and ends lines with CR LF; lines come without it.
        Ctrl-C (KeyboardInterrupt) in the caller closes the channel the same way."""
        import paramiko  # loaded already by the connection; imported here, not at start-up

        display = display_command(argv)
        with self._lock:
            self.log.append(CommandRecord(host.name, display, False))
        if self.echo:
            self.echo(f"[{host.name}] $ {display} (streamed)")
        conn = self._connection(host)
        try:
            self._open(host, conn)
            slots = self._channel_slots(host)
            with slots:
                channel = conn.client.get_transport().open_session(timeout=self.access.connect_timeout_s)
                try:
                    channel.get_pty(term="dumb", width=500, height=24)
                    channel.exec_command(shell_command(argv))
                    channel.settimeout(poll_s)
                    return self._pump(channel, on_line, stop)
                finally:
                    channel.close()
        except paramiko.SSHException as exc:
            raise Unreachable(f"{host}: SSH to {host.address}:{self.access.port} failed: {self._scrub(str(exc))}") from None
        except (OSError, EOFError) as exc:
            reason = self._scrub(str(exc) or type(exc).__name__)
            raise Unreachable(f"{host}: cannot reach {host.address}:{self.access.port} over SSH: {reason}") from None

    def _pump(self, channel, on_line: Callable[[str], None], stop: threading.Event | None) -> int | None:
        pending = b""
        while True:
            if stop is not None and stop.is_set():
                return None
            try:
                data = channel.recv(65536)
            except socket.timeout:
                continue
            if not data:
                break
            pending += data
            *lines, pending = pending.split(b"\n")
            for line in lines:
                on_line(self._scrub(line.decode("utf-8", errors="replace").rstrip("\r")))
        if pending:
            on_line(self._scrub(pending.decode("utf-8", errors="replace").rstrip("\r")))
        return channel.recv_exit_status()


class _HeldOpen(io.StringIO):
    """Stdin data that never reaches end of file: once read, "nothing yet" (None) until the
    command ends (Invoke closes a process's stdin on an empty read, not on None)."""

    def read(self, size: int | None = -1):
        return super().read(size) or None
