"""Node maintenance: drain a node and wait until nothing runs there, make it active
again, and prune the nodes no configured VM claims.

Every flow has the shape of every change: read facts -> plan -> show (`--dry-run` stops
there) -> apply -> read again.  The plans (`plan_drain`, `plan_undrain`, `plan_prune`),
which services a drain would leave nowhere to run (`stranded_services`) and whether a
drain is done (`judge_drain`) are pure functions of facts, tested from recorded task
lists; the flows run them against the control manager, one command at a time.

Decisions (docs/swarm.md, "Maintenance"):
- A drain is refused, naming them, when a service it touches could run nowhere else: a
  placement constraint only this node satisfies, max replicas per node the other nodes
  cannot hold, or a global service that runs only here.  A global service that runs on
  other nodes too is a note, not a refusal: global services are never rescheduled, its
  task here simply stops (refusing would make --force the norm on every cluster with an
  agent).  `--force` drains anyway.
- Draining a manager does not touch Raft: it stays a manager and only loses its tasks.
- Prune never connects to a node outside the config: a node that is still up is drained
  and demoted, and its entry is removed once it is down (it left, or was shut down);
  `--force` removes the entry of a node that is still up (`docker node rm --force`).
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Callable, Mapping, Sequence

from ..core.errors import PhoenixError
from ..core.model import VM, Config
from ..core.plan import Action, Blocked, Outcome, Plan
from ..stack.facts import Progress, TaskFacts, parse_progress
from ..stack.preflight import candidates_for
from ..core.transport import Transport
from ..swarm import commands, quorum, unclaimed
from ..swarm.facts import ClusterFacts, NodeFacts, read_facts
from ..swarm.plan import MEMBER, WRONG_ROLE, classify

DRAIN_TIMEOUT_S = 120.0
# Task states in which a task still holds its node (swarmkit's states before "running", and running).
LIVE_STATES = ("new", "allocated", "pending", "assigned", "accepted", "preparing", "ready", "starting", "running")
WANTED = ("running", "ready")  # desired states of a task that is meant to run
REMOVE_RETRY_S = 15.0  # `docker node rm` right after a demote: Raft may still list the member


class MaintenanceError(PhoenixError):
    """A node cannot be maintained (not in the swarm, no manager answers)."""


@dataclass(frozen=True)
class NodeRef:
    """A swarm node that is no configured VM, as plans and outcomes name it."""

    id: str
    hostname: str

    def __str__(self) -> str:
        return f"node {self.hostname} ({self.id[:12]})"


@dataclass(frozen=True)
class Stranded:
    """A service that a drain would leave with nowhere to run, and why."""

    service: str
    reason: str

    def __str__(self) -> str:
        return f"service {self.service}: {self.reason}"


# -- facts ----------------------------------------------------------------------------

def read_tasks(transport: Transport, control: VM, *, quiet: bool = False) -> Progress:
    """Every service and every task of the swarm, and the manager's clock: one round trip."""
    res = transport.run(control, commands.tasks(), mutating=False, quiet=quiet)
    return parse_progress(res.stdout)


def node_of(config: Config, facts: ClusterFacts, vm: VM) -> NodeFacts:
    """The swarm node of a configured VM, or a MaintenanceError saying why there is none."""
    if facts.control is None:
        raise MaintenanceError("no configured manager answers as a swarm manager"
                               + (f" ({'; '.join(facts.problems)})" if facts.problems else "")
                               + ": run `inv swarm.init` and `inv swarm.join` first")
    c = classify(config, facts)[vm.vmid]
    if c.kind not in (MEMBER, WRONG_ROLE) or c.node is None:
        detail = f": {c.detail}" if c.detail else ""
        raise MaintenanceError(f"{vm} is not a node of the swarm ({c.kind}{detail})")
    return c.node


def _hostnames(facts: ClusterFacts) -> dict[str, str]:
    return {n.id: n.hostname for n in (facts.nodes or {}).values()}


# -- which services a drain strands --------------------------------------------------------

def _live_on(node_id: str, progress: Progress) -> list[TaskFacts]:
    return [t for t in progress.tasks if t.node_id == node_id and t.state in LIVE_STATES and t.desired_state in WANTED]


