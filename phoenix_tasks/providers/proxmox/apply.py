"""Applying a Proxmox plan: each VM's calls in order, the VMs in parallel.

- A call that answers with a task id (UPID) is done when its task stops, and it
  worked only if the task's exit status is "OK" (`task_wait`): never the HTTP status
  alone (start and resize errors arrive inside the task on PVE 8).  A task-returning
  call that answers no UPID (resize on PVE 7) finished synchronously.
- Clones run at most `proxmox.max_parallel_clones` at a time (storage locks), and a
  task that ends with a lock timeout ("can't lock file ... - got timeout": a clone's
  storage lock, a start or resize while another task holds the VM's config) is sent
  again after a backoff.
- A call refused with "VM is locked (<lock>)" waits for the task holding the lock (for
  a clone: the template's running clone tasks; else the VM's own), then is sent again.
- One VM's failure stops that VM's remaining calls and is reported with the VM's name
  and the step; the other VMs go on.
- Refused before anything is sent: a call naming a vmid the config does not list, a
  start of a template (`SafetyRefused`).

The request function, clock and sleep are passed in, so the tests drive it with
recorded answers (and the loopback simulator) without waiting.
"""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Callable

from ...core.errors import PhoenixError
from ...core.model import VM, Config
from ...core.plan import Action, Plan
from . import api
from .plan import calls_outside_config
from .task_wait import ApiError, TaskResult, retry_lock_timeouts, wait_task, when_unlocked

Request = Callable[[api.ApiCall], Any]


class SafetyRefused(PhoenixError):
    """A plan that would touch what Phoenix never touches."""


class TaskReadFailed(PhoenixError):
    """Reading a task's status failed (not the call that made the task)."""


def task_label(upid: str) -> str:
    """A task for people: its type and id ("qmclone 9000"), from its UPID."""
    parts = upid.split(":")
    return f"{parts[5]} {parts[6]}" if len(parts) > 6 else upid


class StepFailed(PhoenixError):
    def __init__(self, vm: VM, step: str, why: str):
        super().__init__(f"{vm}: {step}: {why}")
        self.vm, self.step, self.why = vm, step, why


@dataclass(frozen=True)
class Timing:
    clone_timeout_s: float = 1800.0  # a full clone copies the whole disk
    task_timeout_s: float = 300.0
    poll_interval_s: float = 1.0
    lock_backoff_s: tuple[float, ...] = (5.0, 15.0, 45.0)
    lock_wait_timeout_s: float = 1800.0  # another task holding a VM's lock (its clone)


@dataclass
class VMApplied:
    vm: VM
    applied: list[Action] = field(default_factory=list)
    failed: StepFailed | None = None
    lines: list[str] = field(default_factory=list)


def check_safe(plan: Plan, config: Config) -> None:
    outside = calls_outside_config(plan, config)
    if outside:
        raise SafetyRefused("refused: the plan names a vmid the config does not list: "
                            + "; ".join(str(c) for c in outside))
    for a in plan.actions:
        if a.call is not None and a.call.method not in ("POST", "PUT"):
            raise SafetyRefused(f"refused: {a.call} is not a change Phoenix makes")
        if a.kind == "start" and getattr(a.target, "is_template", False):
            raise SafetyRefused(f"refused: {a.target} is a template; Phoenix never starts a template")


