"""Portainer's data follows its server when a role change moves it (issue 21, item 10).

Portainer's server is pinned to the first configured manager (`node.hostname == X`,
portainer.py): its data volume (`<namespace>_portainer_data`, a local volume) lives on
that node.  A role change that makes another VM the first manager would start the
server there on an empty volume, and the admin user and the settings would stay
behind.  So `sync-all` reads where the deployed server is pinned; when that is not the
first configured manager any more:

- the plan says so, before anything changes ("the server moves from A to B: its data
  volume V is carried over");
- after the swarm stage, before Portainer's deploy: the server is stopped (scaled to
  0, every task gone); V is streamed from A to B through this machine's two SSH
  connections (`docker cp CONTAINER:/v/. -` on A into `docker cp - CONTAINER:/v` on B,
  each CONTAINER created, never started, only to hold V: the engines make and read
  the tar themselves, so no image needs a tar or a shell: Portainer's own image has
  neither); the copy is verified (every file's path, size and SHA-256, read back from
  both nodes); then the deploy starts the server on B and the next stage checks that it
  answers.
- Nothing is deleted on A: its V stays as it was.  A V already on B with data (a copy a
  swap the other way left there) is kept first as `<V>_before_<UTC time>` on B (copied
  and verified the same way), then replaced.
- When it cannot be carried (A is no configured VM, A does not answer, the copy
  fails): Portainer is not deployed, so the server does not start empty; the run says
  why and exits 1.  The server stays stopped until A answers again (or the role
  change is undone).
"""

from __future__ import annotations

import hashlib
import re
import tarfile
import time
from dataclasses import dataclass
from typing import Callable

from ..core.argv import Arg
from ..core.errors import PhoenixError
from ..core.model import VM, Config
from ..stack.facts import StackRead
from ..docker.render import STACK_NAMESPACE_LABEL
from ..core.transport import RemoteCommandFailed, Transport

HOSTNAME_PIN = re.compile(r"^\s*node\.hostname\s*==\s*(\S+)\s*$")
HOLDER_LABEL = "io.phoenix.volume-copy"
HOLDER_PATH = "/v"
CHUNK = 65536


class DataMoveFailed(PhoenixError):
    """Portainer's data could not be carried to the new first manager."""


@dataclass(frozen=True)
class DataMove:
    service: str  # the server's service
    old: str  # the node (hostname) its data is on
    new: VM  # the first configured manager
    volumes: tuple[str, ...]  # the server's named volumes
    image: str  # the server's image: holds the volumes (created, never started)
    old_vm: VM | None  # the configured VM named `old` (None: none is)
    namespace: str

    def summary(self) -> str:
        names = ", ".join(self.volumes) or "no named volume"
        if self.old_vm is None:
            return (f"its server moves from node {self.old} to {self.new.name} (the first configured manager), but "
                    f"no configured VM is {self.old}: its data ({names}) cannot be carried over; Portainer is "
                    f"not deployed")
        return (f"its server moves from {self.old} to {self.new.name} (the first configured manager): "
                f"its data ({names}) is carried over: the server stopped, each volume copied from "
                f"{self.old} to {self.new.name} through this machine and verified; nothing is deleted on "
                f"{self.old}")


def plan_move(config: Config, read: StackRead, server: str, namespace: str) -> DataMove | None:
    """The move a role change makes (pure): None when the deployed server is pinned to
    the first configured manager already, or is not deployed, or is pinned to no node."""
    facts = read.services.get(server)
    if facts is None or not config.managers:
        return None
    template = facts.task_template or {}
    pinned = [m.group(1) for c in ((template.get("Placement") or {}).get("Constraints") or [])
              if (m := HOSTNAME_PIN.match(c))]
    new = config.managers[0]
    if not pinned or pinned[0] == new.name:
        return None
    spec = template.get("ContainerSpec") or {}
    volumes = tuple(m["Source"] for m in spec.get("Mounts") or [] if m.get("Type") == "volume" and m.get("Source"))
    old_vm = next((vm for vm in config.swarm_vms if vm.name == pinned[0]), None)
    return DataMove(server, pinned[0], new, volumes, str(spec.get("Image", "")), old_vm, namespace)


# -- commands (pure argv) -------------------------------------------------------------
def scale_argv(service: str, replicas: int) -> list[Arg]:
    return ["docker", "service", "scale", "--detach", f"{service}={int(replicas)}"]


def running_tasks_argv(service: str) -> list[Arg]:
    return ["docker", "service", "ps", "-q", "--filter", "desired-state=running", "--", service]


def pull_argv(image: str) -> list[Arg]:
    return ["docker", "pull", "--quiet", "--", image]


