"""Recorded Proxmox API answers (tests/data/proxmox) served by path, for the pure
provider tests: a fake `request` that knows only the recorded paths (an unrecorded
read is an error) and refuses anything but GET."""

from __future__ import annotations

import copy
import json
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


def read(config, answers: dict, log: list | None = None):
    """read_facts over the recorded answers; every call made is appended to `log`."""
    def request(call):
        assert call.method == "GET", call
        if log is not None:
            log.append(call)
        if call.path not in answers:
            raise AssertionError(f"unrecorded read: {call}")
        return copy.deepcopy(answers[call.path])
    return pxfacts.read_facts(request, config)
