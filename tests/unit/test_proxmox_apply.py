"""The Proxmox apply (`apply.Applier`) from recorded answers: the exact calls sent, task
polling to the exit status, lock-timeout retries, waiting for the clone that holds a
VM's lock, one VM failing by name while the other converges, clones bounded, and the
safety refusals.  `Scripted` answers each call from a script; nothing waits (the clock
moves only when the applier sleeps)."""

from __future__ import annotations

import dataclasses
import threading

import pytest

from phoenix_tasks.core.plan import Action, Plan
from phoenix_tasks.providers.proxmox import api
from phoenix_tasks.providers.proxmox.apply import Applier, SafetyRefused, Timing
from phoenix_tasks.providers.proxmox.plan import Options, plan_vms
from phoenix_tasks.providers.proxmox.task_wait import ApiError

from proxmox_recorded import PUBLIC_KEY, data, etc_config, read, responses

TIMING = Timing(clone_timeout_s=60, task_timeout_s=30, poll_interval_s=1, lock_backoff_s=(5, 15),
                lock_wait_timeout_s=120)


def upid(kind: str, vmid: int, n: int, node: str = "phoenix") -> str:
    return f"UPID:{node}:000A1B{n:02X}:01F2E3D4:6650A1B2:{kind}:{vmid}:root@pam!phoenix:"


def status(u: str, exit: str | None) -> dict:
    d = dict(data("task_status_ok.json"), upid=u)
    if exit is None:
        d.pop("exitstatus")
        d["status"] = "running"
    else:
        d["exitstatus"] = exit
    return d


class Clock:
    def __init__(self):
        self.now = 0.0
        self.sleeps: list[float] = []
        self._lock = threading.Lock()

    def __call__(self) -> float:
        return self.now

    def sleep(self, s: float) -> None:
        with self._lock:
            self.sleeps.append(s)
            self.now += s


class Scripted:
    """Each change answers the next UPID of its kind; each task's status answers from
    `tasks[upid]` in turn (the last repeated).  `refuse` maps a (method, path) to the
    errors its first calls raise.  Every call is recorded, with the thread."""

    KINDS = {"clone": "qmclone", "status/start": "qmstart", "resize": "qmresize", "config": "qmconfig"}

    def __init__(self, tasks=None, refuse=None, active=None):
        self.tasks = {k: list(v) for k, v in (tasks or {}).items()}
        self.refuse = {k: list(v) for k, v in (refuse or {}).items()}
        self.active = active or {}  # (node, vmid) -> list of active task dicts
        self.sent: list[api.ApiCall] = []
        self.counts: dict[str, int] = {}
        self.clones_in_flight = 0
        self.max_clones_in_flight = 0
        self._lock = threading.Lock()

    def __call__(self, call: api.ApiCall):
        with self._lock:
            self.sent.append(call)
            errors = self.refuse.get((call.method, call.path))
            if errors:
                raise errors.pop(0)
            if call.method == "GET" and call.path.endswith("/status") and "/tasks/" in call.path:
                u = call.path.split("/")[4]
                answers = self.tasks.setdefault(u, [status(u, "OK")])
                answer = answers.pop(0) if len(answers) > 1 else answers[0]
                if "qmclone" in u and answer["status"] == "stopped":
                    self.clones_in_flight -= 1
                return answer
            if call.method == "GET" and call.path.endswith("/tasks"):
                node = call.path.split("/")[2]
                return self.active.get((node, int(call.param_map["vmid"])), [])
            if call.method == "PUT" and call.path.endswith("/cloudinit"):
                return None
            kind = next(v for k, v in self.KINDS.items() if call.path.endswith(k))
            vmid = call.vmid
            n = self.counts[kind] = self.counts.get(kind, 0) + 1
            if kind == "qmclone":
                self.clones_in_flight += 1
                self.max_clones_in_flight = max(self.max_clones_in_flight, self.clones_in_flight)
            return upid(kind, vmid, n)

    def changes(self):
        return [str(c) for c in self.sent if c.mutating]


@pytest.fixture(scope="module")
def config():
    return etc_config()


def fresh_plan(config, *vmids):
    """The plan for VMs missing on Proxmox (cloned from template 9000)."""
    answers = responses(resources=lambda r: [x for x in r if x["vmid"] not in vmids])
    return plan_vms(config, read(config, answers), Options(PUBLIC_KEY))


