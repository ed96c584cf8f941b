"""Task polling over recorded task-status answers, with a fake clock and sleep."""

from __future__ import annotations

import pytest

from phoenix_tasks.providers.proxmox.task_wait import (
    ApiError, retry_lock_timeouts, wait_task, when_unlocked,
)

from proxmox_recorded import data, recorded


class FakeTime:
    def __init__(self):
        self.now = 0.0
        self.slept = []

    def clock(self):
        return self.now

    def sleep(self, s):
        self.slept.append(s)
        self.now += s


def replay(*names):
    answers = iter([data(n) for n in names])
    return lambda: next(answers)


def wait(reads, timeout_s=60.0):
    t = FakeTime()
    return wait_task(reads, timeout_s=timeout_s, interval_s=2.0, clock=t.clock, sleep=t.sleep), t


def test_running_then_ok():
    r, t = wait(replay("task_status_running.json", "task_status_running.json", "task_status_ok.json"))
    assert (r.ok, r.exitstatus, r.polls, r.timed_out) == (True, "OK", 3, False)
    assert r.upid.startswith("UPID:phoenix:") and t.slept == [2.0, 2.0]


def test_running_then_failed_reports_the_exit_status():
    r, _ = wait(replay("task_status_running.json", "task_status_failed.json"))
    assert (r.ok, r.exitstatus) == (False, "bridge 'vmbr9' does not exist")


def test_timeout_while_still_running():
    r, t = wait(lambda: data("task_status_running.json"), timeout_s=10)
    assert (r.ok, r.timed_out, r.exitstatus) == (False, True, "still running after 10 s")
    assert t.now == 10 and r.polls == 6


def test_lock_timeout_exit_is_retried_with_backoff_then_succeeds():
    results = iter([wait(replay("task_status_lock_timeout.json"))[0], wait(replay("task_status_lock_timeout.json"))[0],
                    wait(replay("task_status_running.json", "task_status_ok.json"))[0]])
    t = FakeTime()
    r = retry_lock_timeouts(lambda: next(results), backoff_s=(5, 10, 20), sleep=t.sleep)
    assert (r.ok, r.attempts) == (True, 3) and t.slept == [5, 10]


def test_lock_timeout_every_time_gives_up_with_the_exit_status():
    t = FakeTime()
    r = retry_lock_timeouts(lambda: wait(replay("task_status_lock_timeout.json"))[0], backoff_s=(5, 10), sleep=t.sleep)
    assert (r.ok, r.attempts, r.lock_timeout) == (False, 3, True)
    assert r.exitstatus == "can't lock file '/var/lock/qemu-server/lock-9000.conf' - got timeout"


def test_other_failures_are_not_retried():
    t = FakeTime()
    r = retry_lock_timeouts(lambda: wait(replay("task_status_failed.json"))[0], backoff_s=(5,), sleep=t.sleep)
    assert (r.ok, r.attempts, t.slept) == (False, 1, [])


def _locked():
    rec = recorded("error_vm_locked_clone.json")
    return ApiError(rec["_http"]["status"], rec["_http"]["reason"])


def test_a_call_on_a_vm_locked_by_its_clone_waits_for_the_clone_then_runs():
    outcomes = iter([_locked(), "UPID:ok"])
    waited = []

    def call():
        o = next(outcomes)
        if isinstance(o, Exception):
            raise o
        return o
    assert when_unlocked(call, wait_for_lock=waited.append) == "UPID:ok"
    assert waited == ["clone"]


def test_other_api_errors_are_not_waited_on():
    def call():
        raise ApiError(403, "Permission check failed (/vms/1001, VM.PowerMgmt)")
    with pytest.raises(ApiError, match="HTTP 403"):
        when_unlocked(call, wait_for_lock=lambda lock: pytest.fail("waited"))


def test_a_lock_that_never_frees_ends_in_the_error():
    with pytest.raises(ApiError, match="VM is locked"):
        when_unlocked(lambda: (_ for _ in ()).throw(_locked()), wait_for_lock=lambda lock: None, attempts=2)
