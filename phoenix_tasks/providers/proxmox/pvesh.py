"""The Proxmox VE API through `pvesh` on the Proxmox host: `PveshClient(settings, run=...)`.

The other backend of `clients.client_for` (``proxmox.api: ssh``): the same
`request(ApiCall) -> data` as the HTTPS client, for running Phoenix from a machine
that may SSH to the host as root but holds no API token.  pvesh is Proxmox's CLI for
its API (pve-manager ``PVE/CLI/pvesh.pm``): ``get``/``create``/``set`` are GET/POST/PUT
on the same paths, each parameter an option, and it runs as root with no token.

- One call is one command: ``pvesh VERB PATH --key value ... --output-format json``
  (`pvesh_argv`, pure).  The path is the raw API path (no URL quoting: pvesh takes
  path segments, a UPID's ``:@!`` included); each value is one argument, quoted once
  by the transport (`argv.shell_command`).  ``sshkeys`` goes as `api.encode_sshkeys`
  made it: qemu-server URL-decodes the value itself, after the HTTP layer's decoding,
  and pvesh hands the handler the value with no decoding of its own.
- The answer is stdout's JSON (``to_json`` of the handler's result; nothing at all
  for a ``null`` result -> None).  A task is run by pvesh in the foreground (the CLI
  environment's ``fork_worker`` waits for it): its log comes first on stdout, the
  UPID (a JSON string) last, and a task that fails still exits 0 with its error on
  stderr.  The caller reads the task's status by its UPID, as over HTTPS.
- A non-zero exit is `ApiError` with the first line of stderr that says something
  (not "trying to acquire lock...", not a ``WARN:``): "VM is locked (clone)" keeps its
  `lock`, "can't lock file '...' - got timeout" its text.  A parameter error keeps its
  status ("400 Parameter verification failed." plus each ``name: message`` line).
  pvesh missing, or refusing a user that is not root: `PveshUnavailable`.
- The command runs through `run(argv, *, mutating, timeout_s) -> (exit, stdout,
  stderr)`, injected; `ssh_runner(settings)` is the production one, over Phoenix's
  transport.  Reads get `READ_TIMEOUT_S`; changes `CHANGE_TIMEOUT_S`, because a clone
  runs inside the command, and a command past its deadline loses its SSH session,
  which ends the task with it.

Host key policy (`ssh_runner`): the Proxmox host is checked as the VMs are, with
``vm_access.host_key_policy`` against ``vm_access.known_hosts_file`` (the loader copies
both into `ProxmoxSettings`): one trust store Phoenix writes, no ~/.ssh/known_hosts or
~/.ssh/config read.  The key is ``proxmox.ssh_key_file``, or else the SSH agent's keys
and ~/.ssh's default ones, as ``ssh root@host`` would offer them.

Not verified against a live Proxmox host: the output and error shapes above are read
from pve-manager's and pve-common's source (pvesh.pm, CLIHandler, CLIFormatter,
RESTEnvironment::fork_worker, Exception::stringify, Tools::lock_file_full).  A call
naming another cluster node is proxied by pvesh itself (root SSH between nodes).
"""

from __future__ import annotations

import json
import logging
import re
from pathlib import Path
from typing import Any, Callable, Protocol, Sequence

from ...core.errors import PhoenixError
from ...core.model import Host, ProxmoxSettings, VMAccess
from ...core.transport import TimedOut, Transport, Unreachable, fabric_connection
from .api import ApiCall
from .http import ApiUnreachable
from .task_wait import ApiError

VERBS = {"GET": "get", "POST": "create", "PUT": "set"}
PARAM_NAME = re.compile(r"[a-z][a-z0-9_-]*")  # newid, ipconfig0, sshkeys
# pvesh's own options (RESTHandler's standard output options, --noproxy): never an API parameter here
PVESH_OPTIONS = frozenset({"output-format", "quiet", "noproxy", "human-readable", "noborder", "noheader"})
READ_TIMEOUT_S = 60.0
CHANGE_TIMEOUT_S = 3600.0  # a full clone runs inside the command
NOT_FOUND_EXIT = 127

