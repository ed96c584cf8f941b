"""`sync-all`, from nothing to a dashboard: VMs -> SSH -> swarm -> Portainer -> it answers.

One plan for the whole run is read and shown first (`--dry-run` stops there): the VMs
the provider must create or start, the swarm's init/join/label actions and
Portainer's service changes, each read from the real state.  What cannot be read yet
(the swarm of VMs that do not exist) says so.  Then each stage applies and reads
again; a stage whose plan was empty, and that no earlier stage changed, runs nothing
and says "no changes".  A VM that fails is named with its error; the others still
converge; the run's exit status is non-zero.

The stages are the same functions the single tasks use (providers, swarm.apply,
stack.deploy, portainer); this module only orders them and keeps what the summary
needs.  Printing is the caller's (`Reporter`).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Protocol

from ..portainer import service as portainer, data as portainer_data
from ..core.errors import PhoenixError
from ..core.model import VM, Config
from ..core.plan import Outcome, Plan
from ..providers import VMProvider
from ..stack.deploy import DEFAULT_TIMEOUT_S, DeployOutcome, deploy
from ..stack.facts import StackRead
from ..stack.transaction import Guard, Renderer, guarded_deploy, read_resolve_gate
from ..docker.render import Rendered
from ..swarm.apply import converge
from ..cluster import maintenance
from ..swarm.facts import ClusterFacts
from ..swarm.plan import PHASES, Options
from ..core.transport import Transport
from .vm_stage import SSH_WAIT_S, VMsOutcome, bring_up, plan_targets, plan_vms, wait_for_ssh


class Reporter(Protocol):
    def stage(self, number: int, title: str) -> None: ...

    def line(self, text: str, style: str | None = None) -> None: ...

    def swarm_plan(self, plan: Plan) -> None: ...

    def swarm_outcome(self, outcome: Outcome) -> None: ...

    def prune_plan(self, plan: Plan) -> None: ...

    def deploy(self, outcome: DeployOutcome, rendered: Rendered, stage: str) -> None: ...

    def progress(self, verdicts) -> None: ...


@dataclass
class SyncPlan:
    vms: list[VM]  # the VMs the provider's plan changes (creates, starts, configures)
    vm_plan: Plan = field(default_factory=Plan)  # the provider's plan, shown as is
    rendered: Rendered | None = None  # Portainer's document (by digest once the swarm could resolve them)
    swarm: Outcome | None = None  # the dry-run converge: its plan, its facts
    portainer: DeployOutcome | None = None  # the dry-run deploy
    portainer_read: tuple[VM, StackRead] | None = None  # Portainer's services as the plan read them
    # A role change moves Portainer's server to another node: its data volume is carried there.
    portainer_move: portainer_data.DataMove | None = None
    prune: Plan | None = None  # with --prune: nodes no VM claims, to drain and remove (swarm/maintenance.py)
    notes: dict[str, str] = field(default_factory=dict)  # stage -> why it is not planned yet
    warnings: list[str] = field(default_factory=list)
    # The image gate: Portainer's images that their registry says do not exist or refuses.
    portainer_blocked: list[str] = field(default_factory=list)

    @property
    def empty(self) -> bool:
        return (not self.vms and not self.vm_plan.blocked and self.swarm is not None and self.swarm.plan.empty
                and self.portainer is not None and not self.portainer.changes and not self.portainer.behind
                and not self.portainer_blocked and (self.prune is None or self.prune.empty))


@dataclass
class SyncResult:
    plan: SyncPlan
    dry_run: bool
    vms: VMsOutcome | None = None
    ssh_failed: dict[str, str] = field(default_factory=dict)  # VM name -> error
    swarm: Outcome | None = None
    prune: Outcome | None = None  # with --prune
    portainer: DeployOutcome | None = None
    status: portainer.PortainerStatus | None = None
    facts: ClusterFacts | None = None  # the swarm as last read
    problems: list[str] = field(default_factory=list)  # stage-level failures, for people
    started: float = field(default_factory=time.monotonic)
    elapsed_s: float = 0.0

    @property
    def ok(self) -> bool:
        parts = [self.vms is None or self.vms.ok, not self.ssh_failed, self.swarm is None or self.swarm.ok,
                 self.portainer is None or self.portainer.ok, not self.problems,
                 self.prune is None or self.prune.ok]
        if not self.dry_run:
            parts.append(self.status is not None and self.status.answers)
        return all(parts)

    def changes_for(self, vm: VM) -> list[str]:
        """What this run changed on one VM, in words (for the summary table)."""
        done = []
        if self.vms and any(v.vmid == vm.vmid for v in self.vms.plan) and not any(
                v.vmid == vm.vmid for v, _ in self.vms.failed):
            kinds = [a.kind for a in self.vms.applied if a.target.vmid == vm.vmid]
            done += list(dict.fromkeys(kinds)) or ["created/started"]
        if self.swarm:
            kinds = [a.kind for a in self.swarm.applied if getattr(a.target, "vmid", None) == vm.vmid]
            done += list(dict.fromkeys(kinds))
        return done

    def failure_for(self, vm: VM) -> str | None:
        for subject, message in ([*(self.vms.failed if self.vms else [])] +
                                 [*(self.swarm.failed if self.swarm else [])]):
            if getattr(subject, "vmid", None) == vm.vmid:
                return message
        if vm.name in self.ssh_failed:
            return self.ssh_failed[vm.name]
        for b in [*(self.vms.blocked if self.vms else []), *(self.swarm.blocked if self.swarm else [])]:
            if getattr(b.subject, "vmid", None) == vm.vmid:
                return b.reason
        if self.vms and any(v.vmid == vm.vmid for v in self.vms.still_down):
            return "still down after the provider started it"
        if self.vms and any(a.target.vmid == vm.vmid for a in self.vms.pending):
            return "the provider's changes are still pending when read again"
        return None


def read_plan(config: Config, transport: Transport, provider: VMProvider, renderer: Renderer,
              opts: Options, *, apply_drift: bool = False, credentials: tuple = ()) -> SyncPlan:
    """Every stage's plan, read from the real state; nothing changes."""
    rendered = renderer({})
    vm_plan = plan_vms(config, provider, apply_drift=apply_drift)
    plan = SyncPlan(vms=plan_targets(vm_plan), vm_plan=vm_plan, rendered=rendered)
    if plan.vms:
        names = ", ".join(vm.name for vm in plan.vms)
        plan.notes["swarm"] = f"planned once the VMs exist ({names} must be created or started first)"
        plan.notes["portainer"] = f"deploy {rendered.namespace} ({len(rendered.services)} services) once the swarm exists"
        return plan
    plan.swarm = converge(transport, config, opts, PHASES, dry_run=True)
    facts = plan.swarm.facts
    if opts.prune and facts is not None and facts.control is not None:
        plan.prune = maintenance.read_prune_plan(transport, config, facts)[0]
    if facts is None or facts.control is None:
        plan.notes["portainer"] = f"deploy {rendered.namespace} ({len(rendered.services)} services) once the swarm exists"
        return plan
    # The images' digests and Portainer's services, read at once on the control manager.
    manager, read, plan.rendered, resolution = read_resolve_gate(transport, config, renderer, rendered, True,
                                                                 facts.control, credentials)
    warnings, plan.portainer_blocked = resolution.warnings, list(resolution.blocked)
    plan.portainer_read = (manager, read)
    plan.portainer_move = portainer_data.plan_move(config, read, portainer.server_service(config),
                                                   portainer.namespace(config))
    rendered = plan.rendered
    plan.warnings += warnings
    plan.portainer = deploy(transport, config, rendered, dry_run=True, first_read=plan.portainer_read)
    plan.portainer.plan.warnings[:0] = plan.warnings
    return plan