def applier(config, api_, clock, lines=None):
    return Applier(api_, config, timing=TIMING, clock=clock, sleep=clock.sleep,
                   report=(lines.append if lines is not None else lambda line: None))


def test_a_missing_vm_is_made_call_by_call_each_task_polled_to_its_exit_status(config):
    plan = fresh_plan(config, 1002)
    clone = upid("qmclone", 9000, 1)
    pve = Scripted(tasks={clone: [status(clone, None), status(clone, None), status(clone, "OK")]})
    clock, lines = Clock(), []
    [result] = applier(config, pve, clock, lines).apply(plan)
    assert result.failed is None and [a.kind for a in result.applied] == [a.kind for a in plan.actions]
    assert pve.changes() == [str(a.call) for a in plan.actions]  # exactly the plan, in order
    polls = [str(c) for c in pve.sent if not c.mutating]
    assert polls[:3] == [f"GET /nodes/phoenix/tasks/{clone}/status"] * 3  # running, running, OK
    assert clock.sleeps == [1, 1]  # between polls of the clone; every other task was done at once
    assert lines[0] == "drphoenix (vmid 1002): clone: full clone of ubuntu-2404-cloud-template (vmid 9000): OK (2 s)"
    assert lines[-1] == "drphoenix (vmid 1002): start: start: OK"


def test_a_clone_lock_timeout_is_retried_with_backoff(config):
    plan = fresh_plan(config, 1002)
    first = upid("qmclone", 9000, 1)
    timeout = data("task_status_lock_timeout.json")["exitstatus"]
    pve = Scripted(tasks={first: [status(first, timeout)]})
    clock, lines = Clock(), []
    [result] = applier(config, pve, clock, lines).apply(plan)
    assert result.failed is None
    assert pve.changes()[:2] == [str(plan.actions[0].call)] * 2  # the clone, sent again
    assert clock.sleeps == [5]
    assert "drphoenix (vmid 1002): clone: lock timeout; trying again in 5 s" in lines


def test_a_lock_timeout_every_time_fails_after_the_backoffs_naming_the_step(config):
    plan = fresh_plan(config, 1002)
    timeout = data("task_status_lock_timeout.json")["exitstatus"]
    pve = Scripted(tasks={upid("qmclone", 9000, n): [status(upid("qmclone", 9000, n), timeout)] for n in (1, 2, 3)})
    clock = Clock()
    [result] = applier(config, pve, clock).apply(plan)
    assert str(result.failed) == (f"drphoenix (vmid 1002): clone: task {upid('qmclone', 9000, 3)} ended: "
                                  f"{timeout} after 3 attempts")
    assert clock.sleeps == [5, 15] and len(pve.changes()) == 3  # nothing after the failed clone


def test_a_vm_locked_by_its_clone_waits_for_the_clone_task_then_goes_on(config):
    plan = fresh_plan(config, 1002)
    foreign = upid("qmclone", 9000, 0x77)  # a clone of the template not sent by this run
    locked = ApiError(500, "VM is locked (clone)")
    hardware = plan.actions[1].call
    pve = Scripted(refuse={(hardware.method, hardware.path): [locked]},
                   active={("phoenix", 9000): [{"upid": foreign, "type": "qmclone", "id": "9000", "status": "RUNNING"}]},
                   tasks={foreign: [status(foreign, None), status(foreign, "OK")]})
    clock, lines = Clock(), []
    [result] = applier(config, pve, clock, lines).apply(plan)
    assert result.failed is None
    sent = [str(c) for c in pve.sent]
    i = sent.index(str(hardware))
    assert sent[i + 1:i + 5] == ["GET /nodes/phoenix/tasks vmid=1002 source=active",
                                 "GET /nodes/phoenix/tasks vmid=9000 source=active",
                                 f"GET /nodes/phoenix/tasks/{foreign}/status", f"GET /nodes/phoenix/tasks/{foreign}/status"]
    assert sent[i + 5] == str(hardware)  # sent again once the clone ended
    assert "drphoenix (vmid 1002): locked (clone): waiting for task qmclone 9000 to end" in lines


