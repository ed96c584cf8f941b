"""Recorded Proxmox API answers (tests/data/proxmox) served by path, for the pure
provider tests: a fake `request` that knows only the recorded paths (an unrecorded
read is an error) and refuses anything but GET.  The live reads of a configured VM
(`status/current`, `pending`) a test does not record are those of a settled host,
made from the recorded config and cluster view (`settled`); the lagging host's are
recorded files (test_proxmox_live_host.py)."""

from __future__ import annotations

import copy
import json
import re
from pathlib import Path

from phoenix_tasks.config import load_config
from phoenix_tasks.providers.proxmox import facts as pxfacts

REPO = Path(__file__).resolve().parents[2]
DATA = REPO / "tests" / "data" / "proxmox"
PUBLIC_KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIRecordedTestKeyOnlyNotARealKey0000000000 phoenix@control"


def recorded(name: str):
    return copy.deepcopy(json.loads((DATA / name).read_text()))


def data(name: str):
    return recorded(name)["data"]


def etc_config():
    """The production config (etc/): template 9000, portainer 1001, drphoenix 1002."""
    return load_config(REPO / "etc")


def responses(**edits) -> dict[str, object]:
    """The recorded answer of every read, by path; `edits` maps a short name
    (resources, template, portainer, drphoenix) to a function that edits its data."""
    out = {
        "/cluster/resources": data("cluster_resources_vm.json"),
        "/nodes/phoenix/qemu/9000/config": data("qemu_config_9000_template.json"),
        "/nodes/phoenix/qemu/1001/config": data("qemu_config_1001_portainer.json"),
        "/nodes/phoenix/qemu/1002/config": data("qemu_config_1002_drphoenix.json"),
    }
    names = {"resources": "/cluster/resources", "template": "/nodes/phoenix/qemu/9000/config",
             "portainer": "/nodes/phoenix/qemu/1001/config", "drphoenix": "/nodes/phoenix/qemu/1002/config"}
    for name, edit in edits.items():
        result = edit(out[names[name]])
        if result is not None:
            out[names[name]] = result
    return out


def guest(resources: list, vmid: int) -> dict:
    return next(r for r in resources if r["vmid"] == vmid)


def without(vmid: int):
    return lambda resources: [r for r in resources if r["vmid"] != vmid]


def settled(answers: dict, path: str):
    """A settled host's live answer that `answers` does not hold: `status/current` as
    the cluster view's entry says (pvestatd has caught up), shaped like
    status_current_1001_running.json; `pending` with nothing pending (each config key
    with its value, as qemu-server lists it).  None: not a live read."""
    m = re.fullmatch(r"/nodes/([^/]+)/qemu/(\d+)/(status/current|pending)", path)
    cfg = answers.get(f"/nodes/{m.group(1)}/qemu/{m.group(2)}/config") if m else None
    if cfg is None:
        return None
    if m.group(3) == "pending":
        return [{"key": k, "value": v} for k, v in sorted(cfg.items())]
    entry = next((r for r in answers["/cluster/resources"] if r.get("vmid") == int(m.group(2))), {})
    out = {**data("status_current_1001_running.json"), "vmid": int(m.group(2)),
           "name": cfg.get("name", f"VM {m.group(2)}"), "status": entry.get("status", "stopped")}
    if out["status"] != "running":
        out.update(pid=None, uptime=0, qmpstatus="stopped")
        out = {k: v for k, v in out.items() if v is not None}
    return out


def read(config, answers: dict, log: list | None = None):
    """read_facts over the recorded answers (live reads not given: `settled`); every
    call made is appended to `log`."""
    def request(call):
        assert call.method == "GET", call
        if log is not None:
            log.append(call)
        if call.path not in answers:
            live = settled(answers, call.path)
            if live is None:
                raise AssertionError(f"unrecorded read: {call}")
            return live
        return copy.deepcopy(answers[call.path])
    return pxfacts.read_facts(request, config)