# stderr lines that are progress or warnings, not the error
NOISE = re.compile(r"trying to acquire lock\.\.\.(\s*OK)?|OK|WARN: .*|Task finished with \d+ warning\(s\)!")
STATUS_LINE = re.compile(r"(?P<status>[1-5][0-9][0-9]) (?P<reason>\S.*)")  # PVE::Exception with a code
PARAM_ERROR = re.compile(r"(?P<name>[a-z][a-z0-9_-]*): (?P<text>\S.*)")
NOT_ROOT = "please run as root"
NOT_FOUND = re.compile(r"pvesh\b.*: (command )?not found")  # bash, dash: the shell could not find it

log = logging.getLogger(__name__)


class PveshUnavailable(ApiUnreachable):
    """pvesh could not run on the host: not installed (not a Proxmox VE host), or not root."""


class Run(Protocol):
    def __call__(self, argv: Sequence[str], *, mutating: bool, timeout_s: float) -> tuple[int, str, str]: ...


def pvesh_argv(call: ApiCall) -> list[str]:
    """The pvesh command for one API call (pure)."""
    argv = ["pvesh", VERBS[call.method], call.path]
    for name, value in call.params:
        if not PARAM_NAME.fullmatch(name) or name in PVESH_OPTIONS:
            raise ValueError(f"{name!r} is not a Proxmox API parameter name")
        argv += [f"--{name}", str(value)]
    return argv + ["--output-format", "json"]


def _lines(text: str) -> list[str]:
    return [" ".join(line.split()) for line in text.splitlines() if line.strip()]


def api_error(exit_code: int, stderr: str) -> ApiError:
    """The error pvesh printed (it dies with the handler's message) as the HTTPS client reports it."""
    lines = [line for line in _lines(stderr) if not NOISE.fullmatch(line)]
    if not lines:
        return ApiError(500, f"pvesh exited {exit_code} with no error message")
    m = STATUS_LINE.fullmatch(lines[0])
    if not m:
        return ApiError(500, lines[0])
    params = []
    for line in lines[1:]:
        p = PARAM_ERROR.fullmatch(line)
        if not p:
            break  # the usage text that follows
        params.append(f"{p['name']}: {p['text']}")
    reason = m["reason"] + (f" ({'; '.join(sorted(params))})" if params else "")
    return ApiError(int(m["status"]), reason)


class PveshClient:
    """The Proxmox VE API through pvesh on the host, one `ApiCall` at a time."""

    def __init__(self, settings: ProxmoxSettings, *, run: Run,
                 read_timeout_s: float = READ_TIMEOUT_S, change_timeout_s: float = CHANGE_TIMEOUT_S):
        self.host = settings.host
        self.port = settings.ssh_port
        self.user = settings.ssh_user
        self.read_timeout_s = read_timeout_s
        self.change_timeout_s = change_timeout_s
        self._run = run

    @property
    def where(self) -> str:
        return f"{self.host}:{self.port}"

    def __repr__(self) -> str:
        return f"PveshClient(ssh://{self.user}@{self.where}, pvesh)"

    __str__ = __repr__

    def close(self) -> None:
        close = getattr(self._run, "close", None)
        if close:
            close()

    def __enter__(self) -> "PveshClient":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def request(self, call: ApiCall) -> Any:
        """Run `call` with pvesh; the answer's data (None when pvesh prints none)."""
        log.debug("proxmox pvesh %s: %s", self.where, call)
        timeout_s = self.change_timeout_s if call.mutating else self.read_timeout_s
        exit_code, stdout, stderr = self._run(pvesh_argv(call), mutating=call.mutating, timeout_s=timeout_s)
        if exit_code != 0:
            raise self._failure(exit_code, stderr)
        if stderr.strip():
            log.debug("pvesh %s stderr: %s", self.where, " | ".join(_lines(stderr)))
        return self._answer(call, stdout)

    def _failure(self, exit_code: int, stderr: str) -> PhoenixError:
        lines = _lines(stderr)
        # (pvesh's own exit code on an error is Perl's `die`'s: errno, or 255, so 127 alone says little)
        if exit_code == NOT_FOUND_EXIT and any(NOT_FOUND.search(line) for line in lines):
            return PveshUnavailable(f"pvesh is not on {self.where} (exit {exit_code}: {lines[-1]}); "
                                    "is it a Proxmox VE host? (proxmox.api 'ssh' runs pvesh there)")
        if any(line == NOT_ROOT for line in lines):
            return PveshUnavailable(f"pvesh on {self.where} refuses user {self.user}: it runs only as root "
                                    "(proxmox.ssh_user)")
        return api_error(exit_code, stderr)

    def _answer(self, call: ApiCall, stdout: str) -> Any:
        text = stdout.strip()
        if not text:
            return None
        try:
            return json.loads(text)
        except ValueError:
            pass
        if call.returns_task:  # the task's log, then the UPID as a JSON string
            try:
                upid = json.loads(text.splitlines()[-1])
            except ValueError:
                upid = None
            if isinstance(upid, str) and upid.startswith("UPID:"):
                return upid
        raise ApiUnreachable(f"pvesh on {self.where} answered {call.method} {call.path} "
                             "with something that is not JSON")


