"""The typed model that validation builds: defaults merged, labels as a mapping, lab key
paths, stacks' merged constraints and per-environment variables."""

from __future__ import annotations

import ipaddress
from pathlib import Path

import pytest

from phoenix_tasks.config import load_config
from test_config_corpus import REPO, apply_patch, base_tree


@pytest.fixture(scope="module")
def prod():
    return load_config(REPO / "etc", REPO / "stacks")


@pytest.fixture(scope="module")
def lab():
    return load_config(REPO / "etc" / "lab", REPO / "stacks")


def _tree(tmp_path: Path, *patches: dict, base: str = "etc") -> Path:
    root = base_tree(tmp_path / "tree", base)
    for p in patches:
        apply_patch(root, root, p)
    return root


def test_vms_and_roles(prod):
    assert [(vm.vmid, vm.name, vm.swarm_role, vm.is_template) for vm in prod.vms] == [
        (9000, "ubuntu-2404-cloud-template", None, True),
        (1001, "portainer", "manager", False),
        (1002, "drphoenix", "worker", False),
    ]
    assert [vm.name for vm in prod.managers] == ["portainer"]
    assert [vm.name for vm in prod.swarm_vms] == ["portainer", "drphoenix"]
    assert [vm.vmid for vm in prod.real_vms] == [1001, 1002]
    assert prod.vm_by_id(1002).address == "10.0.0.102"
    assert str(prod.vm_by_id(1002)) == "drphoenix (vmid 1002)"


def test_vm_defaults_fill_what_a_vm_leaves_out(lab):
    vm = lab.vm_by_id(1001)
    assert (vm.cores, vm.memory_mb, vm.disk_size_gb, vm.clone_from_vmid, vm.username) == (1, 1024, 8, 9000, "root")
    assert vm.network.ip == ipaddress.IPv4Interface("198.18.42.11/24")
    assert vm.network.gw == ipaddress.IPv4Address("198.18.42.1")
    assert vm.network.nameserver == ipaddress.IPv4Address("198.18.42.1")


def test_a_template_is_not_cloned_from_the_default_template(lab):
    template = lab.vm_by_id(9000)
    assert template.is_template and template.clone_from_vmid is None
    assert not template.in_swarm


def test_own_values_win_over_defaults(prod):
    vm = prod.vm_by_id(1002)
    assert (vm.cores, vm.memory_mb, vm.disk_size_gb) == (8, 32768, 256)


def test_network_config_is_merged_key_by_key(tmp_path):
    root = _tree(tmp_path, {"file": "etc/phoenix_vm_configs.json", "op": "remove", "pointer": "/vms/2/network_config/nameserver"},
                 {"file": "etc/phoenix_vm_configs.json", "op": "set", "pointer": "/vm_defaults/network_config/nameserver", "value": "10.0.0.53"})
    vm = load_config(root / "etc", root / "stacks").vm_by_id(1002)
    assert vm.network.nameserver == ipaddress.IPv4Address("10.0.0.53")
    assert vm.network.gw == ipaddress.IPv4Address("10.0.0.1")


def test_node_labels_are_an_ordered_mapping(prod, lab):
    assert dict(prod.vm_by_id(1002).node_labels) == {"gpu": "true", "zone": "compute"}
    assert list(prod.vm_by_id(1002).node_labels) == ["gpu", "zone"]
    assert dict(lab.vm_by_id(1003).node_labels) == {"gpu": "false", "zone": "compute"}
    assert dict(prod.vm_by_id(9000).node_labels) == {}


def test_label_value_may_hold_equals_sign_and_be_empty(tmp_path):
    root = _tree(tmp_path, {"file": "etc/phoenix_vm_configs.json", "op": "set", "pointer": "/vms/2/node_labels",
                            "value": ["gpu=true", "com.thinkheads.empty="]})
    vm = load_config(root / "etc", root / "stacks").vm_by_id(1002)
    assert dict(vm.node_labels) == {"gpu": "true", "com.thinkheads.empty": ""}


def test_lab_key_paths_default_to_the_lab_state_dir(lab):
    access = lab.hypervisor.vm_access
    state = Path("/var/lib/phoenix-lab")
    assert lab.hypervisor.lab.state_dir == state
    assert access.private_key_file == state / "ssh" / "id_ed25519"
    assert access.known_hosts_file == state / "ssh" / "known_hosts"
    assert (access.user, access.port, access.host_key_policy, access.connect_timeout_s) == ("root", 22, "strict", 5.0)


def test_lab_settings(lab):
    settings = lab.hypervisor.lab
    assert settings.subnet == ipaddress.IPv4Network("198.18.42.0/24")
    assert settings.gateway == ipaddress.IPv4Interface("198.18.42.1/24")
    assert settings.bridge == "phxlab0"
    assert lab.hypervisor.proxmox is None


def test_prod_paths_expand_home_and_keep_absolute(prod):
    access = prod.hypervisor.vm_access
    assert access.private_key_file == Path.home() / ".ssh" / "phoenix_vm_ed25519"
    assert access.known_hosts_file == Path.home() / ".ssh" / "phoenix_known_hosts"
    assert prod.hypervisor.portainer.admin_password_file == Path("/etc/phoenix/secrets/portainer_admin_password")
    assert prod.hypervisor.proxmox.api_token_env == "PHOENIX_PROXMOX_API_TOKEN"
    assert prod.hypervisor.lab is None


def test_relative_key_path_is_relative_to_the_config_dir(tmp_path):
    root = _tree(tmp_path, {"file": "etc/phoenix_hypervisor_config.json", "op": "set",
                            "pointer": "/vm_access/private_key_file", "value": "keys/id_ed25519"})
    config = load_config(root / "etc", root / "stacks")
    assert config.hypervisor.vm_access.private_key_file == root / "etc" / "keys" / "id_ed25519"