def stranded_services(node: NodeFacts, nodes: Mapping[str, NodeFacts], progress: Progress
                      ) -> tuple[list[Stranded], list[str]]:
    """The services with a task on `node` that no other node could run, and notes for the
    plan (global services that keep running elsewhere)."""
    by_id = {s.id: s for s in progress.services.values()}
    others = [n for n in nodes.values() if n.id != node.id]
    usable = [n for n in others if n.status == "ready" and n.availability == "active"]
    stranded, notes = [], []
    touched = sorted({by_id[t.service_id].name: by_id[t.service_id] for t in _live_on(node.id, progress)
                      if t.service_id in by_id}.items())
    for name, s in touched:
        where = " and ".join(repr(c) for c in s.constraints)
        fits = candidates_for(s.constraints, usable)
        if not fits:
            anywhere = candidates_for(s.constraints, others)
            if not anywhere:
                why = f"only {node.hostname} satisfies {where}" if where else "no other node is in the swarm"
            else:
                held = ", ".join(f"{n.hostname} ({n.status}, {n.availability})" for n in anywhere)
                why = f"the other nodes that satisfy {where or 'it'} are not ready and active: {held}"
            if s.mode == "global":
                why = f"global, so it is not rescheduled, and {why}: it would run nowhere"
            stranded.append(Stranded(name, why))
            continue
        if s.mode == "global":
            notes.append(f"global service {name}: its task on {node.hostname} stops and is not rescheduled "
                         f"(global services run one task per eligible node); it keeps running on "
                         f"{len(fits)} other node(s)")
            continue
        per_node = ((s.task_template.get("Placement") or {}).get("MaxReplicas") or 0)
        if per_node and s.replicas and len(fits) * per_node < s.replicas:
            stranded.append(Stranded(name, f"at most {per_node} replica(s) per node: the {len(fits)} other "
                                           f"node(s) that can run it hold {len(fits) * per_node} of its "
                                           f"{s.replicas} replicas (need {math.ceil(s.replicas / per_node)} nodes)"))
    return stranded, notes


# -- the wait --------------------------------------------------------------------------

@dataclass(frozen=True)
class Move:
    """A task leaving the drained node, and its replacement (replicated services)."""

    service: str
    slot: int | None  # None: a global service's task (it is not replaced)
    source: str  # hostname
    target: str | None  # hostname of the replacement's node; None: none yet
    state: str  # the replacement's state (the old task's, for a global service)
    detail: str = ""

    def line(self) -> str:
        if self.slot is None:
            return f"{self.service}: global: its task on {self.source} {self.state} (not rescheduled)"
        detail = f": {self.detail}" if self.detail else ""
        return f"{self.service}.{self.slot}: {self.source} -> {self.target or '?'} ({self.state}{detail})"


@dataclass(frozen=True)
class DrainState:
    node: str  # hostname
    running: tuple[tuple[str, TaskFacts], ...]  # (service, task) still live on the node
    moves: tuple[Move, ...]
    waiting: tuple[Move, ...]  # replacements not running yet (stranded services aside)

    @property
    def done(self) -> bool:
        return not self.running and not self.waiting

    def still(self) -> str:
        parts = []
        if self.running:
            parts.append(f"still on {self.node}: " + ", ".join(f"{svc} task {t.id[:12]} ({t.state})"
                                                              for svc, t in self.running))
        if self.waiting:
            parts.append("not yet running elsewhere: " + ", ".join(m.line() for m in self.waiting))
        return "; ".join(parts) or "nothing"


def judge_drain(node_id: str, progress: Progress, hostnames: Mapping[str, str], *, since: int | None,
                skip: frozenset[str] = frozenset()) -> DrainState:
    """Where a drain of `node_id` stands.  `since`: the manager's clock before the drain
    (tasks that ended on the node after it are this drain's moves; None: live ones only).
    `skip`: services known to have nowhere to go (a forced drain): not waited for."""
    services = {s.id: s for s in progress.services.values()}

    def name(t: TaskFacts) -> str:
        return services[t.service_id].name if t.service_id in services else t.service_id[:12]

    here = hostnames.get(node_id, node_id[:12])
    mine = [t for t in progress.tasks if t.node_id == node_id]
    running = sorted(((name(t), t) for t in mine if t.state in LIVE_STATES), key=lambda p: (p[0], p[1].slot or 0))
    leaving = [t for t in mine if t.desired_state not in WANTED and
               (t.state in LIVE_STATES or (since is not None and (t.since or 0) >= since))]
    moves: dict[tuple[str, int | None], Move] = {}
    for t in sorted(leaving, key=lambda t: t.created_at or 0):
        svc = services.get(t.service_id)
        if t.slot is None or (svc is not None and svc.mode == "global"):
            moves[(name(t), None)] = Move(name(t), None, here, None, t.state)
            continue
        candidates = [u for u in progress.tasks if u.service_id == t.service_id and u.slot == t.slot
                      and u.node_id != node_id and u.desired_state in WANTED]
        repl = max(candidates, key=lambda u: u.created_at or 0, default=None)
        if repl is None:
            moves[(name(t), t.slot)] = Move(name(t), t.slot, here, None, "waiting for the scheduler")
        else:
            target = hostnames.get(repl.node_id, repl.node_id[:12]) if repl.node_id else None
            moves[(name(t), t.slot)] = Move(name(t), t.slot, here, target, repl.state, repl.error)
    ordered = tuple(sorted(moves.values(), key=lambda m: (m.service, m.slot if m.slot is not None else -1)))
    waiting = tuple(m for m in ordered if m.slot is not None and m.state != "running" and m.service not in skip)
    return DrainState(here, tuple(running), ordered, waiting)