class Applier:
    def __init__(self, request: Request, config: Config, *, timing: Timing = Timing(),
                 clock: Callable[[], float] = time.monotonic, sleep: Callable[[float], None] = time.sleep,
                 report: Callable[[str], None] = lambda line: None) -> None:
        self.request, self.config, self.timing = request, config, timing
        self.clock, self.sleep, self.report = clock, sleep, report
        self._clones = threading.BoundedSemaphore(max(1, config.hypervisor.proxmox.max_parallel_clones))

    # -- one call ---------------------------------------------------------------------

    def _wait(self, upid: str, timeout_s: float) -> TaskResult:
        node = api.upid_node(upid)
        call = api.task_status(node, upid)

        def read() -> Any:
            try:
                return self.request(call)
            except PhoenixError as exc:  # not the call's refusal: reading its task failed
                raise TaskReadFailed(f"reading the status of its task {task_label(upid)} "
                                     f"(GET /nodes/{node}/tasks/UPID/status): {exc}") from None
        return wait_task(read, timeout_s=timeout_s, interval_s=self.timing.poll_interval_s,
                         clock=self.clock, sleep=self.sleep)

    def _send(self, call: api.ApiCall, timeout_s: float) -> TaskResult:
        answer = self.request(call)
        if not call.returns_task or answer is None:
            return TaskResult("", True, "OK")  # synchronous: the HTTP answer is the result
        return self._wait(str(answer), timeout_s)

    def _lock_holders(self, vm: VM, node: str, lock: str) -> list[str]:
        """The running tasks that may hold `vm`'s lock: its own, and for a clone lock
        the clone tasks of its template (a clone task is the template's, by id)."""
        step = f"wait for its lock ({lock})"

        def active(nd: str, vmid: int) -> list[dict]:
            call = api.active_tasks(nd, vmid)
            try:
                answer = self.request(call)
            except PhoenixError as exc:
                raise StepFailed(vm, step, f"listing the active tasks ({call}): {exc}") from None
            # Listed oldest first; one with a status other than RUNNING ended moments ago
            # and is not archived yet: it holds nothing.
            return [t for t in (answer or []) if isinstance(t, dict) and t.get("upid")
                    and str(t.get("status", "RUNNING")).upper() == "RUNNING"]

        upids = [t["upid"] for t in active(node, vm.vmid)]
        template = None
        if lock == "clone" and vm.clone_from_vmid is not None:
            template = next((t for t in self.config.vms if t.vmid == vm.clone_from_vmid), None)
        if template is not None:  # a clone task's id is its SOURCE vmid: listed under the template
            t_node = self.config.hypervisor.proxmox.node_for(template)
            for nd in dict.fromkeys((t_node, node)):
                upids += [t["upid"] for t in active(nd, template.vmid) if t.get("type") == "qmclone"]
        return list(dict.fromkeys(upids))

    def wait_for_lock(self, vm: VM, node: str, lock: str) -> None:
        """Wait for the tasks that may hold `vm`'s lock; any failure is a StepFailed
        naming the VM and this step."""
        holders = self._lock_holders(vm, node, lock)
        if not holders:  # the lock outlives its task for a moment, or a task we cannot see
            self.sleep(self.timing.poll_interval_s)
            return
        for upid in holders:
            self.report(f"{vm}: locked ({lock}): waiting for task {task_label(upid)} to end")
            try:
                result = self._wait(upid, self.timing.lock_wait_timeout_s)
            except PhoenixError as exc:
                raise StepFailed(vm, f"wait for its lock ({lock})", str(exc)) from None
            if result.timed_out:
                raise StepFailed(vm, f"wait for its lock ({lock})",
                                 f"the task holding the lock ({task_label(upid)}) is {result.exitstatus}")

    def run_action(self, vm: VM, a: Action) -> TaskResult:
        call: api.ApiCall = a.call
        node = call.path.split("/")[2]
        timeout = self.timing.clone_timeout_s if a.kind == "clone" else self.timing.task_timeout_s

        def send() -> TaskResult:
            return when_unlocked(lambda: self._send(call, timeout),
                                 wait_for_lock=lambda lock: self.wait_for_lock(vm, node, lock), attempts=4)

        # Any task may end on a lock timeout (a clone's storage lock; a start or resize
        # of a VM whose config another task holds): each is sent again after a backoff.
        def run() -> TaskResult:
            return retry_lock_timeouts(send, backoff_s=self.timing.lock_backoff_s, sleep=self._backoff(vm, a.kind))

        if a.kind == "clone":
            with self._clones:
                return run()
        return run()

    def _backoff(self, vm: VM, kind: str) -> Callable[[float], None]:
        def wait(seconds: float) -> None:
            self.report(f"{vm}: {kind}: lock timeout; trying again in {seconds:g} s")
            self.sleep(seconds)
        return wait

    # -- one VM, every VM -------------------------------------------------------------

    def run_vm(self, vm: VM, actions: list[Action]) -> VMApplied:
        out = VMApplied(vm)
        for a in actions:
            started = self.clock()
            try:
                result = self.run_action(vm, a)
            except StepFailed as exc:
                out.failed = exc
                break
            except TaskReadFailed as exc:
                out.failed = StepFailed(vm, a.kind, str(exc))
                break
            except ApiError as exc:
                out.failed = StepFailed(vm, a.kind, f"{a.call.method} {a.call.path} refused: {exc}")
                break
            except PhoenixError as exc:
                out.failed = StepFailed(vm, a.kind, str(exc))
                break
            if not result.ok:
                tries = f" after {result.attempts} attempts" if result.attempts > 1 else ""
                out.failed = StepFailed(vm, a.kind, f"task {result.upid or a.call} ended: {result.exitstatus}{tries}")
                break
            out.applied.append(a)
            took = self.clock() - started
            line = f"{vm}: {a.kind}: {a.summary}: OK" + (f" ({took:.0f} s)" if took >= 1 else "")
            out.lines.append(line)
            self.report(line)
        return out

    def apply(self, plan: Plan) -> list[VMApplied]:
        """Every VM's actions (in plan order) in parallel; results in plan order."""
        check_safe(plan, self.config)
        by_vm: dict[int, tuple[VM, list[Action]]] = {}
        for a in plan.actions:
            by_vm.setdefault(a.target.vmid, (a.target, []))[1].append(a)
        if not by_vm:
            return []
        with ThreadPoolExecutor(max_workers=len(by_vm)) as pool:
            return list(pool.map(lambda item: self.run_vm(*item), by_vm.values()))
