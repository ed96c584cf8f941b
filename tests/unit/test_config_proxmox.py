"""The `proxmox` settings (TLS, CA file, clone storage, parallel clones, the API
backend), a VM's `proxmox_node`, and the warning when most swarm managers share one
Proxmox node.  (Bad values are cases of tests/corpus: proxmox_api_unknown, ...)"""

from __future__ import annotations

import json

from phoenix_tasks.config import load_config, validate
from proxmox_sim import make_cert
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
    cert, _ = make_cert(tmp_path / "cert")
    (root / "etc" / "pve-root-ca.pem").write_bytes(cert.read_bytes())  # validate checks it holds a certificate
    _edit(root, HV_FILE, lambda d: d["proxmox"].update(ca_file="pve-root-ca.pem", clone_storage="fast-zfs",
                                                       max_parallel_clones=2, api_port=18006))
    _edit(root, VM_FILE, lambda d: d["vms"][2].update(proxmox_node="pve2"))
    config = load_config(root / "etc", root / "stacks")
    px = config.hypervisor.proxmox
    assert (px.verify_tls, px.ca_file, px.clone_storage, px.max_parallel_clones, px.api_port) == (
        True, root / "etc" / "pve-root-ca.pem", "fast-zfs", 2, 18006)
    assert [px.node_for(vm) for vm in config.real_vms] == ["phoenix", "pve2"]


def test_the_api_is_https_by_default_and_the_ssh_fields_come_from_vm_access():
    config = load_config(REPO / "etc")
    px, access = config.hypervisor.proxmox, config.hypervisor.vm_access
    assert (px.api, px.ssh_key_file) == ("https", None)
    assert (px.ssh_host_key_policy, px.ssh_known_hosts_file, px.ssh_connect_timeout_s) == (
        access.host_key_policy, access.known_hosts_file, access.connect_timeout_s)


def test_api_ssh_needs_no_token_variable_and_its_key_is_relative_to_the_config_dir(tmp_path):
    root = base_tree(tmp_path / "tree")

    def ssh(doc):
        doc["proxmox"].update(api="ssh", ssh_key_file="keys/proxmox_ed25519")
        del doc["proxmox"]["api_token_env"]
        doc["vm_access"].update(host_key_policy="strict", connect_timeout_s=2.5)
    _edit(root, HV_FILE, ssh)
    config, problems = validate(root / "etc", root / "stacks")
    assert config is not None and problems == [], [p.render() for p in problems]
    px = config.hypervisor.proxmox
    assert (px.api, px.api_token_env, px.ssh_user, px.ssh_port) == ("ssh", None, "root", 22)
    assert px.ssh_key_file == root / "etc" / "keys" / "proxmox_ed25519"
    assert (px.ssh_host_key_policy, px.ssh_connect_timeout_s) == ("strict", 2.5)
    assert px.ssh_known_hosts_file == config.hypervisor.vm_access.known_hosts_file


def test_https_without_a_token_variable_is_still_valid_the_client_says_what_is_missing(tmp_path):
    # Unchanged behaviour: the schema never required api_token_env; token.api_token
    # raises TokenMissing naming proxmox.api_token_env when the HTTPS client is made.
    root = base_tree(tmp_path / "tree")
    _edit(root, HV_FILE, lambda d: d["proxmox"].pop("api_token_env"))
    px = load_config(root / "etc", root / "stacks").hypervisor.proxmox
    assert (px.api, px.api_token_env) == ("https", None)


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


def test_a_ca_file_that_holds_a_certificate_is_valid_a_missing_one_is_not(tmp_path):
    # The refusals by message are corpus cases (proxmox_ca_file_missing, ..._not_a_certificate,
    # ..._broken_pem); here the same check passes a real certificate.
    root = base_tree(tmp_path / "tree")
    _edit(root, HV_FILE, lambda d: d["proxmox"].update(ca_file="pve-root-ca.pem"))
    config, problems = validate(root / "etc", root / "stacks")
    assert config is None and [p.pointer for p in problems if p.severity != "warning"] == ["/proxmox/ca_file"]
    cert, _ = make_cert(tmp_path / "cert")
    (root / "etc" / "pve-root-ca.pem").write_bytes(cert.read_bytes())
    config, problems = validate(root / "etc", root / "stacks")
    assert config is not None and config.hypervisor.proxmox.ca_file == root / "etc" / "pve-root-ca.pem"
