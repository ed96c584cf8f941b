"""Apply: facts -> plan -> show -> (dry-run stops) -> apply phase by phase -> read again.

Each phase is re-planned from fresh facts, so a join's node ID or a token is never
guessed.  One VM failing is recorded by name; the other VMs still converge.  After
the apply the facts are read again: anything still pending is an error.
"""

from __future__ import annotations

import threading
import time
from typing import Callable, Mapping, Sequence

from ..core import engine_api
from ..core.engine_api import EngineRequest
from ..core.errors import PhoenixError
from ..core.model import VM, Config
from ..core.plan import Action, Outcome, Plan
from ..core.secrets import Secret
from ..core.transport import RemoteCommandFailed, Transport
from . import commands, raft
from .facts import ClusterFacts, parse_nodes, read_facts
from .plan import PHASES, Options, plan_phases


def read_join_token(transport: Transport, manager: VM, role: str) -> Secret:
    """The join token of a role, read from a manager, held in memory as a Secret."""
    res = transport.run(manager, commands.join_token(role), mutating=False)
    return transport.keep_secret(Secret(res.stdout.strip()))


class _Tokens:
    """Join tokens, fetched from the control manager once per role, in memory only."""

    def __init__(self, transport: Transport, control: VM):
        self.transport, self.control = transport, control
        self._tokens: dict[str, Secret] = {}
        self._lock = threading.Lock()

    def get(self, role: str) -> Secret:
        with self._lock:
            if role not in self._tokens:
                self._tokens[role] = read_join_token(self.transport, self.control, role)
            return self._tokens[role]


def _argv(action: Action, config: Config, facts: ClusterFacts, tokens: _Tokens | None):
    if action.argv is not None:
        return action.argv
    if action.kind == "join" and tokens is not None and facts.manager_addr:
        addr = config.hypervisor.swarm.advertise_addr(action.target)
        return commands.swarm_join(tokens.get(action.target.swarm_role), facts.manager_addr, addr)
    return None


PROMOTE_WAIT_S = 60.0


def wait_until_reachable(transport: Transport, control: VM, promoted: Mapping[str, VM], *,
                         timeout_s: float = PROMOTE_WAIT_S, sleep: Callable[[float], None] = time.sleep,
                         clock: Callable[[], float] = time.monotonic) -> None:
    """Until every promoted node (by node ID) is a `reachable` manager.  Right after
    `docker node promote` a node has no manager status yet; a demote sent then is
    refused ("can't remove member from the raft: this would result in a loss of
    quorum"), because raft does not count the new manager yet."""
    end = clock() + timeout_s
    while True:
        nodes = parse_nodes(transport.run(control, commands.inspect_nodes(), mutating=False).stdout)
        waiting = [vm for node_id, vm in promoted.items()
                   if nodes.get(node_id) is None or nodes[node_id].reachability != "reachable"]
        if not waiting:
            return
        if clock() >= end:
            names = ", ".join(str(vm) for vm in waiting)
            raise PhoenixError(f"promoted {names}, but not a reachable manager after {timeout_s:.0f} s: "
                               "no manager is demoted until it is (quorum)")
        sleep(0.5)


def _role_now(transport: Transport, managers: Sequence[VM], node_id: str) -> str | None:
    """The node's role as the first manager that answers lists it (None: none answers)."""
    for m in managers:
        try:
            nodes = parse_nodes(transport.run(m, commands.inspect_nodes(), mutating=False).stdout)
        except (PhoenixError, ValueError):
            continue
        return nodes[node_id].role if node_id in nodes else None
    return None


def run_role_change(transport: Transport, action: Action, argv, managers: Sequence[VM], *,
                    sleep: Callable[[float], None] = time.sleep) -> None:
    """A promote or demote, sent again while raft says it is busy (a leader change, a
    member still joining; raft.retry_while_busy); between tries the node's role is read
    from `managers` (a busy answer may still have landed: a leader that demoted itself
    cannot be asked again)."""
    wanted = "manager" if action.kind == "promote" else "worker"
    node_id = str(argv[-1])
    raft.retry_while_busy(lambda: transport.run(action.where, argv, mutating=True),
                          landed=lambda: _role_now(transport, managers, node_id) == wanted, sleep=sleep)


# What `docker swarm init` says on a node that is in a swarm already.
ALREADY_IN_SWARM = "already part of a swarm"