def volume_inspect_argv(volume: str) -> list[Arg]:
    return ["docker", "volume", "inspect", "--format", "{{.Name}}", "--", volume]


def volume_users_argv(volume: str) -> list[Arg]:
    """The containers that use `volume`: "<id> <state> <swarm service>" each."""
    return ["docker", "ps", "-a", "--no-trunc", "--filter", f"volume={volume}",
            "--format", '{{.ID}} {{.State}} {{.Label "com.docker.swarm.service.name"}}']


def volume_create_argv(volume: str, namespace: str) -> list[Arg]:
    return ["docker", "volume", "create", "--label", f"{STACK_NAMESPACE_LABEL}={namespace}", "--", volume]


def volume_rm_argv(volume: str) -> list[Arg]:
    return ["docker", "volume", "rm", "--", volume]


def holder_argv(volume: str, image: str) -> list[Arg]:
    """A container that only holds `volume` at /v (created, never started)."""
    return ["docker", "container", "create", "--label", f"{HOLDER_LABEL}=1", "--network", "none",
            "-v", f"{volume}:{HOLDER_PATH}", "--", image]


def holder_rm_argv(container: str) -> list[Arg]:
    return ["docker", "container", "rm", "--force", "--", container]


def cp_out_argv(container: str) -> list[Arg]:
    return ["docker", "cp", f"{container}:{HOLDER_PATH}/.", "-"]


def cp_in_argv(container: str) -> list[Arg]:
    return ["docker", "cp", "-", f"{container}:{HOLDER_PATH}"]


# -- streams -------------------------------------------------------------------------
def _finish(chan, host, display: str, deadline: float) -> None:
    """Wait for the command's exit; RemoteCommandFailed with its stderr unless 0."""
    end = time.monotonic() + deadline
    while not chan.exit_status_ready():
        if time.monotonic() > end:
            raise DataMoveFailed(f"{host}: `{display}` did not end within {deadline:g} s")
        time.sleep(0.05)
    err = b""
    while chan.recv_stderr_ready():
        err += chan.recv_stderr(CHUNK)
    code = chan.recv_exit_status()
    if code != 0:
        raise RemoteCommandFailed(host, display, code, err.decode(errors="replace"))


def pipe(transport: Transport, src: VM, src_argv, dst: VM, dst_argv, timeout_s: float) -> int:
    """`src_argv`'s stdout on `src` into `dst_argv`'s stdin on `dst`, through this
    machine (two SSH channels, bytes only); the byte count."""
    total = 0
    with transport.channel(src, src_argv, mutating=False, timeout=timeout_s) as out, \
            transport.channel(dst, dst_argv, mutating=True, timeout=timeout_s) as into:
        while True:
            data = out.recv(CHUNK)
            if not data:
                break
            into.sendall(data)
            total += len(data)
        into.shutdown_write()
        _finish(out, src, " ".join(map(str, src_argv)), timeout_s)
        _finish(into, dst, " ".join(map(str, dst_argv)), timeout_s)
    return total


def manifest(transport: Transport, host: VM, container: str, timeout_s: float) -> dict[str, tuple]:
    """{path: (type, size, sha256 of a file / link target)} of the volume a holder holds,
    read from the engine's own tar (`docker cp ... -`)."""
    argv = cp_out_argv(container)
    out: dict[str, tuple] = {}
    with transport.channel(host, argv, mutating=False, timeout=timeout_s) as chan:
        with tarfile.open(fileobj=chan.makefile("rb"), mode="r|") as tar:
            for member in tar:
                name = member.name.lstrip("./") or "."
                if member.isfile():
                    digest = hashlib.sha256()
                    f = tar.extractfile(member)
                    for block in iter(lambda: f.read(CHUNK), b""):
                        digest.update(block)
                    out[name] = ("file", member.size, digest.hexdigest())
                elif member.issym() or member.islnk():
                    out[name] = ("link", 0, member.linkname)
                else:
                    out[name] = ("dir" if member.isdir() else "other", 0, "")
        _finish(chan, host, " ".join(argv), timeout_s)
    return out


# -- the move --------------------------------------------------------------------------
def _run(transport: Transport, host: VM, argv, **kw) -> str:
    return transport.run(host, argv, mutating=True, **kw).stdout.strip()


class _Holders:
    """The holder containers made on each node, removed at the end whatever happened."""

    def __init__(self, transport: Transport, image: str):
        self.transport, self.image = transport, image
        self.made: list[tuple[VM, str]] = []

    def make(self, host: VM, volume: str) -> str:
        ident = _run(self.transport, host, holder_argv(volume, self.image)).splitlines()[-1]
        self.made.append((host, ident))
        return ident

    def remove(self) -> None:
        for host, ident in self.made:
            self.transport.run(host, holder_rm_argv(ident), mutating=True, check=False, quiet=True)