def wait_drained(read: Callable[[], Progress], node_id: str, hostnames: Mapping[str, str], *,
                 since: int | None, skip: frozenset[str] = frozenset(), timeout_s: float = DRAIN_TIMEOUT_S,
                 interval_s: float = 1.0, report: Callable[[DrainState], None] = lambda state: None,
                 clock: Callable[[], float] | None = None, sleep: Callable[[float], None] | None = None
                 ) -> DrainState:
    """Poll until no task runs on the node and every moved task runs elsewhere, or the timeout."""
    clock, sleep = clock or time.monotonic, sleep or time.sleep
    deadline = clock() + timeout_s
    while True:
        state = judge_drain(node_id, read(), hostnames, since=since, skip=skip)
        report(state)
        if state.done or clock() >= deadline:
            return state
        sleep(interval_s)


def line_reporter(emit: Callable[[str], None]) -> Callable[[DrainState], None]:
    """A wait reporter that prints each move once per state it reaches."""
    seen: set[str] = set()

    def report(state: DrainState) -> None:
        for m in state.moves:
            line = m.line()
            if line not in seen:
                seen.add(line)
                emit(f"  {line}")
    return report


class DrainTimeout(PhoenixError):
    pass


def _timeout(state: DrainState, timeout_s: float) -> DrainTimeout:
    return DrainTimeout(f"not drained after {timeout_s:.0f} s: {state.still()}")


# -- plans ------------------------------------------------------------------------------

def _availability_action(kind: str, control: VM, target, node: NodeFacts, want: str, summary: str) -> Action:
    return Action(kind=kind, where=control, summary=summary, target=target,
                  argv=tuple(commands.node_availability(node.id, want)))


def _pin_warning(vm: VM, want: str) -> list[str]:
    if vm.availability is None or vm.availability == want:
        return []
    return [f"the config pins availability {vm.availability} for {vm.name}: `sync all` and `swarm label` "
            f"set it back"]


def _stranded_reason(stranded: Sequence[Stranded]) -> str:
    return ("draining it leaves services nowhere to run: " + "; ".join(map(str, stranded)) +
            ". Run with --force to drain anyway (they stop until a node can run them)")


def plan_drain(config: Config, facts: ClusterFacts, vm: VM, progress: Progress | None, *,
               force: bool = False) -> Plan:
    """Drain one configured VM's node; refused (Blocked) when a service would be left
    with nowhere to run, unless `force`.  `progress` None: not read (the node is drained)."""
    node = node_of(config, facts, vm)
    plan = Plan(warnings=_pin_warning(vm, "drain"))
    if node.role == "manager":
        plan.warnings.append(f"{vm.name} is a manager: drained, it stays a manager (a Raft member: "
                             f"{quorum.of_nodes(facts.nodes.values()).describe()}) and only loses its tasks")
    if node.availability == "drain":
        return plan
    stranded, notes = stranded_services(node, facts.nodes, progress) if progress is not None else ([], [])
    plan.warnings += notes
    if stranded and not force:
        plan.blocked.append(Blocked(vm, _stranded_reason(stranded)))
        return plan
    plan.warnings += [f"--force: {s}: it stops until a node can run it" for s in stranded]
    plan.actions.append(_availability_action("drain", facts.control, vm, node, "drain",
                                             f"availability drain (was {node.availability}): its tasks move "
                                             f"to other nodes; wait until none runs there"))
    return plan


def plan_undrain(config: Config, facts: ClusterFacts, vm: VM) -> Plan:
    node = node_of(config, facts, vm)
    plan = Plan(warnings=_pin_warning(vm, "active"))
    if node.availability != "active":
        plan.actions.append(_availability_action(
            "undrain", facts.control, vm, node, "active",
            f"availability active (was {node.availability}): it takes new tasks; tasks that moved away "
            f"do not move back by themselves (a deploy or `docker service update --force` rebalances)"))
    return plan


def _needs_drain(u: unclaimed.Unclaimed) -> bool:
    return u.prunable and u.node.status != "down" and u.node.availability != "drain"