def test_a_failed_start_task_fails_that_vm_by_name_and_the_other_converges(config):
    plan = fresh_plan(config, 1001, 1002)
    pve = Scripted()
    bad = "TASK ERROR: start failed: QEMU exited with code 1"

    original = pve.__call__

    def answer(call):
        result = original(call)
        if call.path == "/nodes/phoenix/qemu/1002/status/start":
            pve.tasks[result] = [status(result, bad)]
        return result
    clock = Clock()
    results = {r.vm.name: r for r in applier(config, answer, clock).apply(plan)}
    assert results["portainer"].failed is None and results["portainer"].applied[-1].kind == "start"
    failed = results["drphoenix"].failed
    assert (failed.step, failed.vm.name) == ("start", "drphoenix")
    assert str(failed).startswith("drphoenix (vmid 1002): start: task UPID:phoenix:") and str(failed).endswith(bad)


def test_an_http_refusal_fails_the_step_with_proxmox_reason(config):
    plan = fresh_plan(config, 1002)
    resize = plan.actions[2].call
    pve = Scripted(refuse={(resize.method, resize.path): [ApiError(400, "Parameter verification failed. (size: x)")]})
    [result] = applier(config, pve, Clock()).apply(plan)
    assert str(result.failed) == ("drphoenix (vmid 1002): resize: PUT /nodes/phoenix/qemu/1002/resize refused: "
                                  "HTTP 400: Parameter verification failed. (size: x)")
    assert not any("cloudinit" in c or "start" in c for c in pve.changes())  # stopped at the failed step


def test_a_task_that_never_ends_times_out(config):
    plan = fresh_plan(config, 1002)
    clone = upid("qmclone", 9000, 1)
    pve = Scripted(tasks={clone: [status(clone, None)]})
    clock = Clock()
    [result] = applier(config, pve, clock).apply(plan)
    assert str(result.failed) == f"drphoenix (vmid 1002): clone: task {clone} ended: still running after 60 s"
    assert sum(clock.sleeps) == 60


def test_a_task_returning_call_that_answers_no_upid_finished_synchronously(config):
    # PVE 7 answers resize with null: there is no task to poll
    plan = fresh_plan(config, 1002)
    pve = Scripted()
    original = pve.__call__
    answered = applier(config, lambda c: None if c.path.endswith("/resize") else original(c), Clock()).apply(plan)
    assert answered[0].failed is None and "resize" in [a.kind for a in answered[0].applied]


def test_clones_never_exceed_max_parallel_clones(config):
    plan = fresh_plan(config, 1001, 1002)
    tasks = {upid("qmclone", 9000, n): [status(upid("qmclone", 9000, n), None)] * 3
             + [status(upid("qmclone", 9000, n), "OK")] for n in (1, 2)}
    pve = Scripted(tasks=tasks)
    both = threading.Event()

    def request(call):
        answer = pve(call)
        if call.path.endswith("/clone"):
            if pve.clones_in_flight == 2:
                both.set()
            both.wait(0.5)  # give a second clone the time to start, were it allowed to
        return answer
    results = applier(config, request, Clock()).apply(plan)  # max_parallel_clones defaults to 1
    assert all(r.failed is None for r in results)
    assert pve.max_clones_in_flight == 1 and not both.is_set()
    two = dataclasses.replace(config, hypervisor=dataclasses.replace(
        config.hypervisor, proxmox=dataclasses.replace(config.hypervisor.proxmox, max_parallel_clones=2)))
    pve = Scripted(tasks=tasks)
    assert all(r.failed is None for r in applier(two, request, Clock()).apply(plan))
    assert pve.max_clones_in_flight == 2  # the bound is the setting, not an accident of timing


def test_a_call_outside_the_config_and_a_template_start_are_refused_before_sending(config):
    pve = Scripted()
    template = next(vm for vm in config.vms if vm.is_template)
    foreign = Plan([Action("start", None, "start", target=config.real_vms[0], call=api.start("phoenix", 4242))])
    with pytest.raises(SafetyRefused, match="names a vmid the config does not list: POST /nodes/phoenix/qemu/4242"):
        applier(config, pve, Clock()).apply(foreign)
    start_template = Plan([Action("start", None, "start", target=template, call=api.start("phoenix", template.vmid))])
    with pytest.raises(SafetyRefused, match="is a template; Phoenix never starts a template"):
        applier(config, pve, Clock()).apply(start_template)
    assert pve.sent == []