def _exists(transport: Transport, host: VM, volume: str) -> bool:
    return transport.run(host, volume_inspect_argv(volume), mutating=False, check=False).ok


def _release(transport: Transport, host: VM, volume: str, service: str) -> None:
    """Remove the server's own ended task containers that still reference `volume` on
    `host` (Swarm keeps a few as task history): `docker volume rm` refuses a volume in
    use.  Any other container using it: DataMoveFailed, naming it."""
    users = [line.split() for line in
             transport.run(host, volume_users_argv(volume), mutating=False).stdout.splitlines() if line.strip()]
    others = [u for u in users if len(u) < 3 or u[2] != service or u[1] == "running"]
    if others:
        raise DataMoveFailed(f"{host.name}: volume {volume} is used by container(s) "
                             f"{', '.join(u[0][:12] for u in others)}: not replaced")
    for ident, *_ in users:
        _run(transport, host, holder_rm_argv(ident))


def _copy(transport: Transport, holders: _Holders, src: VM, src_vol: str, dst: VM, dst_vol: str,
          timeout_s: float, report) -> None:
    a, b = holders.make(src, src_vol), holders.make(dst, dst_vol)
    size = pipe(transport, src, cp_out_argv(a), dst, cp_in_argv(b), timeout_s)
    want, got = manifest(transport, src, a, timeout_s), manifest(transport, dst, b, timeout_s)
    if want != got:
        differ = sorted(k for k in set(want) | set(got) if want.get(k) != got.get(k))[:5]
        raise DataMoveFailed(f"the copy of {src_vol} on {dst.name} differs from {src.name}'s "
                             f"(first differences: {', '.join(differ)})")
    files = sum(1 for v in want.values() if v[0] == "file")
    report(f"portainer data: {src_vol}: {src.name} -> {dst.name}" + (f" as {dst_vol}" if dst_vol != src_vol else "")
           + f": {files} files, {size} bytes streamed, verified")


def _stop_server(transport: Transport, manager: VM, service: str, wait_s: float, report,
                 sleep: Callable[[float], None] = time.sleep) -> None:
    _run(transport, manager, scale_argv(service, 0))
    end = time.monotonic() + wait_s
    while transport.run(manager, running_tasks_argv(service), mutating=False, quiet=True).stdout.strip():
        if time.monotonic() > end:
            raise DataMoveFailed(f"{service} still has a running task {wait_s:.0f} s after it was scaled to 0")
        sleep(0.5)
    report(f"portainer data: {service} stopped (scaled to 0)")


def carry(transport: Transport, move: DataMove, manager: VM, *, report: Callable[[str], None] = lambda line: None,
          timeout_s: float = 600.0, clock: Callable[[], float] = time.time) -> None:
    """Stop the server, then copy each of its volumes from the old node to the new one
    (the new node's own data kept first), verified.  DataMoveFailed when it cannot."""
    if move.old_vm is None:
        raise DataMoveFailed(move.summary())
    old, new = move.old_vm, move.new
    try:
        _stop_server(transport, manager, move.service, 120.0, report)
        todo = [v for v in move.volumes if _exists(transport, old, v)]
        for v in set(move.volumes) - set(todo):
            report(f"portainer data: {v}: not on {old.name}: nothing to carry")
        if not todo:
            return
        _run(transport, new, pull_argv(move.image), timeout=max(transport.access.command_timeout_s, 300.0))
        holders = _Holders(transport, move.image)
        try:
            for volume in todo:
                if _exists(transport, new, volume):
                    keep = f"{volume}_before_{time.strftime('%Y%m%dT%H%M%SZ', time.gmtime(clock()))}"
                    _run(transport, new, volume_create_argv(keep, move.namespace))
                    _copy(transport, holders, new, volume, new, keep, timeout_s, report)
                    holders.remove()
                    holders.made.clear()
                    _release(transport, new, volume, move.service)
                    _run(transport, new, volume_rm_argv(volume))
                    report(f"portainer data: {volume}: {new.name}'s earlier copy kept as {keep}")
                _run(transport, new, volume_create_argv(volume, move.namespace))
                _copy(transport, holders, old, volume, new, volume, timeout_s, report)
        finally:
            holders.remove()
    except PhoenixError as exc:
        if isinstance(exc, DataMoveFailed):
            raise
        raise DataMoveFailed(f"Portainer's data could not be carried from {old.name} to {new.name}: {exc}") from None


__all__ = ["DataMove", "DataMoveFailed", "carry", "plan_move"]