def plan_prune(config: Config, facts: ClusterFacts, progress: Progress | None = None, *,
               force: bool = False) -> Plan:
    """Drain, demote (quorum checked) and remove every node no configured VM claims that
    may be pruned (unclaimed.py): down nodes first, so that an unreachable manager
    leaves Raft before a reachable one is asked to."""
    plan = Plan()
    if facts.nodes is None or facts.control is None:
        return plan
    control = facts.control
    found = unclaimed.find(config, facts)
    plan.warnings += [f"unclaimed: {u}: {u.detail}" for u in found if not u.prunable]
    removing: list[NodeFacts] = []
    for u in sorted((u for u in found if u.prunable), key=lambda u: (u.node.status != "down", u.node.hostname)):
        n, ref = u.node, NodeRef(u.node.id, u.node.hostname)
        what = "not in config" if u.kind == unclaimed.NOT_IN_CONFIG else "stale"
        chain: list[Action] = []
        if _needs_drain(u):
            stranded, notes = stranded_services(n, facts.nodes, progress) if progress is not None else ([], [])
            plan.warnings += notes
            if stranded and not force:
                plan.blocked.append(Blocked(ref, f"{what}: {_stranded_reason(stranded)}"))
                continue
            plan.warnings += [f"--force: {s}: it stops until a node can run it" for s in stranded]
            chain.append(_availability_action("drain", control, ref, n, "drain",
                                              f"{what}: drain it, and wait until no task runs there"))
        if n.role == "manager":
            refusal = quorum.refusal(facts.nodes.values(), removing + [n])
            if refusal:
                plan.blocked.append(Blocked(ref, f"{what}: a manager, not demoted: {refusal}"))
                plan.actions += chain
                continue
            removing.append(n)
            chain.append(Action(kind="demote", where=control, target=ref, summary=f"{what}: demote to worker (quorum checked)",
                                argv=tuple(commands.node_demote(n.id))))
        if n.status == "down":
            chain.append(Action(kind="remove", where=control, target=ref, argv=tuple(commands.node_rm(n.id)),
                                summary=f"{what}: remove its entry ({u.detail})" if u.kind == unclaimed.STALE
                                else f"{what}: remove its entry (the node is down)"))
        elif force:
            chain.append(Action(kind="remove", where=control, target=ref, argv=tuple(commands.node_rm(n.id, force=True)),
                                summary=f"{what}: remove its entry while it is still up (--force): the machine "
                                        f"believes it is in the swarm until `docker swarm leave --force` runs on it"))
        else:
            plan.blocked.append(Blocked(ref, f"{what}, and still up ({n.status}): Phoenix does not connect to "
                                             f"machines outside the config to make them leave. Run `docker swarm "
                                             f"leave` on it or shut it down, then prune again (a down node's "
                                             f"entry is removed); or prune with --force to remove its entry now"))
        plan.actions += chain
    if removing:
        q = quorum.of_nodes(facts.nodes.values())
        after = quorum.Quorum(q.managers - len(removing),
                              q.reachable - sum(1 for n in removing if quorum.is_reachable(n)))
        plan.warnings.append(f"quorum: now {q.describe()}; after this prune {after.describe()}")
        even = quorum.even_warning(after.managers, " after this prune")
        if even:
            plan.warnings.append(even)
    return plan


# -- flows ------------------------------------------------------------------------------

Show = Callable[[Plan], None]
Report = Callable[[str], None]


def drain(transport: Transport, config: Config, vm: VM, *, force: bool = False, wait: bool = True,
          timeout_s: float = DRAIN_TIMEOUT_S, dry_run: bool = False, show: Show = lambda plan: None,
          report: Report = lambda line: None, interval_s: float = 1.0) -> Outcome:
    """Drain one VM's node and (unless not `wait`) wait until no task runs there and the
    tasks that left run elsewhere; a timeout is a failure naming what still runs."""
    facts = read_facts(transport, config)
    node = node_of(config, facts, vm)
    needs_read = node.availability != "drain" or wait
    progress = read_tasks(transport, facts.control) if needs_read else None
    plan = plan_drain(config, facts, vm, progress, force=force)
    show(plan)
    outcome = Outcome(plan, dry_run=dry_run, blocked=list(plan.blocked), facts=facts)
    if dry_run or plan.blocked:
        return outcome
    for action in plan.actions:
        transport.run(action.where, action.argv, mutating=True)
        outcome.applied.append(action)
    if wait:
        stranded = stranded_services(node, facts.nodes, progress)[0] if progress is not None else []
        state = wait_drained(lambda: read_tasks(transport, facts.control, quiet=True), node.id, _hostnames(facts),
                             since=progress.now if progress is not None else None,
                             skip=frozenset(s.service for s in stranded), timeout_s=timeout_s,
                             interval_s=interval_s, report=line_reporter(report))
        if not state.done:
            outcome.failed.append((vm, str(_timeout(state, timeout_s))))
        elif not outcome.applied:
            report(f"  nothing runs on {node.hostname}")
    if outcome.applied:
        final = read_facts(transport, config)
        outcome.facts = final
        if node_of(config, final, vm).availability != "drain":
            outcome.pending = list(plan.actions)
    return outcome


