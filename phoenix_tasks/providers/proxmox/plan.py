"""The plan: the Proxmox API calls that make each configured VM match its config.

A pure function of (config, facts, options), as `phoenix_tasks.core.plan` actions, each
holding its `ApiCall` in `Action.call`.  Per VM, in this order: clone (full, to
`clone_storage`) -> cores/memory -> resize (grow only) -> cloud-init -> regenerate the
cloud-init drive -> tags -> start.  An existing VM that differs from the config is
*drift*: reported as a warning, and planned only with `apply_drift`, each action
saying whether it applies live or at the next boot.  Never planned: a vmid the
config does not list, a DELETE, a shrink, starting a template.
"""

from __future__ import annotations

from dataclasses import dataclass

from ...core.model import VM, Config, Host
from ...core.plan import Action, Blocked, Plan
from . import api
from .classify import (
    DRIFTED, LIVE, LOCKED, MISSING, NEVER, NEXT_BOOT, NOT_REPORTED, NOT_TEMPLATE, STOPPED, TEMPLATE, WRONG_NAME,
    Classified, classify, drift_of, wanted_cloud_init,
)
from .facts import CloudInit, ProxmoxFacts, QemuConfig

PHASES = ("clone", "hardware", "disk", "cloud-init", "tags", "start")


@dataclass(frozen=True)
class Options:
    public_key: str  # the public half of vm_access's key, one line (read by the caller)
    apply_drift: bool = False
    vmids: frozenset[int] | None = None  # None: every configured VM

    def wants(self, vm: VM) -> bool:
        return self.vmids is None or vm.vmid in self.vmids


def _node_host(config: Config, node: str) -> Host:
    return Host(f"proxmox node {node}", config.hypervisor.proxmox.host)


def _action(config: Config, node: str, vm: VM, phase: str, kind: str, summary: str, call: api.ApiCall) -> Action:
    return Action(kind=kind, where=_node_host(config, node), summary=summary, target=vm, phase=phase, call=call)


def _ci_params(want: CloudInit) -> dict[str, str]:
    return {
        "ciuser": want.ciuser,
        "sshkeys": api.encode_sshkeys("\n".join(want.sshkeys) + "\n"),
        "ipconfig0": ",".join(f"{k}={v}" for k, v in want.ipconfig0.items()),
        "nameserver": want.nameserver,
        "searchdomain": want.searchdomain,
    }


def _changes(config: Config, vm: VM, node: str, have: QemuConfig, drift, public_key: str, *,
             when_note: bool) -> list[Action]:
    """Actions for the applicable drift of a VM whose current config is `have` (for a
    fresh clone: its template's).  `when_note`: say in each summary when it applies."""
    by_field = {d.field: d for d in drift if d.when != NEVER}
    acts = []

    def when(*fields: str) -> str:
        if not when_note:
            return ""
        times = {by_field[f].when for f in fields if f in by_field}
        return " (" + ("live" if times == {LIVE} else NEXT_BOOT) + ")"

    hw = {}
    if "cores" in by_field:
        hw["cores"] = str(vm.cores)
    if "memory" in by_field:
        hw["memory"] = str(vm.memory_mb)
    if hw:
        what = ", ".join(f"{by_field[f].field} {by_field[f].actual} -> {by_field[f].wanted}" for f in ("cores", "memory") if f in by_field)
        acts.append(_action(config, node, vm, "hardware", "hardware", f"set {what}{when('cores', 'memory')}",
                            api.set_config(node, vm.vmid, hw)))
    if "disk" in by_field:
        d = by_field["disk"]
        acts.append(_action(config, node, vm, "disk", "resize", f"grow {have.boot_disk.key} {d.actual} -> {d.wanted}{when('disk')}",
                            api.resize(node, vm.vmid, have.boot_disk.key, vm.disk_size_gb)))
    ci_fields = [f for f in ("ciuser", "sshkeys", "ipconfig0", "nameserver", "searchdomain") if f in by_field]
    if ci_fields:
        want = wanted_cloud_init(config, vm, public_key, have.cloud_init)
        acts.append(_action(config, node, vm, "cloud-init", "cloud-init", f"set cloud-init {', '.join(ci_fields)}{when(*ci_fields)}",
                            api.set_config(node, vm.vmid, _ci_params(want))))
        acts.append(_action(config, node, vm, "cloud-init", "regenerate", "regenerate the cloud-init drive",
                            api.regenerate_cloudinit(node, vm.vmid)))
    if "tags" in by_field:
        acts.append(_action(config, node, vm, "tags", "tags", f"tags {by_field['tags'].wanted}{when('tags')}",
                            api.set_config(node, vm.vmid, {"tags": by_field["tags"].wanted})))
    return acts