def test_omitted_settings_take_schema_defaults(tmp_path):
    root = _tree(tmp_path,
                 {"file": "etc/phoenix_hypervisor_config.json", "op": "remove", "pointer": "/swarm/advertise"},
                 {"file": "etc/phoenix_hypervisor_config.json", "op": "remove", "pointer": "/swarm/label_policy"},
                 {"file": "etc/phoenix_hypervisor_config.json", "op": "remove", "pointer": "/vm_access/port"},
                 {"file": "etc/phoenix_hypervisor_config.json", "op": "remove", "pointer": "/vm_access/host_key_policy"},
                 {"file": "etc/phoenix_hypervisor_config.json", "op": "remove", "pointer": "/vm_access/connect_timeout_s"})
    hv = load_config(root / "etc", root / "stacks").hypervisor
    assert (hv.swarm.advertise, hv.swarm.label_policy) == ("vm_ip", "merge")
    assert (hv.vm_access.port, hv.vm_access.host_key_policy, hv.vm_access.connect_timeout_s) == (22, "accept-new", 10.0)
    assert hv.vm_access.command_timeout_s == 60.0


def test_timeouts_keep_their_fractions(tmp_path):
    root = _tree(tmp_path,
                 {"file": "etc/phoenix_hypervisor_config.json", "op": "set", "pointer": "/vm_access/connect_timeout_s",
                  "value": 0.5},
                 {"file": "etc/phoenix_hypervisor_config.json", "op": "set", "pointer": "/vm_access/command_timeout_s",
                  "value": 2.5})
    access = load_config(root / "etc", root / "stacks").hypervisor.vm_access
    assert (access.connect_timeout_s, access.command_timeout_s) == (0.5, 2.5)


@pytest.mark.parametrize("value", [0, -1, 3601, "60", True])
def test_a_command_timeout_out_of_range_is_refused(tmp_path, value):
    from phoenix_tasks.config import validate
    root = _tree(tmp_path, {"file": "etc/phoenix_hypervisor_config.json", "op": "set",
                            "pointer": "/vm_access/command_timeout_s", "value": value})
    config, problems = validate(root / "etc", root / "stacks")
    assert config is None
    assert any("/vm_access/command_timeout_s" in p.render() for p in problems)


def test_portainer_settings(prod):
    p = prod.hypervisor.portainer
    assert (p.stack, p.env) == ("portainer_service", "prod")
    assert dict(p.images) == {"portainer": "portainer/portainer-ce:2.21.4", "agent": "portainer/agent:2.21.4"}


def test_stack_constraints_merge_manifest_and_compose(prod):
    app = prod.stacks["thinkheads_ai_app"]
    assert app.services["inference"].placement_constraints == ("node.labels.gpu == true",)
    assert app.services["api"].placement_constraints == ()
    portainer = prod.stacks["portainer_service"]
    assert portainer.services["portainer"].placement_constraints == ("node.role == manager",)  # in both files: once
    assert portainer.services["agent"].placement_constraints == ("node.platform.os == linux",)  # from compose only


def test_stack_wide_constraints_come_first_for_every_service(tmp_path):
    root = _tree(tmp_path, {"file": "stacks/thinkheads_ai_app/phoenix.json", "op": "set",
                            "pointer": "/placement_constraints", "value": ["node.labels.zone == compute"]})
    app = load_config(root / "etc", root / "stacks").stacks["thinkheads_ai_app"]
    assert app.placement_constraints == ("node.labels.zone == compute",)
    assert app.services["inference"].placement_constraints == ("node.labels.zone == compute", "node.labels.gpu == true")
    assert app.services["api"].placement_constraints == ("node.labels.zone == compute",)


def test_environment_variables_merge_over_default_and_unknown_envs_take_default(prod):
    app = prod.stacks["thinkheads_ai_app"]
    default = {"LOG_LEVEL": "debug", "API_PORT": "18000", "MODEL_NAME": "phi-3-mini"}
    assert dict(app.variables_for("dev1")) == default
    assert dict(app.variables_for("dev2")) == default
    assert dict(app.variables_for("prod")) == {"LOG_LEVEL": "info", "API_PORT": "8000", "MODEL_NAME": "llama-3.1-8b", "API_REPLICAS": "2"}


def test_a_listed_environment_inherits_what_it_does_not_set(tmp_path):
    root = _tree(tmp_path, {"file": "stacks/qdrant_service/phoenix.json", "op": "set",
                            "pointer": "/environments/dev1", "value": {"variables": {"QDRANT_HTTP_PORT": "26333"}}})
    qdrant = load_config(root / "etc", root / "stacks").stacks["qdrant_service"]
    assert dict(qdrant.variables_for("dev1")) == {"QDRANT_LOG_LEVEL": "INFO", "QDRANT_HTTP_PORT": "26333"}


def test_stack_files(prod):
    q = prod.stacks["qdrant_service"]
    assert q.compose_file == REPO / "stacks" / "qdrant_service" / "docker-compose.yml"
    assert q.manifest_file == REPO / "stacks" / "qdrant_service" / "phoenix.json"
    assert q.description == "Qdrant vector database for RAG."
    assert sorted(prod.stacks) == ["portainer_service", "qdrant_service", "thinkheads_ai_app"]


def test_model_is_frozen(prod):
    with pytest.raises(AttributeError):
        prod.vms[0].name = "other"  # type: ignore[misc]


def test_stack_keeps_the_parsed_compose_document(prod):
    app = prod.stacks["thinkheads_ai_app"]
    assert sorted(app.compose["services"]) == ["api", "inference"]
    assert app.compose["services"]["api"]["ports"][0]["published"] == "${API_PORT}"  # as parsed, not rendered
