"""Classification of every swarm VM, and the plan: the actions that make the swarm
match the config.  Pure functions of (config, facts): tested from recorded facts.

An action with `argv=None` depends on something only the apply can know (a join
token, the node ID a VM gets when it joins); the apply re-plans each phase from
fresh facts, so what it runs is always computed from the real state.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable, Mapping, Sequence

from ..core.model import VM, Config
from ..core.plan import Action, Blocked, Plan
from . import commands
from .facts import ACTIVE, INACTIVE, LOCKED, NO_ENGINE, PENDING, UNREACHABLE, ClusterFacts, NodeFacts
from .init_settings import init_argv, init_summary
from .security import KeyFile, plan_unlock, swarm_warnings, with_unlock_hints
from . import quorum, unclaimed

# Classification of one swarm VM.
MEMBER = "member"  # in our swarm, with the configured role
WRONG_ROLE = "wrong-role"  # in our swarm, other role than configured
FOREIGN = "foreign"  # in a swarm that is not ours
NO_SWARM = "inactive"  # not in any swarm
# In a swarm whose managers are configured VMs, but no manager's node list could be read
# to confirm it (the manager unreachable, or its list not readable yet): ours, never
# foreign, never advised to leave; nothing is planned for it until a manager answers.
UNVERIFIED = "member?"
# plus UNREACHABLE, NO_ENGINE, PENDING, LOCKED and "error" from the facts

PHASES = ("unlock", "init", "join", "labels")  # unlock: a locked manager, from the key file (security.py)


def _action(phase: str, kind: str, run_on: VM, target: VM, summary: str, argv=None) -> Action:
    """A swarm action: runs on `run_on` (the VM itself, or the control manager), changes
    `target`.  argv None: resolved by the apply (a join token, a new node ID)."""
    return Action(kind=kind, where=run_on, summary=summary, argv=argv, target=target, phase=phase)


@dataclass(frozen=True)
class Classified:
    vm: VM
    kind: str
    node: NodeFacts | None = None
    detail: str = ""

    @property
    def actual_role(self) -> str | None:
        return self.node.role if self.node else None


def classify(config: Config, facts: ClusterFacts) -> dict[int, Classified]:
    out = {}
    for vm in config.swarm_vms:
        e = facts.engine(vm)
        if e.state in (UNREACHABLE, NO_ENGINE):
            out[vm.vmid] = Classified(vm, e.state, detail=e.detail)
        elif e.state == INACTIVE:
            out[vm.vmid] = Classified(vm, NO_SWARM)
        elif e.state in (PENDING, LOCKED):
            out[vm.vmid] = Classified(vm, e.state, detail=e.detail)
        elif e.state != ACTIVE:
            out[vm.vmid] = Classified(vm, "error", detail=e.detail or f"swarm state {e.state!r}")
        else:
            node = facts.nodes.get(e.node_id) if facts.nodes is not None and e.node_id else None
            # A node our own manager lists is ours, whatever its engine says for a
            # moment (a demoted leader shows ControlAvailable with no cluster ID for
            # about half a second): never call it foreign, never advise a rejoin.
            ours = node is not None
            if not ours:
                unverified = _unverified(config, facts, vm, e)
                if unverified:
                    out[vm.vmid] = Classified(vm, UNVERIFIED, detail=unverified)
                    continue
                where = f"cluster {e.cluster_id[:12]}" if e.cluster_id else "managers " + ", ".join(a for _, a in e.remote_managers) or "unknown managers"
                out[vm.vmid] = Classified(vm, FOREIGN, detail=where)
            elif node.role != vm.swarm_role:
                out[vm.vmid] = Classified(vm, WRONG_ROLE, node)
            else:
                out[vm.vmid] = Classified(vm, MEMBER, node)
    return out


def _unverified(config: Config, facts: ClusterFacts, vm: VM, e) -> str:
    """Why an active engine that no node list names is still ours ("" when it is not):
    - a configured manager whose engine is a manager, while no manager's node list was read
      (another run has just initialised it, or its list cannot be read right now);
    - a node whose swarm's managers (RemoteManagers) are configured managers' swarm
      addresses, while those managers cannot be read or have that node ID."""
    if facts.nodes is not None:
        return ""  # a manager's list was read and does not name it (removed by hand?): not ours
    if vm in config.managers and e.is_manager:
        return "a manager of a swarm, but its node list could not be read"
    by_addr = {}
    for m in config.managers:
        for addr in {m.address, config.hypervisor.swarm.advertise_addr(m)}:
            by_addr[f"{addr}:{commands.SWARM_PORT}"] = m
    remote = [(node_id, by_addr.get(addr)) for node_id, addr in e.remote_managers]
    if not remote or any(m is None for _, m in remote):
        return ""
    for node_id, m in remote:
        me = facts.engine(m)
        if me.known and me.node_id != node_id:
            return ""  # that manager answers as another node (or none): not its swarm now
    names = ", ".join(dict.fromkeys(str(m) for _, m in remote))
    return f"in the swarm of {names}, which cannot be read to confirm it"


def no_manager_reason(config: Config, classes: Mapping[int, Classified]) -> str | None:
    """"no manager of the swarm can be reached (VM: why, ...)" when the swarm exists (a
    member unverified, or a configured manager unknown) but no manager's node list could
    be read; None when there is simply no swarm yet."""
    unknown = [classes[vm.vmid] for vm in config.managers
               if classes[vm.vmid].kind in (UNREACHABLE, NO_ENGINE, LOCKED, UNVERIFIED)]
    if not unknown:
        return None
    why = "; ".join(f"{c.vm}: {c.kind}" + (f": {c.detail}" if c.detail else "") for c in unknown)
    return f"no manager of the swarm can be reached ({why})"


@dataclass(frozen=True)
class Options:
    vmids: frozenset[int] | None = None  # None: every swarm VM
    force_rejoin: bool = False
    prune: bool = False  # nodes no VM claims are pruned (maintenance.py) rather than warned about
    label_policy: str = "merge"
    unlock_key: KeyFile | None = None  # swarm.autolock_key_file as read (security.py)

    def wants(self, vm: VM) -> bool:
        return self.vmids is None or vm.vmid in self.vmids


def _blocked_reason(c: Classified, force_rejoin: bool) -> str | None:
    if c.kind == UNREACHABLE:
        return f"unreachable: {c.detail}"
    if c.kind == NO_ENGINE:
        return f"no docker engine answers: {c.detail}"
    if c.kind == LOCKED:
        return f"its swarm is locked (autolock): {c.detail or 'unlock it with `docker swarm unlock` on the VM, then run again'}"
    if c.kind == UNVERIFIED:
        return f"in our swarm, not verified: {c.detail}; run again once a manager answers"
    if c.kind in (FOREIGN, PENDING, "error") and not force_rejoin:
        what = {FOREIGN: f"is in another swarm ({c.detail})", PENDING: "is pending (a join that never finished)",
                "error": f"is in swarm state error ({c.detail})"}[c.kind]
        return (f"{what}; Phoenix will not take it over. Make it leave (`docker swarm leave --force` "
                f"on the VM) or run again with --force-rejoin")
    return None


# -- phase: init ------------------------------------------------------------------

def plan_init(config: Config, facts: ClusterFacts, classes: Mapping[int, Classified], opts: Options) -> tuple[Plan, VM | None]:
    """Init only when no configured manager is in a swarm. Returns the plan and the
    VM that is (or will be) the control manager."""
    plan = Plan()
    if facts.control is not None:
        return plan, facts.control
    managers = config.managers
    unknown = [classes[vm.vmid] for vm in managers if classes[vm.vmid].kind in (UNREACHABLE, NO_ENGINE, LOCKED)]
    if unknown:
        for c in unknown:
            plan.blocked.append(Blocked(c.vm, _blocked_reason(c, opts.force_rejoin) or c.kind))
        members = [c.vm.name for c in classes.values() if c.kind == UNVERIFIED]
        plan.blocked.append(Blocked(managers[0], (
            f"{no_manager_reason(config, classes)}: {', '.join(members)} in its swarm; nothing is initialised"
            if members else "the swarm is not initialised, and it cannot be while a configured "
                            "manager's state is unknown (it may already be in a swarm)")))
        return plan, None
    first = managers[0]
    c = classes[first.vmid]
    addr = config.hypervisor.swarm.advertise_addr(first)
    if c.kind != NO_SWARM:
        reason = _blocked_reason(c, opts.force_rejoin)
        if reason:
            plan.blocked.append(Blocked(first, reason))
            return plan, None
        plan.actions.append(_action("init", "leave", first, first, "leave the swarm it is in (--force-rejoin)",
                                   tuple(commands.swarm_leave(force=True))))
    plan.actions.append(_action("init", "init", first, first, f"initialise the swarm, advertising {addr}"
                               + init_summary(config.hypervisor.swarm), init_argv(config.hypervisor.swarm, addr)))
    return plan, first


# -- phase: join (and role changes) -------------------------------------------------

def join_address_before_init(config: Config, control: VM) -> str:
    """How the plan names the address joins will use while the swarm does not exist yet:
    the join itself uses the manager's real swarm address, read after the init."""
    if config.hypervisor.swarm.advertise == "vm_ip":
        return f"{control.address}:{commands.SWARM_PORT}"
    iface = config.hypervisor.swarm.advertise_addr(control)
    return f"{control.name}'s {iface} address:{commands.SWARM_PORT} (read once the swarm is initialised)"


