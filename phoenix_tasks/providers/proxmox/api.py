"""Proxmox VE API calls as data: each builder returns an `ApiCall`, nothing is sent.

A call is (method, path, params) the way the API viewer documents it
(https://pve.proxmox.com/pve-docs/api-viewer/).  Tests compare exact calls.  There is
no DELETE: Phoenix never deletes a VM, so the type refuses the method.  Path parts
(node names, vmids) are checked here, so no value from a config or a fact can change
which resource a call names (the `dev1; rm -rf /` rule, for URLs).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Mapping
from urllib.parse import quote

METHODS = ("GET", "POST", "PUT")
NODE = re.compile(r"[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?")
UPID = re.compile(r"UPID:[A-Za-z0-9-]+:[0-9A-F]{8}:[0-9A-F]{8,}:[0-9A-F]{8}:[a-z0-9]+:[^:/\s]*:[^:/\s]+:")
QEMU_PATH = re.compile(r"/nodes/[^/]+/qemu/(\d+)(/|$)")


@dataclass(frozen=True)
class ApiCall:
    method: str
    path: str
    params: tuple[tuple[str, str], ...] = ()
    returns_task: bool = False  # the answer is a task's UPID: poll it (task_wait)

    def __post_init__(self) -> None:
        if self.method not in METHODS:
            raise ValueError(f"{self.method} is not a method Phoenix sends (never DELETE: it never deletes a VM)")

    @property
    def vmid(self) -> int | None:
        """The VM the call names (for a clone: the template it copies)."""
        m = QEMU_PATH.match(self.path)
        return int(m.group(1)) if m else None

    @property
    def param_map(self) -> Mapping[str, str]:
        return dict(self.params)

    @property
    def mutating(self) -> bool:
        return self.method != "GET"

    def __str__(self) -> str:
        args = " ".join(f"{k}={v}" for k, v in self.params)
        return f"{self.method} {self.path}" + (f" {args}" if args else "")


def _node(node: str) -> str:
    if not isinstance(node, str) or not NODE.fullmatch(node):
        raise ValueError(f"{node!r} is not a Proxmox node name")
    return node


def _vmid(vmid: int) -> int:
    if isinstance(vmid, bool) or not isinstance(vmid, int) or not 100 <= vmid <= 999_999_999:
        raise ValueError(f"{vmid!r} is not a Proxmox vmid")
    return vmid


def _qemu(node: str, vmid: int) -> str:
    return f"/nodes/{_node(node)}/qemu/{_vmid(vmid)}"


# -- reads ----------------------------------------------------------------------------

def cluster_vms() -> ApiCall:
    """Every guest of the cluster, each with its node, name, status, template flag, lock, tags."""
    return ApiCall("GET", "/cluster/resources", (("type", "vm"),))


def vm_config(node: str, vmid: int) -> ApiCall:
    """The VM's config with its pending changes applied (qemu-server's default): name,
    template, lock and tags as they are now, never seconds old."""
    return ApiCall("GET", f"{_qemu(node, vmid)}/config")


def vm_status(node: str, vmid: int) -> ApiCall:
    """The VM's power state now (qemu-server `vmstatus`: a running QEMU process is
    "running"), unlike /cluster/resources' copy, which pvestatd refreshes every ~10 s."""
    return ApiCall("GET", f"{_qemu(node, vmid)}/status/current")


def vm_pending(node: str, vmid: int) -> ApiCall:
    """Each config key with its current value and, if one waits for the next boot, its
    pending value (or a pending delete)."""
    return ApiCall("GET", f"{_qemu(node, vmid)}/pending")


def task_status(node: str, upid: str) -> ApiCall:
    if not UPID.fullmatch(upid):
        raise ValueError(f"{upid!r} is not a Proxmox task id (UPID)")
    # The raw UPID (no '/' can be in it: checked above); the HTTP client URL-quotes the path.
    return ApiCall("GET", f"/nodes/{_node(node)}/tasks/{upid}/status")


def active_tasks(node: str, vmid: int) -> ApiCall:
    """The node's active tasks whose id is `vmid` (e.g. the clone that holds its lock;
    a clone's id is its SOURCE vmid), oldest first; a running one has status "RUNNING",
    one that ended moments ago and is not archived yet has its exit status."""
    return ApiCall("GET", f"/nodes/{_node(node)}/tasks", (("vmid", str(_vmid(vmid))), ("source", "active")))


def upid_node(upid: str) -> str:
    """The node a task runs on (the UPID's second field): where its status is read."""
    if not UPID.fullmatch(upid):
        raise ValueError(f"{upid!r} is not a Proxmox task id (UPID)")
    return _node(upid.split(":")[1])


# -- changes --------------------------------------------------------------------------

def clone(template_node: str, template_vmid: int, newid: int, name: str, *,
          target_node: str | None = None, storage: str | None = None) -> ApiCall:
    """A full clone of a template (never a linked one: the VM must outlive its template)."""
    params = [("newid", str(_vmid(newid))), ("name", name), ("full", "1")]
    if target_node and target_node != template_node:
        params.append(("target", _node(target_node)))
    if storage:
        params.append(("storage", storage))
    return ApiCall("POST", f"{_qemu(template_node, template_vmid)}/clone", tuple(params), returns_task=True)


def set_config(node: str, vmid: int, params: Mapping[str, str]) -> ApiCall:
    """POST (the asynchronous variant): the answer is a task, whose exit status says
    whether the change was made."""
    return ApiCall("POST", f"{_qemu(node, vmid)}/config", tuple(params.items()), returns_task=True)


def resize(node: str, vmid: int, disk: str, size_gb: int) -> ApiCall:
    """An absolute size (idempotent); Proxmox itself refuses to shrink.  A task on PVE 8."""
    return ApiCall("PUT", f"{_qemu(node, vmid)}/resize", (("disk", disk), ("size", f"{size_gb}G")), returns_task=True)


def regenerate_cloudinit(node: str, vmid: int) -> ApiCall:
    """Rewrite the cloud-init drive from the VM's current cloud-init settings."""
    return ApiCall("PUT", f"{_qemu(node, vmid)}/cloudinit")


def start(node: str, vmid: int) -> ApiCall:
    return ApiCall("POST", f"{_qemu(node, vmid)}/status/start", returns_task=True)


def encode_sshkeys(keys: str) -> str:
    """The API wants `sshkeys` URL-encoded (spaces as %20, newlines as %0A), and answers so."""
    return quote(keys, safe="")