def _start(config: Config, vm: VM, node: str) -> Action:
    return _action(config, node, vm, "start", "start", "start", api.start(node, vm.vmid))


def _plan_missing(config: Config, vm: VM, classes: dict[int, Classified], opts: Options, plan: Plan) -> None:
    px = config.hypervisor.proxmox
    src = vm.clone_from_vmid
    if src is None:
        plan.blocked.append(Blocked(vm, "does not exist, and has no clone_from_vmid: Phoenix makes VMs only by "
                                    "cloning a template"))
        return
    t = classes.get(src)
    if t is None:
        plan.blocked.append(Blocked(vm, f"does not exist; its template {src} is not in the config, and Phoenix "
                                    "touches no vmid the config does not list"))
        return
    if t.kind != TEMPLATE:
        why = {MISSING: "does not exist on Proxmox (make the template by hand)"}.get(t.kind, t.detail or t.kind)
        plan.blocked.append(Blocked(vm, f"does not exist, and cannot be cloned: template {t.vm} {why}"))
        return
    node = px.node_for(vm)
    have = t.config
    acts = [_action(config, t.guest.node, vm, "clone", "clone",
                    f"full clone of {t.vm}" + (f" to node {node}" if node != t.guest.node else "")
                    + (f" on storage {px.clone_storage}" if px.clone_storage else ""),
                    api.clone(t.guest.node, src, vm.vmid, vm.name, target_node=node, storage=px.clone_storage))]
    # After the clone the VM's config is its template's: plan what differs from that.
    drift = drift_of(config, vm, have, False, opts.public_key)
    for d in drift:
        if d.field == "disk" and d.when == NEVER:
            plan.warnings.append(f"{vm}: the template's disk is {d.actual}, larger than disk_size_gb {d.wanted}: "
                                 "the clone keeps the template's size (a disk is never shrunk)")
    acts += _changes(config, vm, node, have, drift, opts.public_key, when_note=False)
    acts.append(_start(config, vm, node))
    plan.actions += acts


def plan_vms(config: Config, facts: ProxmoxFacts, opts: Options) -> Plan:
    """The plan for every configured VM `opts` wants (templates: checked, never changed)."""
    classes = classify(config, facts, opts.public_key)
    plan = Plan()
    for vm in config.vms:
        if not opts.wants(vm):
            continue
        c = classes[vm.vmid]
        if c.pending:
            plan.warnings.append(f"{vm}: pending until its next reboot (Proxmox holds it; not drift): "
                                 + "; ".join(str(p) for p in c.pending))
        if vm.is_template:
            if c.kind in (WRONG_NAME, NOT_TEMPLATE):
                plan.blocked.append(Blocked(vm, c.detail))
            continue  # a template is never cloned into, configured, or started
        if c.kind == MISSING:
            _plan_missing(config, vm, classes, opts, plan)
        elif c.kind in (WRONG_NAME, TEMPLATE, LOCKED, NOT_REPORTED):
            plan.blocked.append(Blocked(vm, c.detail))
        elif c.kind == STOPPED:
            plan.actions.append(_start(config, vm, c.guest.node))
        elif c.kind == DRIFTED:
            node = c.guest.node  # where it is, not where the config would put it
            for d in c.drift:
                if d.when == NEVER:
                    plan.warnings.append(f"{vm}: {d}")
                elif not opts.apply_drift:
                    plan.warnings.append(f"{vm}: drift: {d}; not applied (run with --apply-drift)")
            if opts.apply_drift:
                plan.actions += _changes(config, vm, node, c.config, c.drift, opts.public_key, when_note=True)
            if not c.running:
                plan.actions.append(_start(config, vm, node))
    return plan


def calls_outside_config(plan: Plan, config: Config) -> list[api.ApiCall]:
    """The plan's calls that name a vmid the config does not list (must be none; the
    apply refuses a plan with any)."""
    listed = {vm.vmid for vm in config.vms}
    return [a.call for a in plan.actions if a.call is not None and a.call.vmid not in listed]