def plan_join(config: Config, facts: ClusterFacts, classes: Mapping[int, Classified], opts: Options,
              control: VM | None) -> tuple[Plan, set[int]]:
    """Join what is out, promote/demote what has the wrong role. Returns the plan and
    the vmids that will have joined (their node IDs are known only after)."""
    plan = Plan()
    joining: set[int] = set()
    if control is None:
        unknown = [vm for vm in config.managers if classes[vm.vmid].kind in (UNREACHABLE, NO_ENGINE, LOCKED, UNVERIFIED)]
        reason = no_manager_reason(config, classes) or "no swarm to join yet: run `inv swarm.init` first"
        for vm in config.swarm_vms:
            # An unverified member needs no join: nothing is planned for it (its labels,
            # which need the manager, are blocked by the labels phase).
            if (opts.wants(vm) and vm not in unknown and vm not in config.managers[:1]
                    and classes[vm.vmid].kind != UNVERIFIED):
                plan.blocked.append(Blocked(vm, reason))
        return plan, joining
    manager_addr = facts.manager_addr or join_address_before_init(config, control)
    managers_now = sum(1 for n in (facts.nodes or {}).values() if n.role == "manager")
    promotes, demotes = [], []
    for vm in config.swarm_vms:
        c = classes[vm.vmid]
        if not opts.wants(vm) or c.kind == MEMBER or (vm == control and c.kind != WRONG_ROLE):
            continue
        if c.kind == WRONG_ROLE:
            (promotes if vm.swarm_role == "manager" else demotes).append((vm, c.node))
            continue
        reason = _blocked_reason(c, opts.force_rejoin)
        if reason:
            plan.blocked.append(Blocked(vm, reason))
            continue
        if c.kind != NO_SWARM:  # foreign / pending / error, with --force-rejoin
            plan.actions.append(_action("join", "leave", vm, vm, f"leave the swarm it is in (--force-rejoin; was {c.kind})",
                                       tuple(commands.swarm_leave(force=True))))
        plan.actions.append(_action("join", "join", vm, vm, f"join as {vm.swarm_role} via {manager_addr}"))
        joining.add(vm.vmid)
    for vm, node in promotes:
        plan.actions.append(_action("join", "promote", control, vm, "promote to manager",
                                   tuple(commands.node_promote(node.id))))
    demoting: list[NodeFacts] = []  # quorum.py: never the last manager, never below a majority
    for vm, node in demotes:
        refusal = quorum.refusal((facts.nodes or {}).values(), demoting + [node], adding=len(promotes))
        if refusal:
            plan.blocked.append(Blocked(vm, f"configured as worker, but not demoted: {refusal}"))
            continue
        demoting.append(node)
        plan.actions.append(_action("join", "demote", control, vm, "demote to worker",
                                   tuple(commands.node_demote(node.id))))
    even = quorum.even_warning(managers_now + len(promotes) - len(demoting), " after this plan")
    if demoting and even:
        plan.warnings.append(even)
    return plan, joining