def apply(config: Config, transport: Transport, provider: VMProvider, renderer: Renderer, port: int,
          opts: Options, plan: SyncPlan, reporter: Reporter, *,
          deploy_timeout_s: float = DEFAULT_TIMEOUT_S, ssh_timeout_s: float = SSH_WAIT_S,
          credentials: tuple = ()) -> SyncResult:
    result = SyncResult(plan, dry_run=False)
    rendered = plan.rendered

    # 1. VMs
    reporter.stage(1, f"VMs ({config.hypervisor.provider} provider)")
    if plan.vms:
        result.vms = bring_up(provider, plan.vm_plan, report=reporter.line)
        for vm, message in result.vms.failed:
            reporter.line(f"failed: {vm}: {message}", "red")
        for vm in result.vms.still_down:
            reporter.line(f"still down after apply: {vm}: {result.vms.down_reason(vm)}", "red")
        for a in result.vms.pending:
            reporter.line(f"still pending after apply: {a.subject}: {a.kind} {a.summary}", "red")
    else:
        result.vms = VMsOutcome(blocked=list(plan.vm_plan.blocked))
        reporter.line("vms: no changes")
    for b in result.vms.blocked:
        reporter.line(f"blocked: {b.subject}: {b.reason}", "red")
    created = bool(plan.vms)

    # 2. SSH
    reporter.stage(2, "SSH to every VM")
    if created:
        failed = {vm.vmid for vm, _ in result.vms.failed} if result.vms else set()
        up = [vm for vm in config.swarm_vms if vm.vmid not in failed]
        result.ssh_failed = wait_for_ssh(transport, up, timeout_s=ssh_timeout_s, report=reporter.line)
        for name, message in result.ssh_failed.items():
            reporter.line(f"failed: {name}: no SSH after {ssh_timeout_s:g} s: {message}", "red")
        if not result.ssh_failed:
            reporter.line(f"ssh: every swarm VM answers ({len(up)})")
    else:
        reporter.line("ssh: no changes (every VM answered while the plan was read)")

    # 3. swarm
    reporter.stage(3, "swarm init, join, labels")
    if not created and plan.swarm is not None and plan.swarm.plan.empty:
        result.swarm = plan.swarm
        reporter.line("swarm init/join/labels: no changes")
        if plan.swarm.blocked:
            reporter.swarm_outcome(plan.swarm)
    else:
        # No VM was created or started: the plan's facts were read moments ago, under
        # the cluster lock, and stand; the converge does not read them twice.
        known = plan.swarm.facts if not created and plan.swarm is not None else None
        result.swarm = converge(transport, config, opts, PHASES, show=reporter.swarm_plan, facts=known)
        reporter.swarm_outcome(result.swarm)
    result.facts = result.swarm.facts
    swarm_changed = bool(result.swarm.applied)
    if opts.prune and result.facts is not None and result.facts.control is not None:
        if plan.prune is not None and plan.prune.empty and not created and not swarm_changed:
            result.prune = Outcome(plan.prune, blocked=list(plan.prune.blocked), facts=result.facts)
            reporter.line("prune: no changes")
        else:  # read again: the swarm stage may have changed the nodes
            result.prune = maintenance.prune(transport, config, show=reporter.prune_plan, report=reporter.line,
                                             facts=result.facts if not swarm_changed else None)
            result.facts = result.prune.facts
        reporter.swarm_outcome(result.prune)

    # 4. Portainer
    reporter.stage(4, f"Portainer ({rendered.namespace})")
    if result.facts is None or result.facts.control is None:
        result.problems.append("no swarm manager answers: Portainer was not deployed")
        reporter.line("portainer: skipped: no swarm manager answers", "red")
        return result
    if plan.portainer_blocked:
        # The image gate, as swarm.deploy's: nothing of Portainer is changed.
        result.problems.append(f"Portainer was not deployed: {len(plan.portainer_blocked)} image(s) refused "
                               "by their registry")
        for line in plan.portainer_blocked:
            reporter.line(f"blocked {rendered.namespace}: {line}", "red")
        return result
    if plan.portainer_move is not None:
        # Before the deploy starts the server on the new first manager: its data first.
        try:
            portainer_data.carry(transport, plan.portainer_move, result.facts.control, report=reporter.line)
        except PhoenixError as exc:
            result.problems.append(f"Portainer was not deployed (its server would start without its data): {exc}")
            reporter.line(f"portainer: not deployed: its data was not carried over: {exc}", "red")
            return result
    unchanged = (plan.portainer is not None and not plan.portainer.changes and not plan.portainer.behind
                 and not created and not swarm_changed)
    if unchanged:
        result.portainer = plan.portainer
        reporter.line(f"{rendered.namespace}: no changes (hash {rendered.hash})")
    else:
        # Resolved at plan time, the plan's document is deployed as shown; otherwise (the
        # swarm is new) the deploy resolves the digests itself.
        resolved = plan.portainer is not None
        guarded = guarded_deploy(
            transport, config, (lambda digests_: rendered) if resolved else renderer,
            guard=Guard(command="sync-all", resolve=not resolved, credentials=credentials), dry_run=False, timeout_s=deploy_timeout_s,
            show=lambda o, r: reporter.deploy(o, r, "plan"), report=reporter.progress, note=reporter.line)
        result.portainer = guarded.outcome
        reporter.deploy(guarded.outcome, guarded.rendered, "result")
        if guarded.entry is not None:
            reporter.line(f"ledger: record #{guarded.entry.seq} {guarded.entry.kind} {guarded.entry.result}")

    # 5. it answers
    reporter.stage(5, "Portainer answers")
    try:
        result.status = portainer.read_status(transport, config, port,
                                              first_read=plan.portainer_read if unchanged else None)
    except PhoenixError as exc:
        result.problems.append(f"Portainer's status could not be read: {exc}")
        reporter.line(f"portainer: status not read: {exc}", "red")
        return result
    reporter.line(f"portainer: {result.status.detail}", None if result.status.answers else "red")
    return result
