"""Waiting for Proxmox tasks, as pure functions over what the API answers.

A change (clone, start, resize, config) answers with a task id (UPID); whether it
worked is the task's exit status, never the HTTP status (start and resize errors
arrive inside the task on PVE 8).  The clock, the sleep and the status reads are
passed in, so tests replay recorded answers without waiting.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Callable, Mapping, Sequence, TypeVar

from ...core.errors import PhoenixError

LOCK_TIMEOUT = re.compile(r"can't lock file '[^']*' - got timeout")
VM_LOCKED = re.compile(r"VM is locked \((?P<lock>[a-z-]+)\)")
T = TypeVar("T")


@dataclass(frozen=True)
class TaskStatus:
    upid: str
    running: bool
    exitstatus: str | None = None


def parse_task_status(data: Mapping[str, Any]) -> TaskStatus:
    """`data` of GET /nodes/{node}/tasks/{upid}/status."""
    return TaskStatus(str(data.get("upid", "")), data.get("status") == "running", data.get("exitstatus"))


@dataclass(frozen=True)
class TaskResult:
    upid: str
    ok: bool
    exitstatus: str  # "OK", the error text, or why it is not known
    timed_out: bool = False
    polls: int = 0
    attempts: int = 1

    @property
    def lock_timeout(self) -> bool:
        return bool(LOCK_TIMEOUT.search(self.exitstatus))


def wait_task(read_status: Callable[[], Mapping[str, Any]], *, timeout_s: float, interval_s: float,
              clock: Callable[[], float], sleep: Callable[[float], None]) -> TaskResult:
    """Poll until the task stops (its exit status decides) or `timeout_s` passes."""
    start = clock()
    polls = 0
    while True:
        status = parse_task_status(read_status())
        polls += 1
        if not status.running:
            exit_text = status.exitstatus or "stopped without an exit status"
            return TaskResult(status.upid, exit_text == "OK", exit_text, polls=polls)
        if clock() - start >= timeout_s:
            return TaskResult(status.upid, False, f"still running after {timeout_s:g} s", timed_out=True, polls=polls)
        sleep(interval_s)


def retry_lock_timeouts(run_task: Callable[[], TaskResult], *, backoff_s: Sequence[float],
                        sleep: Callable[[float], None]) -> TaskResult:
    """Run a task again after each lock-timeout exit ("can't lock file ... - got
    timeout": a storage or config lock held by another task), waiting `backoff_s[i]`
    before retry i+1; any other result is final."""
    result = run_task()
    for attempt, wait in enumerate(backoff_s, start=2):
        if result.ok or not result.lock_timeout:
            return result
        sleep(wait)
        result = run_task()
        result = TaskResult(result.upid, result.ok, result.exitstatus, result.timed_out, result.polls, attempt)
    return result


class ApiError(PhoenixError):
    """An API call answered with an HTTP error: status and the status line's reason."""

    def __init__(self, status: int, reason: str):
        super().__init__(f"HTTP {status}: {reason}")
        self.status = status
        self.reason = reason

    @property
    def lock(self) -> str | None:
        m = VM_LOCKED.search(self.reason)
        return m.group("lock") if m else None


def when_unlocked(call: Callable[[], T], *, wait_for_lock: Callable[[str], None], attempts: int = 3) -> T:
    """Make `call`; while it fails with "VM is locked (<lock>)", wait for the task that
    holds the lock (`wait_for_lock(lock)`, e.g. the clone's task) and try again."""
    for attempt in range(attempts):
        try:
            return call()
        except ApiError as exc:
            if exc.lock is None or attempt == attempts - 1:
                raise
            wait_for_lock(exc.lock)
    raise AssertionError("unreachable")
