"""The cluster lock: one converging run (sync-all, swarm.init, swarm.join) per config
directory at a time, from this control machine.

Before `swarm init` there is no swarm to hold a lock in (the deploy lock, stack/lock.py,
lives in the swarm), so this one is a local file: `fcntl.flock` on
`$XDG_RUNTIME_DIR/phoenix-cluster-<sha16(config dir)>.lock` (or /tmp).  The kernel
releases a flock when its holder exits, however it exits (SIGKILL too): a dead run never
blocks the next one (its file stays; the next holder takes it over).  A holder that ends
normally removes the file; a run waiting on the removed file sees that and locks the new one.  The file says who holds it (pid, since, command), for the
message of the run that waits.

It protects runs started from ONE control machine.  Across machines the guard is the
swarm itself: the first manager is classified again right before `swarm init`, and an
init that finds it already in a swarm re-plans (swarm/apply.py), so a second machine
joins the swarm the first one made instead of failing or advising a leave.
"""

from __future__ import annotations

import errno
import fcntl
import hashlib
import os
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Callable, Iterator

from .errors import PhoenixError

DEFAULT_WAIT_S = 300.0


class ClusterLockHeld(PhoenixError):
    """Another run of this control machine converges the same cluster, and did not finish in time."""


def lock_path(config_dir: Path, runtime_dir: str | None = None) -> Path:
    """The lock file of a config directory (by the hash of its resolved path)."""
    base = runtime_dir or os.environ.get("XDG_RUNTIME_DIR") or "/tmp"
    key = hashlib.sha256(str(Path(config_dir).resolve()).encode()).hexdigest()[:16]
    return Path(base) / f"phoenix-cluster-{key}.lock"


def _holder(fd: int) -> str:
    """"pid P (command) since T", as the holder wrote it (best effort)."""
    try:
        text = os.pread(fd, 512, 0).decode(errors="replace").strip()
    except OSError:
        text = ""
    parts = text.split(" ", 2)
    if len(parts) == 3 and parts[0].isdigit():
        since = time.strftime("%H:%M:%S", time.localtime(float(parts[1]))) if _is_float(parts[1]) else parts[1]
        return f"pid {parts[0]} ({parts[2]}) since {since}"
    return "another run"


def _is_float(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


@contextmanager
def cluster_lock(config_dir: Path, command: str, *, wait_s: float = DEFAULT_WAIT_S,
                 note: Callable[[str], None] = lambda line: None, runtime_dir: str | None = None,
                 clock: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], None] = time.sleep) -> Iterator[Path]:
    """Hold the cluster lock of `config_dir` for the block; wait up to `wait_s` for it
    (saying once whom it waits for), then raise ClusterLockHeld."""
    path = lock_path(config_dir, runtime_dir)
    end = clock() + wait_s
    said = False
    fd = _open(path)
    try:
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                if _same_file(fd, path):
                    break
                os.close(fd)  # its holder removed it on release: lock the file now at that path
                fd = _open(path)
                continue
            except OSError as exc:
                if exc.errno not in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                    raise
            holder = _holder(fd)
            if clock() >= end:
                raise ClusterLockHeld(
                    f"the cluster lock of {config_dir} is held by {holder}: waited {wait_s:.0f} s; nothing was "
                    f"done (run again once that run ends; lock file {path})")
            if not said:
                note(f"waiting for the cluster lock held by {holder} (up to {wait_s:.0f} s)")
                said = True
            sleep(0.5)
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()} {time.time():.0f} {command}\n".encode(), 0)
        if said:
            note("cluster lock acquired: the cluster is read again now")
        try:
            yield path
        finally:
            path.unlink(missing_ok=True)  # nothing left behind; a waiter re-opens (see _same_file)
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)


def _open(path: Path) -> int:
    return os.open(path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)


def _same_file(fd: int, path: Path) -> bool:
    """Whether the locked file is still the one at `path` (not removed by a holder that
    released it while we waited on it)."""
    try:
        st = os.stat(path, follow_symlinks=False)
    except FileNotFoundError:
        return False
    held = os.fstat(fd)
    return (st.st_dev, st.st_ino) == (held.st_dev, held.st_ino)


def unless_dry_run(dry_run: bool, config_dir: Path, command: str, *, wait_s: float = DEFAULT_WAIT_S,
                   note: Callable[[str], None] = lambda line: None):
    """The cluster lock for a run that changes things; a dry run (reads only) takes none."""
    from contextlib import nullcontext
    return nullcontext() if dry_run else cluster_lock(config_dir, command, wait_s=wait_s, note=note)