# -- the production runner: SSH to the Proxmox host --------------------------------------

def proxmox_access(settings: ProxmoxSettings) -> VMAccess:
    """How the transport reaches the Proxmox host (`VMAccess` is its type for any host)."""
    if settings.ssh_known_hosts_file is None and settings.ssh_host_key_policy != "off":
        raise PhoenixError("no known_hosts file for SSH to the Proxmox host (vm_access.known_hosts_file)")
    return VMAccess(
        user=settings.ssh_user,
        port=settings.ssh_port,
        # May be None (no key file): only `_connection` reads it, and then offers the
        # agent's keys and ~/.ssh's default ones instead.
        private_key_file=settings.ssh_key_file,
        host_key_policy=settings.ssh_host_key_policy,
        known_hosts_file=settings.ssh_known_hosts_file,  # None only with policy 'off', which reads none
        connect_timeout_s=settings.ssh_connect_timeout_s,
        command_timeout_s=READ_TIMEOUT_S,
    )


def _connection(key_file: Path | None) -> Callable[[Host, VMAccess], object]:
    def connect(host: Host, access: VMAccess):
        conn = fabric_connection(host, access)  # Phoenix's Fabric config, deadlines, host key policy
        if key_file is None:
            conn.connect_kwargs.update(key_filename=[], look_for_keys=True, allow_agent=True)
        return conn
    return connect


class SshRunner:
    """`run` for `PveshClient`: each argv over one SSH connection to the Proxmox host,
    through Phoenix's transport (quoted once, logged, echoed when `echo` is given)."""

    def __init__(self, settings: ProxmoxSettings, *, echo: Callable[[str], None] | None = None):
        self.host = Host("proxmox host", settings.host)
        self.transport = Transport(proxmox_access(settings), echo=echo, connect=_connection(settings.ssh_key_file))

    def __call__(self, argv: Sequence[str], *, mutating: bool, timeout_s: float) -> tuple[int, str, str]:
        try:
            result = self.transport.run(self.host, argv, mutating=mutating, check=False, quiet=not mutating,
                                        timeout=timeout_s)
        except TimedOut as exc:
            raise ApiUnreachable(f"{self.host}: `{exc.display}` on {self.where} did not finish within "
                                 f"{exc.timeout_s:g} s (a task pvesh runs ends with its SSH session)") from None
        except Unreachable as exc:  # one line naming host:port
            raise ApiUnreachable(str(exc)) from None
        return result.exited, result.stdout, result.stderr

    @property
    def where(self) -> str:
        return f"{self.host.address}:{self.transport.access.port}"

    def close(self) -> None:
        self.transport.close()

    def __repr__(self) -> str:
        return f"SshRunner({self.transport.access.user}@{self.where})"


def ssh_runner(settings: ProxmoxSettings, *, echo: Callable[[str], None] | None = None) -> SshRunner:
    return SshRunner(settings, echo=echo)
