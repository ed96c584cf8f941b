"""Phoenix's own wait after `docker stack deploy`: the truth about this deploy.

It judges only the tasks of this deploy: a task counts when its spec is the service's
current task template (an older spec is the previous deploy, still draining), and a
failure counts only when it happened after this deploy started, by the manager's clock
(old failed tasks are history, not this deploy's result: portainer#13281).
An update that Swarm paused or rolled back is a failure (docker/cli#6752 exits 0
there).  A service whose restart policy is `none` or `on-failure` may complete: its
finished tasks count as done (docker/cli#5299 hangs on those).  A running task counts
only once it has been running for `stable_s` (as Swarm's own update monitor does): a
container that starts and crashes a second later is a failure, not a success.  Pure judgement
(`judge`) over facts; `wait` polls one manager with one command per round.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass
from typing import Callable, Mapping, Sequence

from .diff import Desired, same_image
from .facts import Progress, ServiceFacts, TaskFacts
from ..docker.render import LABEL_HASH

CONVERGED, PENDING, FAILED = "converged", "pending", "failed"
FAILED_TASK_STATES = ("failed", "rejected")
BAD_UPDATE_STATES = ("paused", "rollback_started", "rollback_paused", "rollback_completed")


@dataclass(frozen=True)
class Verdict:
    service: str
    state: str  # converged | pending | failed
    progress: str  # "1/2 running", "1/1 completed", ...
    detail: str = ""  # why it failed, or what it waits for


# Left out of the comparison: placement (see current_tasks) and the force-update
# counter.  `docker service inspect` fills in defaults (RestartPolicy, DNSConfig,
# StopGracePeriod, Runtime...) that a task's own spec omits, so a task is current
# when every field its spec sets has the service's value (a subset match).
_NOT_COMPARED = ("Placement", "ForceUpdate")


def _within(task: object, service: object) -> bool:
    if isinstance(task, dict):
        return isinstance(service, dict) and all(
            _within(v, service.get(k)) for k, v in task.items() if v not in (None, {}, []) or k in service)
    if isinstance(task, list):
        return isinstance(service, list) and len(task) == len(service) and all(map(_within, task, service))
    return task == service


def current_tasks(service: ServiceFacts, tasks) -> list[TaskFacts]:
    """Tasks created from the service's current spec (placement changes aside: swarm
    keeps a task whose node still satisfies new constraints)."""
    want = {k: v for k, v in service.task_template.items() if k not in _NOT_COMPARED}
    return [t for t in tasks if t.service_id == service.id and
            _within({k: v for k, v in t.spec.items() if k not in _NOT_COMPARED}, want)]


def _task_error(t: TaskFacts, node_names: Mapping[str, str] | None = None) -> str:
    code = f" (exit code {t.exit_code})" if t.exit_code not in (None, 0) else ""
    node = (node_names or {}).get(t.node_id)
    where = f" on node {node}" if node else ""  # a disk full, an image missing: that VM's
    return f"task {t.id[:12]}{where} {t.state}{code}: {t.error or 'no error message'}"


def _update_failure(service: ServiceFacts, tasks, since: int = 0, node_names: Mapping[str, str] | None = None) -> str:
    """Swarm's update message, and the error of the task that failed it ("update rolled
    back due to failure or early termination of task X" says nothing of why X failed;
    "rollback completed" does not even name X: then the newest failed task of the
    service since the deploy began is the one)."""
    message = service.update_message or "no message"
    m = re.search(r"\btask ([a-z0-9]{12,})", message)
    named = [t for t in tasks if m and t.id.startswith(m[1])] if m else []
    if not named:
        named = sorted((t for t in tasks if t.service_id == service.id and t.state in FAILED_TASK_STATES
                        and (t.created_at or 0) >= since), key=lambda t: t.created_at or 0, reverse=True)
    return message + (f"; {_task_error(named[0], node_names)}" if named else "")


STABLE_S = 5.0


def judge(service: ServiceFacts | None, want: Desired, tasks, eligible_nodes: int | None = None, *,
          now: int | None = None, started: int | None = None, stable_s: float = STABLE_S,
          node_names: Mapping[str, str] | None = None) -> Verdict:
    """One service's state.  `now`: the manager's clock at this read; `started`: its
    clock just before the deploy (what happened before is history, not this deploy)."""
    name = want.name
    if service is None:
        return Verdict(name, PENDING, "0/?", "service not created yet")
    # Its own spec: the hash label covers all but the image, which is compared as such.
    if service.labels.get(LABEL_HASH) != want.hash or not same_image(service.image, want.image):
        if (service.update_state or "").startswith("rollback"):
            return Verdict(name, FAILED, "-", f"Swarm rolled the update back ({service.update_state}): "
                                              f"{_update_failure(service, tasks, started or 0, node_names)}")
        return Verdict(name, FAILED, "-", "the service no longer has this deploy's spec "
                                          "(replaced by another deploy?)")
    since = started or 0
    ours_update = service.update_state and (service.update_started_at or 0) >= since
    # The service has this deploy's spec.  Swarm rolling back *to* it (a restore, or a
    # rerun after Swarm undid a later update) is progress, not a failure: rolling back
    # *from* it would have changed the spec (the branch above).
    if ours_update and service.update_state == "rollback_started":
        return Verdict(name, PENDING, "-", "Swarm is rolling back to this spec")
    stuck = service.update_state in BAD_UPDATE_STATES and service.update_state != "rollback_completed"
    if ours_update and stuck:
        return Verdict(name, FAILED, "-", f"update {service.update_state}: {_update_failure(service, tasks, since, node_names)}")
    current = current_tasks(service, tasks)
    fresh_failures = [t for t in current if t.state in FAILED_TASK_STATES and (t.created_at or 0) >= since]
    may_complete = service.restart_condition in ("none", "on-failure")
    if not may_complete:
        fresh_failures += [t for t in current if t.state == "complete" and (t.created_at or 0) >= since]
    if fresh_failures:
        t = max(fresh_failures, key=lambda t: t.created_at or 0)
        hint = ""
        if t.state == "complete":
            hint = (" (the container exited 0, and restart_policy is 'any': a one-shot service needs "
                    "deploy.restart_policy.condition 'none' or 'on-failure')")
        return Verdict(name, FAILED, "-", _task_error(t, node_names) + hint)
    live = [t for t in current if t.desired_state in ("running", "complete") or t.state == "complete"]
    running_tasks = [t for t in live if t.state == "running"]
    stable = [t for t in running_tasks
              if now is None or t.since is None or now - t.since >= stable_s * 1_000_000_000]
    running = len(stable)
    completed = sum(1 for t in live if t.state == "complete" and t.exit_code in (None, 0))
    done = running + (completed if may_complete else 0)
    if service.mode == "global":
        target = eligible_nodes if eligible_nodes is not None else max(1, sum(1 for t in live if t.desired_state != "shutdown"))
    else:
        target = service.replicas or 0
    what = "completed" if may_complete and completed and not running else "running"
    progress = f"{done}/{target} {what}"
    if ours_update and service.update_state == "updating":
        return Verdict(name, PENDING, progress, "rolling update in progress")
    if done >= target:
        return Verdict(name, CONVERGED, progress)
    if len(running_tasks) > len(stable):
        return Verdict(name, PENDING, progress, f"{len(running_tasks) - len(stable)} running for less than "
                                                f"{stable_s:.0f} s")
    latest = max(live, key=lambda t: t.created_at or 0, default=None)
    detail = f"latest task {latest.state}" + (f": {latest.error}" if latest and latest.error else "") if latest else "no task yet"
    return Verdict(name, PENDING, progress, detail)


def eligible_now(hosts: Sequence[str], ready_hosts: Mapping[str, int] | None) -> int:
    """How many tasks a global service must run: its candidate nodes (hostnames, as the
    pre-flight found them ready and active) that are still ready and active at this read.
    A node that left, or one that went down or was drained during the wait, gets no task:
    waiting for it would wait until the timeout."""
    if ready_hosts is None:
        return len(hosts)
    wanted: dict[str, int] = {}
    for h in hosts:
        wanted[h] = wanted.get(h, 0) + 1
    return sum(min(n, ready_hosts.get(h, 0)) for h, n in wanted.items())


def judge_all(progress: Progress, desired: Mapping[str, Desired], eligible: Mapping[str, Sequence[str]] | None = None,
              started: int | None = None, stable_s: float = STABLE_S) -> dict[str, Verdict]:
    eligible = eligible or {}
    return {name: judge(progress.services.get(name), want, progress.tasks,
                        eligible_now(eligible[name], progress.ready_hosts) if name in eligible else None,
                        now=progress.now, started=started, stable_s=stable_s, node_names=progress.node_names)
            for name, want in desired.items()}


def wait(read: Callable[[], Progress], desired: Mapping[str, Desired], *, timeout_s: float,
         eligible: Mapping[str, Sequence[str]] | None = None, started: int | None = None,
         interval_s: float = 1.0, stable_s: float = STABLE_S,
         report: Callable[[Mapping[str, Verdict]], None] = lambda verdicts: None,
         clock: Callable[[], float] = time.monotonic, sleep: Callable[[float], None] = time.sleep,
         ) -> dict[str, Verdict]:
    """Poll until every service converged, one failed, or the timeout; services still
    pending at the timeout are failures saying what they waited for."""
    deadline = clock() + timeout_s
    while True:
        verdicts = judge_all(read(), desired, eligible, started, stable_s)
        report(verdicts)
        states = {v.state for v in verdicts.values()}
        if FAILED in states or states <= {CONVERGED}:
            return verdicts
        if clock() >= deadline:
            return {n: v if v.state != PENDING else
                    Verdict(n, FAILED, v.progress, f"not converged after {timeout_s:.0f} s: {v.detail or v.progress}")
                    for n, v in verdicts.items()}
        sleep(interval_s)