# -- phase: labels -------------------------------------------------------------------

def label_diff(current: Mapping[str, str], desired: Mapping[str, str], policy: str) -> tuple[dict[str, str], list[str]]:
    add = {k: v for k, v in desired.items() if current.get(k) != v}
    remove = sorted(k for k in current if k not in desired) if policy == "replace" else []
    return add, remove


def _describe_labels(add: Mapping[str, str], remove: Sequence[str], current: Mapping[str, str]) -> str:
    parts = [f"{k}={v}" + (f" (was {current[k]})" if k in current else "") for k, v in sorted(add.items())]
    parts += [f"-{k}" for k in remove]
    return "labels: " + ", ".join(parts)


def plan_labels(config: Config, facts: ClusterFacts, classes: Mapping[int, Classified], opts: Options,
                control: VM | None, joining: Iterable[int] = ()) -> Plan:
    plan = Plan()
    joining = set(joining)
    for vm in config.swarm_vms:
        if not opts.wants(vm):
            continue
        c = classes[vm.vmid]
        if vm.vmid in joining or (c.kind == NO_SWARM and control is not None and vm == control):
            if vm.node_labels:
                add, _ = label_diff({}, vm.node_labels, opts.label_policy)
                plan.actions.append(_action("labels", "labels", control, vm,
                                           _describe_labels(add, [], {}) + " (after it joins)"))
            continue
        if c.kind not in (MEMBER, WRONG_ROLE) or control is None:
            continue  # blocked (reported by the join phase) or not in the swarm yet
        add, remove = label_diff(c.node.labels, vm.node_labels, opts.label_policy)
        if add or remove:
            plan.actions.append(_action("labels", "labels", control, vm, _describe_labels(add, remove, c.node.labels),
                                       tuple(commands.node_update_labels(c.node.id, add, remove))))
    return plan


