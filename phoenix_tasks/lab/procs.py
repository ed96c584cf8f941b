"""Processes the lab started: found by pid file or by namespace, never by name.

A pid counts as the lab's only if its command line holds a marker unique to one VM
(its pid file or config path), so a recycled pid is never mistaken for a daemon.
"""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path


def read_pidfile(path: Path) -> int | None:
    try:
        text = path.read_text().strip()
    except OSError:
        return None
    return int(text) if text.isascii() and text.isdigit() else None


def cmdline(pid: int) -> list[str]:
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return []
    return [part.decode(errors="replace") for part in raw.split(b"\0") if part]


def is_running(pid: int) -> bool:
    """The process exists and is not a zombie."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] not in ("Z", "X")


def lab_pid(pidfile: Path, marker: str) -> int | None:
    """The pid in pidfile if that process runs and its command line holds marker
    (sshd rewrites its command line into one string, hence a substring test)."""
    pid = read_pidfile(pidfile)
    if pid is None or not is_running(pid) or marker not in " ".join(cmdline(pid)):
        return None
    return pid


def all_pids() -> list[int]:
    return [int(p) for p in os.listdir("/proc") if p.isdigit()]


def parent_pid(pid: int) -> int | None:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return int(stat.rsplit(")", 1)[1].split()[1])


def pids_in_netns(netns_file: Path) -> list[int]:
    """Every process whose network namespace is the one bound at netns_file."""
    try:
        target = os.stat(netns_file)
    except OSError:
        return []
    found = []
    for pid in all_pids():
        try:
            st = os.stat(f"/proc/{pid}/ns/net")
        except OSError:
            continue
        if (st.st_dev, st.st_ino) == (target.st_dev, target.st_ino):
            found.append(pid)
    return found


def with_descendants(roots: list[int]) -> list[int]:
    """roots plus every process below them (containers below their shims)."""
    children: dict[int, list[int]] = {}
    for pid in all_pids():
        ppid = parent_pid(pid)
        if ppid is not None:
            children.setdefault(ppid, []).append(pid)
    seen: list[int] = []
    stack = list(roots)
    while stack:
        pid = stack.pop()
        if pid in seen or pid == os.getpid():
            continue
        seen.append(pid)
        stack.extend(children.get(pid, []))
    return seen


def signal_pids(pids: list[int], sig: int) -> None:
    for pid in pids:
        try:
            os.kill(pid, sig)
        except ProcessLookupError:
            pass


def wait_gone(pids: list[int], timeout_s: float) -> list[int]:
    """Wait until none of pids runs; returns those still running at the timeout."""
    deadline = time.monotonic() + timeout_s
    while True:
        left = [pid for pid in pids if is_running(pid)]
        if not left or time.monotonic() >= deadline:
            return left
        time.sleep(0.05)


def stop(pids: list[int], grace_s: float) -> list[int]:
    """SIGTERM, wait up to grace_s, then SIGKILL; returns pids that survived."""
    signal_pids(pids, signal.SIGTERM)
    left = wait_gone(pids, grace_s)
    if left:
        signal_pids(left, signal.SIGKILL)
        left = wait_gone(left, 5)
    return left
