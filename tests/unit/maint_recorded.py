"""Recorded facts of a 4-VM lab swarm (tests/data/swarm/maint: portainer manager;
drphoenix, cpuworker, cpuworker2 workers; services web, gpu, agent) and configs that
match them, for the maintenance, prune and quorum tests."""

from __future__ import annotations

import copy
import json
from pathlib import Path

from phoenix_tasks.config import load_config
from phoenix_tasks.lab.configgen import write_lab_config
from phoenix_tasks.stack.facts import parse_progress

import swarm_recorded

DATA = Path(__file__).resolve().parent.parent / "data" / "swarm" / "maint"
PORTAINER = "t41jfmim1395hv9uf2yf7uoqz"
DRPHOENIX = "5yw4rhr2plz11c7ulvh8vbwyr"
CPU = "i6m36f0f6b1fgg8hmvfjshupm"  # cpuworker before it left (down in the later files)
CPU_NEW = "psmehb9p284paywbgxnk8en2z"  # cpuworker after it rejoined
CPU2 = "175axxtoqiggoeek7e8h9hhcw"

INFOS = {"portainer": "info_1001.json", "drphoenix": "info_1002.json", "cpuworker": "info_1003.json",
         "cpuworker2": "info_1004.json"}


def recorded(name: str):
    return json.loads((DATA / name).read_text())


def config(tmp_path: Path, nodes: int = 4, edit=None):
    """The lab config the facts were recorded on (nodes=3: without cpuworker2)."""
    out = tmp_path / f"etc{nodes}"
    write_lab_config(out, nodes, subnet="198.18.69.0/24", bridge="phxrec1", state_dir=str(tmp_path / "state"))
    if edit:
        path = out / "phoenix_vm_configs.json"
        doc = json.loads(path.read_text())
        edit({vm["name"]: vm for vm in doc["vms"]}, doc)
        path.write_text(json.dumps(doc))
    return load_config(out)


def infos(**override) -> dict:
    """Per VM name: a recorded info document, or "unreachable"."""
    merged = {**INFOS, **override}
    return {name: recorded(v) if v.endswith(".json") else v for name, v in merged.items()}


def nodes(name: str = "nodes_before.json", edit=None) -> list:
    doc = copy.deepcopy(recorded(name))
    if edit:
        edit({(n["Description"]["Hostname"], n["ID"][:6]): n for n in doc})
    return doc


def facts(cfg, info: dict | None = None, node_list: str | list = "nodes_before.json"):
    node_doc = nodes(node_list) if isinstance(node_list, str) else node_list
    return swarm_recorded.facts(cfg, info if info is not None else infos(), node_doc)


def progress(name: str):
    return parse_progress((DATA / name).read_text())
