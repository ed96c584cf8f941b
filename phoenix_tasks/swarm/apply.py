"""Apply: facts -> plan -> show -> (dry-run stops) -> apply phase by phase -> read again.

Each phase is re-planned from fresh facts, so a join's node ID or a token is never
guessed.  One VM failing is recorded by name; the other VMs still converge.  After
the apply the facts are read again: anything still pending is an error.
"""

from __future__ import annotations

import threading
from typing import Callable, Sequence

from ..errors import PhoenixError
from ..model import VM, Config
from ..plan import Action, Outcome, Plan
from ..secrets import Secret
from ..transport import Transport
from . import commands
from .facts import ClusterFacts, read_facts
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
        return tuple(commands.swarm_join(tokens.get(action.target.swarm_role), facts.manager_addr, addr))
    return None


def _run_phase(transport: Transport, config: Config, facts: ClusterFacts, actions: Sequence[Action],
               outcome: Outcome) -> None:
    """Run one phase's actions: the chain of each target VM in order, targets in parallel."""
    tokens = _Tokens(transport, facts.control) if facts.control else None
    chains: dict[int, list[Action]] = {}
    for a in actions:
        chains.setdefault(a.target.vmid, []).append(a)
    lock = threading.Lock()

    def run_chain(vm: VM):
        for action in chains[vm.vmid]:
            argv = _argv(action, config, facts, tokens)
            if argv is None:
                continue  # unresolved: the final read reports it as pending
            transport.run(action.where, argv, mutating=True,
                          stdin=action.stdin.data if action.stdin is not None else None)  # an unlock key
            with lock:
                outcome.applied.append(action)

    targets = [chains[vmid][0].target for vmid in chains]
    # Promote/demote run on the control manager: keep them in order, one at a time.
    serial = any(a.kind in ("promote", "demote", "init") for a in actions)
    results = transport.each(targets, run_chain, parallel=not serial)
    for vm in targets:
        if isinstance(results[vm.name], PhoenixError):
            outcome.failed.append((vm, str(results[vm.name])))


def converge(
    transport: Transport,
    config: Config,
    opts: Options,
    phases: Sequence[str] = PHASES,
    *,
    dry_run: bool = False,
    show: Callable[[Plan], None] = lambda plan: None,
) -> Outcome:
    facts = read_facts(transport, config)
    plan = plan_phases(config, facts, opts, phases)
    show(plan)
    outcome = Outcome(plan, dry_run=dry_run, blocked=list(plan.blocked), facts=facts)
    if dry_run or plan.empty:
        return outcome
    fresh = True
    for phase in PHASES:
        if phase not in phases:
            continue
        if not fresh:
            facts = read_facts(transport, config)
        step = plan_phases(config, facts, opts, [phase])
        failed = {vm.vmid for vm, _ in outcome.failed}
        todo = [a for a in step.actions if a.target.vmid not in failed]
        if todo:
            before = len(outcome.applied)
            _run_phase(transport, config, facts, todo, outcome)
            fresh = len(outcome.applied) == before
    final = read_facts(transport, config)
    outcome.facts = final
    after = plan_phases(config, final, opts, phases)
    failed = {vm.vmid for vm, _ in outcome.failed}
    outcome.pending = [a for a in after.actions if a.target.vmid not in failed]
    outcome.blocked = [b for b in after.blocked if b.subject.vmid not in failed]
    return outcome
