"""Recorded swarm facts (tests/data/swarm, taken from a real 3-VM lab swarm) and a
config that matches them, for plan and task-wiring tests without a lab."""

from __future__ import annotations

import copy
import json
from pathlib import Path

from invoke import MockContext, Result

from phoenix_tasks.config import load_config
from phoenix_tasks.lab.configgen import write_lab_config
from phoenix_tasks.swarm import commands
from phoenix_tasks.swarm.facts import EngineFacts, ClusterFacts, UNREACHABLE, parse_info, parse_nodes
from phoenix_tasks.core.transport import shell_command

DATA = Path(__file__).resolve().parent.parent / "data" / "swarm"
MANAGER_ID = "xo3vdp6jnbv45x70pg0t87f1s"
GPU_ID = "ak6wr4kwjv96h4dr7zlg9c1pp"
CPU_ID = "j70fp7k8bk4shigex89nsr4ji"
CLUSTER_ID = "39m0w5zin78xr7r4mjgjxcapl"


def recorded(name: str):
    return json.loads((DATA / name).read_text())


def lab_config(tmp_path: Path, edit=None):
    """The 3-VM lab config the facts were recorded on (portainer, drphoenix, cpuworker)."""
    out = tmp_path / "etc"
    write_lab_config(out, 3, subnet="198.18.90.0/24", bridge="phxrec0", state_dir=str(tmp_path / "state"))
    if edit:
        path = out / "phoenix_vm_configs.json"
        doc = json.loads(path.read_text())
        edit(doc)
        path.write_text(json.dumps(doc))
    return load_config(out)


def info(name: str, **swarm_changes) -> dict:
    doc = copy.deepcopy(recorded(name))
    doc["Swarm"].update(swarm_changes)
    return doc


def nodes(edit=None) -> list:
    doc = copy.deepcopy(recorded("nodes_converged.json"))
    if edit:
        edit({n["Description"]["Hostname"]: n for n in doc})
    return doc


def facts(config, infos: dict, node_list=None) -> ClusterFacts:
    """ClusterFacts the way read_facts builds them, from per-VM-name info documents
    (or the string "unreachable") and the node list the control manager would print."""
    engines = {}
    for vm in config.swarm_vms:
        doc = infos[vm.name]
        if doc == UNREACHABLE:
            engines[vm.vmid] = EngineFacts(vm, UNREACHABLE, f"{vm}: cannot reach {vm.address}:22 over SSH: timed out")
        else:
            engines[vm.vmid] = parse_info(vm, json.dumps(doc))
    from phoenix_tasks.swarm.facts import control_candidates

    control = next(iter(control_candidates(config, engines)), None)
    if control is None:
        return ClusterFacts(engines)
    listed = parse_nodes(json.dumps(node_list if node_list is not None else nodes()))
    return ClusterFacts(engines, listed, control, engines[control.vmid].cluster_id)


CONVERGED = {"portainer": "info_manager.json", "drphoenix": "info_worker_gpu.json", "cpuworker": "info_worker_cpu.json"}
FRESH = {"portainer": "info_inactive.json", "drphoenix": "info_inactive.json", "cpuworker": "info_inactive.json"}


def infos(base: dict, **override) -> dict:
    """Per VM name: a recorded file name, an info document, or "unreachable"."""
    merged = {**base, **override}
    return {name: recorded(v) if isinstance(v, str) and v.endswith(".json") else v for name, v in merged.items()}


def mock_connections(outputs: dict):
    """A connection factory for Transport: per VM name, {argv tuple: (stdout, exit)}.
    Each connection is an invoke MockContext: an unrecorded command raises."""

    def connect(vm, access):
        runs = {}
        for argv, (stdout, exited) in outputs.get(vm.name, {}).items():
            runs[shell_command(argv)] = Result(stdout=stdout, exited=exited)
        return MockContext(run=runs, repeat=True)

    return connect


def converged_outputs() -> dict:
    return {
        "portainer": {
            tuple(commands.facts()): (json.dumps(recorded("info_manager.json")), 0),
            tuple(commands.inspect_nodes()): (json.dumps(nodes()), 0),
            tuple(commands.services()): (commands.SERVICES_SEPARATOR + "\n", 0),
        },
        "drphoenix": {tuple(commands.facts()): (json.dumps(recorded("info_worker_gpu.json")), 0)},
        "cpuworker": {tuple(commands.facts()): (json.dumps(recorded("info_worker_cpu.json")), 0)},
    }