def undrain(transport: Transport, config: Config, vm: VM, *, dry_run: bool = False,
            show: Show = lambda plan: None) -> Outcome:
    facts = read_facts(transport, config)
    plan = plan_undrain(config, facts, vm)
    show(plan)
    outcome = Outcome(plan, dry_run=dry_run, facts=facts)
    if dry_run or plan.empty:
        return outcome
    for action in plan.actions:
        transport.run(action.where, action.argv, mutating=True)
        outcome.applied.append(action)
    final = read_facts(transport, config)
    outcome.facts = final
    outcome.pending = plan_undrain(config, final, vm).actions
    return outcome


def read_prune_plan(transport: Transport, config: Config, facts: ClusterFacts, *, force: bool = False
                    ) -> tuple[Plan, Progress | None]:
    """The prune plan from facts already read; the tasks are read only when a node is to
    be drained (a converged swarm costs no extra read)."""
    needs = facts.control is not None and any(_needs_drain(u) for u in unclaimed.find(config, facts))
    progress = read_tasks(transport, facts.control) if needs else None
    return plan_prune(config, facts, progress, force=force), progress


def _remove(transport: Transport, action: Action, *, clock=None, sleep=None) -> None:
    """`docker node rm`, retried for a while when Raft still lists a just-demoted manager."""
    clock, sleep = clock or time.monotonic, sleep or time.sleep
    deadline = clock() + REMOVE_RETRY_S
    while True:
        res = transport.run(action.where, action.argv, mutating=True, check=False)
        if res.ok:
            return
        text = (res.stderr or res.stdout).strip()
        if "demoted" not in text or clock() >= deadline:
            lines = text.splitlines()
            raise PhoenixError(f"`{res.display}` failed (exit {res.exited}): {lines[-1] if lines else 'no output'}")
        sleep(1.0)


def prune(transport: Transport, config: Config, *, force: bool = False, dry_run: bool = False,
          timeout_s: float = DRAIN_TIMEOUT_S, show: Show = lambda plan: None, report: Report = lambda line: None,
          facts: ClusterFacts | None = None, interval_s: float = 1.0) -> Outcome:
    """Prune every node no configured VM claims (unclaimed.py), node by node: drain and
    wait, demote, remove.  One node failing is reported by name; the others go on."""
    facts = facts if facts is not None else read_facts(transport, config)
    if facts.control is None:
        raise MaintenanceError("no configured manager answers as a swarm manager: nothing can be pruned")
    plan, progress = read_prune_plan(transport, config, facts, force=force)
    show(plan)
    outcome = Outcome(plan, dry_run=dry_run, blocked=list(plan.blocked), facts=facts)
    if dry_run or plan.empty:
        return outcome
    chains: dict[NodeRef, list[Action]] = {}
    for a in plan.actions:
        chains.setdefault(a.target, []).append(a)
    for ref, chain in chains.items():
        try:
            for action in chain:
                if action.kind == "remove":
                    _remove(transport, action)
                else:
                    transport.run(action.where, action.argv, mutating=True)
                outcome.applied.append(action)
                if action.kind == "drain":
                    node = facts.nodes[ref.id]
                    skip = frozenset(s.service for s in stranded_services(node, facts.nodes, progress)[0]) \
                        if progress is not None else frozenset()
                    state = wait_drained(lambda: read_tasks(transport, facts.control, quiet=True), ref.id,
                                         _hostnames(facts), since=progress.now if progress is not None else None,
                                         skip=skip, timeout_s=timeout_s, interval_s=interval_s,
                                         report=line_reporter(report))
                    if not state.done:
                        raise _timeout(state, timeout_s)
        except PhoenixError as exc:
            outcome.failed.append((ref, str(exc)))
    final = read_facts(transport, config)
    outcome.facts = final
    after = plan_prune(config, final, None, force=force)
    failed = {subject for subject, _ in outcome.failed}
    outcome.pending = [a for a in after.actions if a.target not in failed]
    outcome.blocked = [b for b in after.blocked if b.subject not in failed]
    return outcome
