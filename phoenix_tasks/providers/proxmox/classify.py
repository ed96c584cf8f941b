"""Each configured VM against its Proxmox facts: one kind, and its drift.

Kinds: missing, stopped, running, drifted (exists, differs from the config: running
or stopped, see `Classified.running`), wrong-name (the vmid is another VM: refused),
template (a Proxmox template: never started; what a configured template should be),
not-template (configured as a template, an ordinary VM on Proxmox), locked (a task
holds it, e.g. its clone), not-reported (listed by the cluster view with status
"unknown" and no name, and not read live: never "missing", never "another VM").  The
facts of a configured VM come from live reads (facts.py), so its name and power state
are never seconds old.  What Proxmox holds for the next boot (GET .../pending) is kept
apart from drift (`Classified.pending`).  Pure: tested from recorded API answers.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from ...core.model import VM, Config
from .facts import CloudInit, Guest, PendingChange, ProxmoxFacts, QemuConfig

MISSING = "missing"
STOPPED = "stopped"
RUNNING = "running"
DRIFTED = "drifted"
WRONG_NAME = "wrong-name"
TEMPLATE = "template"
NOT_TEMPLATE = "not-template"
LOCKED = "locked"
NOT_REPORTED = "not-reported"  # listed by the cluster view, its name/status not known yet (never read live)

# When a change reaches the running guest.
LIVE = "live"
NEXT_BOOT = "at next boot"
NEVER = "never"  # reported only: Phoenix does not make this change


@dataclass(frozen=True)
class Drift:
    field: str  # cores, memory, disk, ciuser, sshkeys, ipconfig0, nameserver, searchdomain, tags, node
    actual: str
    wanted: str
    when: str  # LIVE, NEXT_BOOT or NEVER
    note: str = ""

    def __str__(self) -> str:
        when = "not changed by Phoenix" if self.when == NEVER else f"applies {self.when}"
        return f"{self.field} {self.actual} -> {self.wanted} ({when}{': ' + self.note if self.note else ''})"


@dataclass(frozen=True)
class Classified:
    vm: VM
    kind: str
    guest: Guest | None = None
    config: QemuConfig | None = None
    drift: tuple[Drift, ...] = ()
    detail: str = ""
    # What Proxmox holds for the VM's next boot (GET .../pending): not drift (the config
    # Phoenix compares already has it), shown apart; a reboot of the VM applies it.
    pending: tuple[PendingChange, ...] = ()

    @property
    def running(self) -> bool:
        return self.guest is not None and self.guest.running

    @property
    def applicable_drift(self) -> tuple[Drift, ...]:
        return tuple(d for d in self.drift if d.when != NEVER)


def wanted_tags(vm: VM) -> frozenset[str]:
    """The tags Phoenix puts on its VMs: `phoenix`, and the swarm role.  Other tags on a
    VM are left as they are (merge)."""
    return frozenset({"phoenix"} | ({vm.swarm_role} if vm.swarm_role else set()))


def wanted_cloud_init(config: Config, vm: VM, public_key: str, have: CloudInit) -> CloudInit:
    """The cloud-init settings the VM should have; the VM's other keys and ipconfig0
    parts (e.g. ip6) are kept."""
    keys = have.sshkeys if public_key.strip() in have.sshkeys else have.sshkeys + (public_key.strip(),)
    return CloudInit(
        ciuser=vm.username,
        sshkeys=keys,
        ipconfig0={**have.ipconfig0, "ip": str(vm.network.ip), "gw": str(vm.network.gw)},
        nameserver=str(vm.network.nameserver),
        searchdomain=config.hypervisor.domain,
    )


def _fmt_ipconfig(ipc) -> str:
    return ",".join(f"{k}={v}" for k, v in ipc.items()) or "(none)"


def drift_of(config: Config, vm: VM, have: QemuConfig, running: bool, public_key: str,
             node: str | None = None) -> tuple[Drift, ...]:
    """Every difference between the VM's config entry and what Proxmox has.  Cores and
    memory reach a running guest at its next boot unless CPU/memory hotplug is on; a
    grown disk and tags are live; cloud-init is read by the guest at boot."""
    out = []
    boot = NEXT_BOOT  # a stopped VM: its next boot is its start
    if have.cores != vm.cores:
        out.append(Drift("cores", str(have.cores), str(vm.cores), LIVE if running and "cpu" in have.hotplug else boot))
    if have.memory_mb != vm.memory_mb:
        out.append(Drift("memory", f"{have.memory_mb} MiB", f"{vm.memory_mb} MiB",
                         LIVE if running and "memory" in have.hotplug else boot))
    disk = have.boot_disk
    if disk is None:
        out.append(Drift("disk", "(no boot disk found)", f"{vm.disk_size_gb}G", NEVER, "resize it by hand"))
    elif disk.size_gib < vm.disk_size_gb:
        out.append(Drift("disk", f"{disk.size_gib:g}G", f"{vm.disk_size_gb}G", LIVE,
                         f"{disk.key} grows; the guest's partition grows at its next boot (cloud-init growpart)"))
    elif disk.size_gib > vm.disk_size_gb:
        out.append(Drift("disk", f"{disk.size_gib:g}G", f"{vm.disk_size_gb}G", NEVER,
                         "a disk is never shrunk; raise disk_size_gb to match"))
    want = wanted_cloud_init(config, vm, public_key, have.cloud_init)
    ci = have.cloud_init
    for name, actual, wanted in (
        ("ciuser", ci.ciuser or "(none)", want.ciuser),
        ("sshkeys", f"{len(ci.sshkeys)} key(s)" if ci.sshkeys == want.sshkeys else f"{len(ci.sshkeys)} key(s) without Phoenix's",
         f"{len(want.sshkeys)} key(s)"),
        ("ipconfig0", _fmt_ipconfig(ci.ipconfig0), _fmt_ipconfig(want.ipconfig0)),
        ("nameserver", ci.nameserver or "(none)", want.nameserver),
        ("searchdomain", ci.searchdomain or "(none)", want.searchdomain),
    ):
        if (name == "sshkeys" and ci.sshkeys != want.sshkeys) or (name != "sshkeys" and actual != wanted):
            out.append(Drift(name, actual, wanted, NEXT_BOOT, "cloud-init drive regenerated; the guest reads it at boot"))
    missing_tags = wanted_tags(vm) - have.tags
    if missing_tags:
        out.append(Drift("tags", ";".join(sorted(have.tags)) or "(none)", ";".join(sorted(have.tags | wanted_tags(vm))), LIVE))
    if node is not None and node != config.hypervisor.proxmox.node_for(vm):
        out.append(Drift("node", node, config.hypervisor.proxmox.node_for(vm), NEVER,
                         "Phoenix does not migrate VMs; migrate it by hand or set proxmox_node"))
    return tuple(out)


def classify_vm(config: Config, vm: VM, facts: ProxmoxFacts, public_key: str) -> Classified:
    c = _classify_vm(config, vm, facts, public_key)
    pending = facts.pending.get(vm.vmid, ())
    if pending and c.kind not in (MISSING, WRONG_NAME):
        c = replace(c, pending=pending)
    return c


def _classify_vm(config: Config, vm: VM, facts: ProxmoxFacts, public_key: str) -> Classified:
    g = facts.guest(vm.vmid)
    if g is None:
        return Classified(vm, MISSING)
    cfg = facts.configs.get(vm.vmid)
    if cfg is None and not g.reported:
        return Classified(vm, NOT_REPORTED, g, detail=f"vmid {vm.vmid} is listed on node {g.node}, but not reported "
                          "yet (status unknown, no name): read again in a few seconds")
    if g.name != vm.name:
        return Classified(vm, WRONG_NAME, g, cfg, detail=f"vmid {vm.vmid} on node {g.node} is named {g.name!r}, "
                          f"not {vm.name!r}: it is not this VM; Phoenix will not touch it (free the vmid or "
                          f"change the config's vmid)")
    lock = g.lock or (cfg.lock if cfg else None)
    if lock:
        return Classified(vm, LOCKED, g, cfg, detail=f"locked ({lock}) by a running task on node {g.node}")
    if vm.is_template:
        if g.template:
            return Classified(vm, TEMPLATE, g, cfg)
        return Classified(vm, NOT_TEMPLATE, g, cfg, detail="configured as a template (is_template), but on Proxmox "
                          "it is an ordinary VM: Phoenix clones only from templates (convert it with `qm template`)")
    if g.template:
        return Classified(vm, TEMPLATE, g, cfg, detail="is a template on Proxmox, not a VM: Phoenix never starts a "
                          "template (give the VM another vmid, or set is_template)")
    if cfg is None:
        raise KeyError(f"no recorded config for {vm}")  # read_facts reads every existing configured VM
    drift = drift_of(config, vm, cfg, g.running, public_key, g.node)
    if drift:
        return Classified(vm, DRIFTED, g, cfg, drift)
    return Classified(vm, RUNNING if g.running else STOPPED, g, cfg)


def classify(config: Config, facts: ProxmoxFacts, public_key: str) -> dict[int, Classified]:
    """Every configured VM, templates included, by vmid."""
    return {vm.vmid: classify_vm(config, vm, facts, public_key) for vm in config.vms}
