"""Facts: what Proxmox says about the configured VMs, parsed from API answers.

Two reads: the cluster-wide guest list (`GET /cluster/resources?type=vm`: which vmid
exists, on which node, with which name, running or not, template or not, locked or
not), then each *configured* VM's config (cores, memory, boot disk, cloud-init,
tags).  A vmid the config does not list is never read beyond the list.  Parsers are
pure functions of the API's `data` (recorded in tests/data/proxmox).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping
from urllib.parse import unquote

from ...model import Config
from . import api

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
class ProxmoxFacts:
    guests: Mapping[int, Guest]  # every QEMU VM of the cluster, by vmid
    configs: Mapping[int, QemuConfig]  # the configured VMs that exist, by vmid

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


# -- reading --------------------------------------------------------------------------

Request = Callable[[api.ApiCall], Any]  # sends one GET, returns the answer's `data`


def read_facts(request: Request, config: Config) -> ProxmoxFacts:
    """The guest list, then the config of each configured VM (templates included) that
    exists.  `request` is the transport (proxmoxer in production, recorded data in
    tests); only GETs go through it here."""
    guests = parse_guests(request(api.cluster_vms()))
    configs = {}
    for vm in config.vms:
        g = guests.get(vm.vmid)
        if g is not None:
            configs[vm.vmid] = parse_config(request(api.vm_config(g.node, vm.vmid)))
    return ProxmoxFacts(guests, configs)