def plan_availability(config: Config, facts: ClusterFacts, classes: Mapping[int, Classified], opts: Options,
                      control: VM | None, joining: Iterable[int] = ()) -> Plan:
    """Node availability where a VM pins it (`availability`: active, pause, drain); a VM
    that pins none keeps whatever its node has (a drain by hand stays).  Part of the
    labels phase: the node list already read says it, so a converged run reads nothing more."""
    plan = Plan()
    joining = set(joining)
    for vm in config.swarm_vms:
        want = vm.availability
        if not opts.wants(vm) or want is None:
            continue
        c = classes[vm.vmid]
        if vm.vmid in joining or (c.kind == NO_SWARM and control is not None and vm == control):
            if want != "active":
                plan.actions.append(_action("labels", "availability", control, vm, f"availability {want} (after it joins)"))
            continue
        if c.kind not in (MEMBER, WRONG_ROLE) or control is None or c.node.availability == want:
            continue
        note = {"drain": ": its tasks move to other nodes (`swarm drain` waits for them)" +
                         ("; it stays a manager" if c.node.role == "manager" else ""),
                "pause": ": it takes no new tasks; the running ones stay",
                "active": ": it takes new tasks (running ones do not move back by themselves)"}[want]
        plan.actions.append(_action("labels", "availability", control, vm,
                                    f"availability {want} (was {c.node.availability}){note}",
                                    tuple(commands.node_availability(c.node.id, want))))
    return plan


def plan_phases(config: Config, facts: ClusterFacts, opts: Options, phases: Sequence[str] = PHASES) -> Plan:
    """The whole plan for the given phases, from one set of facts (what --dry-run shows)."""
    classes = with_unlock_hints(classify(config, facts), opts.unlock_key)
    plan = Plan(warnings=swarm_warnings(config, facts, opts.unlock_key))
    if "unlock" in phases:  # first: the rest is planned once a locked manager can be read
        plan.extend(plan_unlock(classes, opts.unlock_key, opts.wants))
        if plan.actions:
            return plan
    init_plan, control = plan_init(config, facts, classes, opts)
    if "init" in phases:
        plan.extend(init_plan)
    elif facts.control is None:
        control = None
    joining: set[int] = set()
    if "join" in phases:
        join_plan, joining = plan_join(config, facts, classes, opts, control)
        plan.extend(join_plan)
    if "labels" in phases:
        no_manager = no_manager_reason(config, classes) if control is None else None
        if no_manager:  # the swarm exists, its manager does not answer: never advise an init
            seen = {b.subject.vmid for b in plan.blocked}
            plan.blocked += [Blocked(vm, f"labels/availability not checked: {no_manager}")
                             for vm in config.swarm_vms
                             if opts.wants(vm) and (vm.node_labels or vm.availability) and vm.vmid not in seen
                             and classes[vm.vmid].kind not in (UNREACHABLE, NO_ENGINE, LOCKED)]
        elif control is None and "init" not in phases and "join" not in phases:
            plan.blocked += [Blocked(vm, "no swarm yet: run `inv swarm.init` and `inv swarm.join` first")
                             for vm in config.swarm_vms if opts.wants(vm) and vm.node_labels]
        plan.extend(plan_labels(config, facts, classes, opts, control, joining))
        plan.extend(plan_availability(config, facts, classes, opts, control, joining))
    # Blocked VMs for phases that do not look at every VM (labels only): say why too.
    seen = {b.subject.vmid for b in plan.blocked}
    for c in classes.values():
        if c.vm.vmid not in seen and opts.wants(c.vm) and c.kind in (UNREACHABLE, NO_ENGINE, LOCKED):
            plan.blocked.append(Blocked(c.vm, _blocked_reason(c, opts.force_rejoin)))
    if not opts.prune:  # nodes no VM claims: named, never touched without --prune
        plan.warnings += unclaimed.warnings(unclaimed.find(config, facts))
    return plan
