"""The `proxmox` settings (TLS, CA file, clone storage, parallel clones), a VM's
`proxmox_node`, and the warning when most swarm managers share one Proxmox node."""

from __future__ import annotations

import json

from phoenix_tasks.config import load_config, validate
from test_config_corpus import REPO, base_tree

VM_FILE = "etc/phoenix_vm_configs.json"
HV_FILE = "etc/phoenix_hypervisor_config.json"


def _edit(root, file, edit):
    path = root / file
    doc = json.loads(path.read_text())
    edit(doc)
    path.write_text(json.dumps(doc))


def _three_managers(doc, nodes=(None, None, None)):
    third = json.loads(json.dumps(doc["vms"][2]))
    third.update(vmid=1003, name="manager3", network_config={**third["network_config"], "ip": "10.0.0.103/24"},
                 docker_stacks=[], node_labels=[])
    doc["vms"].append(third)
    for vm in doc["vms"][1:]:
        vm["swarm_role"] = "manager"
        vm["docker_stacks"] = [s for s in vm.get("docker_stacks", []) if s != "thinkheads_ai_app"]
    for vm, node in zip(doc["vms"][1:], nodes):
        if node:
            vm["proxmox_node"] = node


def test_defaults_when_the_settings_are_absent():
    px = load_config(REPO / "etc").hypervisor.proxmox
    assert (px.verify_tls, px.ca_file, px.clone_storage, px.max_parallel_clones, px.api_port) == (
        True, None, None, 1, 8006)
    config = load_config(REPO / "etc")
    assert all(vm.proxmox_node is None for vm in config.vms)
    assert {px.node_for(vm) for vm in config.vms} == {"phoenix"}


def test_settings_are_built_ca_file_relative_to_the_config_dir(tmp_path):
    root = base_tree(tmp_path / "tree")
    _edit(root, HV_FILE, lambda d: d["proxmox"].update(ca_file="pve-root-ca.pem", clone_storage="fast-zfs",
                                                       max_parallel_clones=2, api_port=18006))
    _edit(root, VM_FILE, lambda d: d["vms"][2].update(proxmox_node="pve2"))
    config = load_config(root / "etc", root / "stacks")
    px = config.hypervisor.proxmox
    assert (px.verify_tls, px.ca_file, px.clone_storage, px.max_parallel_clones, px.api_port) == (
        True, root / "etc" / "pve-root-ca.pem", "fast-zfs", 2, 18006)
    assert [px.node_for(vm) for vm in config.real_vms] == ["phoenix", "pve2"]


def _warnings(root):
    config, problems = validate(root / "etc", root / "stacks")
    assert config is not None, [p.render() for p in problems]
    return [p.message for p in problems if p.severity == "warning"]


def test_a_majority_of_managers_on_one_node_is_a_warning(tmp_path):
    root = base_tree(tmp_path / "tree")
    _edit(root, VM_FILE, lambda d: _three_managers(d, (None, None, "pve2")))
    [warning] = _warnings(root)
    assert warning == ("2 of 3 swarm managers (portainer, drphoenix) are on Proxmox node 'phoenix': losing that "
                       "host loses the swarm's quorum (spread them with proxmox_node)")


def test_managers_spread_over_three_nodes_give_no_warning(tmp_path):
    root = base_tree(tmp_path / "tree")
    _edit(root, VM_FILE, lambda d: _three_managers(d, (None, "pve2", "pve3")))
    assert _warnings(root) == []


def test_the_lab_provider_is_not_warned_about_proxmox_nodes(tmp_path):
    root = base_tree(tmp_path / "tree", "etc/lab")
    config, problems = validate(root / "etc", root / "stacks")
    assert not [p for p in problems if "Proxmox node" in p.message]