def _run_phase(transport: Transport, config: Config, facts: ClusterFacts, actions: Sequence[Action],
               outcome: Outcome) -> bool:
    """Run one phase's actions: the chain of each target VM in order, targets in parallel.
    A demote waits until every manager promoted in this run is reachable.  True: an init
    was not run because its VM is in a swarm now (the caller reads and plans again)."""
    tokens = _Tokens(transport, facts.control) if facts.control else None
    chains: dict[int, list[Action]] = {}
    for a in actions:
        chains.setdefault(a.target.vmid, []).append(a)
    lock = threading.Lock()
    promoted: dict[str, VM] = {}  # node ID -> VM, promoted by this phase
    replan: list[VM] = []

    def run_chain(vm: VM):
        for i, action in enumerate(chains[vm.vmid]):
            argv = _argv(action, config, facts, tokens)
            if argv is None:
                continue  # unresolved: the final read reports it as pending
            if action.kind == "init" and i == 0:
                # Classified again as it runs: another run (from this machine without the
                # cluster lock, or from another machine) may have initialised it since the
                # facts were read.  Not in "no swarm" now: no init; read and plan again.
                argv = commands.only_if_inactive(argv)
            if action.kind in ("init", "join"):
                try:
                    if isinstance(argv, EngineRequest):  # a join: the token in the API request's body
                        engine_api.call(transport, action.where, argv, mutating=True)
                    else:
                        transport.run(action.where, argv, mutating=True)
                except RemoteCommandFailed as exc:
                    if ALREADY_IN_SWARM not in exc.stderr and commands.NOT_INACTIVE not in exc.stderr:
                        raise
                    # Another run initialised or joined it in between: read and plan again
                    # (the final read says whether it is in our swarm).
                    replan.append(action.target)
                    return
                with lock:
                    outcome.applied.append(action)
                continue
            if action.kind == "demote" and promoted:
                wait_until_reachable(transport, facts.control, promoted)
            if action.kind in ("promote", "demote"):
                run_role_change(transport, action, argv, [facts.control, *promoted.values()])
            else:
                transport.run(action.where, argv, mutating=True,
                              stdin=action.stdin.data if action.stdin is not None else None)  # an unlock key
            with lock:
                outcome.applied.append(action)
                if action.kind == "promote":
                    promoted[str(argv[-1])] = action.target

    targets = [chains[vmid][0].target for vmid in chains]
    # Promote/demote run on the control manager: keep them in order, one at a time.
    serial = any(a.kind in ("promote", "demote", "init") for a in actions)
    results = transport.each(targets, run_chain, parallel=not serial)
    for vm in targets:
        if isinstance(results[vm.name], PhoenixError):
            outcome.failed.append((vm, str(results[vm.name])))
    demoted = any(a.kind == "demote" for a in outcome.applied)
    if promoted and not demoted:  # a run ends with its new managers counted by raft
        try:
            wait_until_reachable(transport, facts.control, promoted)
        except PhoenixError as exc:
            outcome.failed.append((next(iter(promoted.values())), str(exc)))
    if any(a.kind in ("promote", "demote") for a in outcome.applied if a in actions):
        # Raft elects and commits the new membership for a few seconds after role changes:
        # the next stage's first write (the deploy lock) failed with DeadlineExceeded.
        ask = list({vm.vmid: vm for vm in (*promoted.values(), *config.managers, facts.control)}.values())
        try:
            raft.wait_for_leader(transport, ask)
        except PhoenixError as exc:
            outcome.failed.append((facts.control, str(exc)))
    inits = {a.target.vmid for a in actions if a.kind == "init"}
    for vm in replan:
        step = "initialised" if vm.vmid in inits else "joined"
        outcome.plan.warnings.append(f"{vm}: not {step}: it is in a swarm now (another run?): read again "
                                     "and planned from that swarm")
    return bool(replan)


# Actions that change their target's engine (its swarm state or role); a label or an
# availability changes only the node list, which the control manager's read holds.
ENGINE_CHANGES = ("unlock", "init", "join", "promote", "demote", "leave")


def _changed(outcome: Outcome, since: int, actions: Sequence[Action], replanned: bool) -> list[VM]:
    """The VMs to read again after a phase: targets of engine-changing actions applied
    since `since`, and every target that failed or was re-planned (its state is unknown)."""
    applied = outcome.applied[since:]
    failed = {vm.vmid for vm, _ in outcome.failed}
    vms = {a.target.vmid: a.target for a in applied if a.kind in ENGINE_CHANGES}
    for a in actions:
        if a.target.vmid in failed or replanned:
            vms[a.target.vmid] = a.target
    return list(vms.values())


def converge(
    transport: Transport,
    config: Config,
    opts: Options,
    phases: Sequence[str] = PHASES,
    *,
    dry_run: bool = False,
    show: Callable[[Plan], None] = lambda plan: None,
    facts: ClusterFacts | None = None,
) -> Outcome:
    """`facts`: read moments ago under the same cluster lock (sync-all's plan); read here
    otherwise.  After a phase that changed something, only the VMs it changed and the
    control manager are read again (read_facts(previous=, reread=)); the final read
    after the apply is the same: every fact the plan depends on that the run changed is
    read from the VMs again."""
    facts = facts if facts is not None else read_facts(transport, config)
    plan = plan_phases(config, facts, opts, phases)
    show(plan)
    outcome = Outcome(plan, dry_run=dry_run, blocked=list(plan.blocked), facts=facts)
    if dry_run or plan.empty:
        return outcome
    # VMs changed since `facts` was read (None: nothing).  Only those and the control
    # manager (its node list) are read again; the other engines' facts stand (a manager
    # joining changes a worker's RemoteManagers, which the plan reads only when no node
    # list is).
    stale: list[VM] | None = None
    for phase in PHASES:
        if phase not in phases:
            continue
        if stale is not None:
            facts = read_facts(transport, config, previous=facts, reread=stale)
            stale = None
        step = plan_phases(config, facts, opts, [phase])
        failed = {vm.vmid for vm, _ in outcome.failed}
        todo = [a for a in step.actions if a.target.vmid not in failed]
        if todo:
            before, failed_before = len(outcome.applied), len(outcome.failed)
            replan = _run_phase(transport, config, facts, todo, outcome)
            if len(outcome.applied) > before or replan or len(outcome.failed) > failed_before:
                stale = _changed(outcome, before, todo, replan)
    # Nothing ran (every action unresolved or skipped): the facts the plan came from stand.
    final = read_facts(transport, config, previous=facts, reread=stale) if stale is not None else facts
    outcome.facts = final
    after = plan_phases(config, final, opts, phases)
    failed = {vm.vmid for vm, _ in outcome.failed}
    outcome.pending = [a for a in after.actions if a.target.vmid not in failed]
    outcome.blocked = [b for b in after.blocked if b.subject.vmid not in failed]
    return outcome

