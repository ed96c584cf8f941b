"""Facts: what Proxmox says about the configured VMs, parsed from API answers.

The cluster-wide guest list (`GET /cluster/resources?type=vm`) says which vmid exists
and on which node: that part is live (the cluster's VM list).  Its name, status and
template fields are NOT: they come from the status data pvestatd refreshes about
every 10 s (pve-manager PVE/API2/Cluster.pm, PVE::API2Tools::extract_vm_stats), so a
fresh clone is listed with status "unknown" and no name, and a VM just started still
says "stopped" (docs/proxmox.md, "What a live host does differently").  So each
*configured* VM that exists is then read from live endpoints: its config (name,
template, lock, tags, cores, memory, boot disk, cloud-init), its `status/current`
(running or not), and, for a VM, its pending changes (what waits for its next boot).
A vmid the config does not list is never read beyond the list.  Parsers are pure
functions of the API's `data` (recorded in tests/data/proxmox).  A read that fails
is one line naming the VM and the step (`ReadFailed`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping
from urllib.parse import unquote

from ...core.errors import PhoenixError
from ...core.model import VM, Config
from . import api
from .task_wait import ApiError

DISK_KEYS = re.compile(r"(scsi|virtio|sata|ide|efidisk|tpmstate)\d+")
UNIT_GIB = {"K": 1 / (1024 * 1024), "M": 1 / 1024, "G": 1, "T": 1024}


@dataclass(frozen=True)
class Guest:
    """One entry of /cluster/resources (a QEMU VM)."""

    vmid: int
    name: str
    node: str
    status: str  # running / stopped / paused ...
    template: bool
    lock: str | None = None
    tags: frozenset[str] = frozenset()

    @property
    def running(self) -> bool:
        return self.status == "running"

    @property
    def reported(self) -> bool:
        """False for an entry pvestatd has not reported yet (a fresh clone: status
        "unknown", no name): it exists, nothing more is known from the list."""
        return self.status != "unknown" and bool(self.name)


@dataclass(frozen=True)
class Disk:
    key: str  # scsi0, virtio0, ...
    volume: str  # local-lvm:vm-1001-disk-0
    size_gib: float


@dataclass(frozen=True)
class CloudInit:
    ciuser: str | None = None
    sshkeys: tuple[str, ...] = ()  # decoded, one key a line
    ipconfig0: Mapping[str, str] = field(default_factory=dict)  # ip=..., gw=...
    nameserver: str | None = None
    searchdomain: str | None = None


@dataclass(frozen=True)
class QemuConfig:
    """GET /nodes/{node}/qemu/{vmid}/config, the parts Phoenix compares."""

    name: str
    cores: int
    memory_mb: int
    boot_disk: Disk | None
    cloud_init: CloudInit
    tags: frozenset[str] = frozenset()
    template: bool = False
    lock: str | None = None
    hotplug: frozenset[str] = frozenset({"network", "disk", "usb"})  # Proxmox's default


@dataclass(frozen=True)
class PendingChange:
    """One key of GET .../pending that waits for the VM's next boot."""

    key: str
    value: str | None  # what the running VM has
    pending: str | None  # what it gets at its next boot (None: a pending delete)

    def __str__(self) -> str:
        return f"{self.key} {self.value if self.value is not None else '(unset)'} -> " + (
            self.pending if self.pending is not None else "(deleted)")


@dataclass(frozen=True)
class ProxmoxFacts:
    guests: Mapping[int, Guest]  # every QEMU VM of the cluster, by vmid (configured ones: live)
    configs: Mapping[int, QemuConfig]  # the configured VMs that exist, by vmid
    pending: Mapping[int, tuple[PendingChange, ...]] = field(default_factory=dict)  # configured VMs' pending

    def guest(self, vmid: int) -> Guest | None:
        return self.guests.get(vmid)


# -- parsers ----------------------------------------------------------------------------

def parse_tags(text: Any) -> frozenset[str]:
    """Proxmox tags: ';' (also ',' or ' ') separated."""
    return frozenset(t for t in re.split(r"[;, ]+", str(text or "")) if t)


def parse_guests(data: list[Mapping[str, Any]]) -> dict[int, Guest]:
    """`data` of GET /cluster/resources?type=vm; containers (lxc) are left out."""
    out = {}
    for r in data:
        if r.get("type") != "qemu":
            continue
        out[int(r["vmid"])] = Guest(
            vmid=int(r["vmid"]), name=str(r.get("name", "")), node=str(r["node"]),
            status=str(r.get("status", "unknown")), template=bool(int(r.get("template") or 0)),
            lock=r.get("lock") or None, tags=parse_tags(r.get("tags")))
    return out


def parse_size_gib(text: str) -> float:
    m = re.fullmatch(r"(\d+(?:\.\d+)?)([KMGT]?)", text)
    if not m:
        raise ValueError(f"disk size {text!r}")
    return float(m.group(1)) * UNIT_GIB[m.group(2) or "G"] if m.group(2) else float(m.group(1)) / (1024 ** 3)


def parse_memory(value: Any) -> int:
    """int, "8192", or the PVE 8.1 property string "current=8192[,...]"."""
    if isinstance(value, int):
        return value
    for part in str(value).split(","):
        part = part.removeprefix("current=")
        if part.isdigit():
            return int(part)
    raise ValueError(f"memory {value!r}")


