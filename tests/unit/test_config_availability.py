"""`availability` in the VM config: the typed model, and the cross-file checks (a pin
on a VM outside the swarm; a pinned drain or pause that leaves a stack's service no
VM to run on)."""

from __future__ import annotations

import json

from phoenix_tasks.config import validate
from test_config_corpus import REPO, base_tree

VM_FILE = "etc/phoenix_vm_configs.json"


def lab_tree(tmp_path, **pins):
    root = base_tree(tmp_path / "tree", "etc/lab")
    path = root / VM_FILE
    doc = json.loads(path.read_text())
    for vm in doc["vms"]:
        if vm["name"] in pins:
            vm["availability"] = pins[vm["name"]]
    path.write_text(json.dumps(doc))
    return root


def test_the_pin_reaches_the_model_and_absent_means_not_managed(tmp_path):
    root = lab_tree(tmp_path, cpuworker="pause")
    config, problems = validate(root / "etc", root / "stacks")
    assert problems == []
    assert {vm.name: vm.availability for vm in config.swarm_vms} == {
        "portainer": None, "drphoenix": None, "cpuworker": "pause"}


def test_draining_the_only_gpu_vm_is_a_warning_naming_the_service(tmp_path):
    root = lab_tree(tmp_path, drphoenix="drain")
    config, problems = validate(root / "etc", root / "stacks")
    assert config is not None  # a warning, not an error
    [p] = problems
    assert (p.severity, p.pointer) == ("warning", "/vms/2/availability")
    assert p.message == ("stack 'thinkheads_ai_app', service 'inference': only VMs whose availability is pinned to "
                         "drain or pause satisfy its placement constraints (drphoenix (drain)): its tasks would have "
                         "no node to run on")


def test_draining_a_worker_whose_services_fit_elsewhere_is_clean(tmp_path):
    root = lab_tree(tmp_path, cpuworker="drain")
    assert validate(root / "etc", root / "stacks")[1] == []


def test_the_shipped_configs_pin_nothing():
    for base in ("etc", "etc/lab"):
        config, _ = validate(REPO / base, REPO / "stacks")
        assert all(vm.availability is None for vm in config.vms)