def _properties(text: str) -> dict[str, str]:
    """'local-lvm:vm-1-disk-0,size=64G' -> {'': 'local-lvm:vm-1-disk-0', 'size': '64G'}."""
    out = {}
    for part in str(text).split(","):
        k, sep, v = part.partition("=")
        out[k if sep else ""] = v if sep else k
    return out


def boot_disk(cfg: Mapping[str, Any]) -> Disk | None:
    """The first disk of the boot order (or of scsi0, virtio0, sata0, ide0), not a CD-ROM."""
    order = [k for k in _properties(cfg.get("boot", "")).get("order", "").split(";") if k]
    candidates = order + sorted(k for k in cfg if DISK_KEYS.fullmatch(k))
    for key in candidates:
        if key not in cfg or not DISK_KEYS.fullmatch(key) or key.startswith(("efidisk", "tpmstate")):
            continue
        props = _properties(cfg[key])
        if props.get("media") == "cdrom" or "cloudinit" in props.get("", ""):
            continue
        return Disk(key, props.get(""), parse_size_gib(props["size"]) if "size" in props else 0.0)
    return None


def parse_config(data: Mapping[str, Any]) -> QemuConfig:
    """`data` of GET /nodes/{node}/qemu/{vmid}/config."""
    keys = unquote(str(data.get("sshkeys", "")))
    ipc = _properties(data["ipconfig0"]) if data.get("ipconfig0") else {}
    hotplug = data.get("hotplug")
    return QemuConfig(
        name=str(data.get("name", "")),
        cores=int(data.get("cores", 1)),
        memory_mb=parse_memory(data.get("memory", 512)),
        boot_disk=boot_disk(data),
        cloud_init=CloudInit(
            ciuser=data.get("ciuser"),
            sshkeys=tuple(line.strip() for line in keys.splitlines() if line.strip()),
            ipconfig0=ipc,
            nameserver=data.get("nameserver"),
            searchdomain=data.get("searchdomain"),
        ),
        tags=parse_tags(data.get("tags")),
        template=bool(int(data.get("template") or 0)),
        lock=data.get("lock") or None,
        hotplug=frozenset(parse_tags(hotplug)) if hotplug not in (None, "") else QemuConfig.__dataclass_fields__["hotplug"].default,
    )


def parse_status(data: Mapping[str, Any]) -> str:
    """`data` of GET /nodes/{node}/qemu/{vmid}/status/current: "running" or "stopped"."""
    return str((data or {}).get("status") or "unknown")


# Keys of the pending list that are not a setting of the VM.
NOT_PENDING = frozenset({"digest"})


def parse_pending(data: list[Mapping[str, Any]] | None) -> tuple[PendingChange, ...]:
    """`data` of GET /nodes/{node}/qemu/{vmid}/pending: each key with `value` (current)
    and, when a change waits for the next boot, `pending` or `delete` (1 or 2)."""
    out = []
    for item in data or []:
        key = str(item.get("key", ""))
        if not key or key in NOT_PENDING:
            continue
        value = None if item.get("value") is None else str(item["value"])
        if item.get("delete"):
            out.append(PendingChange(key, value, None))
        elif "pending" in item and str(item["pending"]) != value:
            out.append(PendingChange(key, value, str(item["pending"])))
    return tuple(out)


# -- reading --------------------------------------------------------------------------

Request = Callable[[api.ApiCall], Any]  # sends one GET, returns the answer's `data`


class ReadFailed(PhoenixError):
    """A read of the facts failed: one line naming the VM (if any) and the step."""

    def __init__(self, vm: VM | None, step: str, call: api.ApiCall, why: str):
        super().__init__(f"{vm}: {step} ({call.method} {call.path}): {why}" if vm is not None
                         else f"Proxmox: {step} ({call.method} {call.path}): {why}")
        self.vm, self.step, self.why = vm, step, why


def _get(request: Request, call: api.ApiCall, step: str, vm: VM | None = None) -> Any:
    try:
        return request(call)
    except PhoenixError as exc:
        # An API host that cannot be reached before any VM is read says so alone.
        if isinstance(exc, ReadFailed) or (vm is None and not isinstance(exc, ApiError)):
            raise
        raise ReadFailed(vm, step, call, str(exc)) from None


def read_facts(request: Request, config: Config) -> ProxmoxFacts:
    """The guest list (which vmid exists, on which node), then for each configured VM
    (templates included) that exists, live: its config, its `status/current`, and (not
    a template) its pending changes.  The configured VMs' `Guest` entries are made from
    those live answers, never from the list's possibly stale name/status/template.
    `request` is the transport; only GETs go through it here."""
    guests = parse_guests(_get(request, api.cluster_vms(), "read the cluster's guest list"))
    configs, pending = {}, {}
    for vm in config.vms:
        g = guests.get(vm.vmid)
        if g is None:
            continue
        cfg = parse_config(_get(request, api.vm_config(g.node, vm.vmid), "read its config", vm))
        status = parse_status(_get(request, api.vm_status(g.node, vm.vmid), "read its status", vm))
        configs[vm.vmid] = cfg
        guests[vm.vmid] = Guest(vm.vmid, cfg.name, g.node, status, cfg.template, cfg.lock or g.lock, cfg.tags)
        if not cfg.template and not vm.is_template:
            pending[vm.vmid] = parse_pending(_get(request, api.vm_pending(g.node, vm.vmid),
                                                  "read its pending changes", vm))
    return ProxmoxFacts(guests, configs, pending)
