"""Refusals and generated configs (pure: facts are passed in)."""

from __future__ import annotations

import ipaddress
import json
from pathlib import Path

import pytest

from phoenix_tasks.config import validate
from phoenix_tasks.lab import checks
from phoenix_tasks.lab.configgen import LabConfigRefused, lab_config, write_lab_config

SUBNET = ipaddress.IPv4Network("198.18.42.0/24")

# as `ip -j -4 route` / `ip -j -4 addr` print them on this kind of machine
ROUTES = [{"dst": "default", "gateway": "192.0.2.1", "dev": "eth0"},
          {"dst": "192.0.2.0/24", "dev": "eth0", "prefsrc": "192.0.2.2"}]
ADDRS = [{"ifname": "lo", "addr_info": [{"local": "127.0.0.1", "prefixlen": 8}]},
         {"ifname": "eth0", "addr_info": [{"local": "192.0.2.2", "prefixlen": 24}]}]


def test_not_root_is_refused():
    with pytest.raises(checks.LabRefused, match="needs root"):
        checks.require_root(1000)
    checks.require_root(0)


def test_missing_programs_map_to_the_debian_packages_to_install(tmp_path):
    present = {"ip", "nsenter", "unshare", "setsid", "hostname", "ssh-keygen", "sshd",
               "openssl", "ldd"}
    missing = checks.missing_packages(which=lambda p: p if p in present else None,
                                      busybox=tmp_path / "none")
    assert missing == ["busybox-static", "docker-registry", "docker.io"]
    with pytest.raises(checks.LabRefused,
                       match=r"apt-get install busybox-static docker-registry docker\.io"):
        checks.require_packages(missing)


def test_openssl_is_needed_at_the_path_the_stand_in_images_copy_it_from(tmp_path):
    everything = checks.missing_packages(which=lambda p: f"/usr/bin/{p}")
    assert "openssl" not in everything or not checks.OPENSSL.is_file()
    assert checks.missing_packages(which=lambda p: f"/usr/bin/{p}",
                                   openssl=tmp_path / "none") == sorted(
        {"openssl"} | set(everything))
    assert "libc-bin" in checks.missing_packages(which=lambda p: None if p == "ldd" else p)


def test_dynamic_busybox_is_not_enough(tmp_path):
    assert checks.is_static_elf(Path("/bin/busybox")) or not Path("/bin/busybox").exists()
    assert not checks.is_static_elf(Path("/bin/ls"))  # has a program interpreter
    assert not checks.is_static_elf(tmp_path / "missing")


def test_free_subnet_has_no_conflicts():
    assert checks.route_conflicts(SUBNET, "phxlab0", ROUTES, ADDRS) == []


def test_overlapping_route_and_address_are_named_but_the_labs_own_bridge_is_not():
    routes = ROUTES + [{"dst": "198.18.0.0/15", "dev": "tun0"},
                       {"dst": "198.18.42.0/24", "dev": "phxlab0"}]
    addrs = ADDRS + [{"ifname": "phxlab0", "addr_info": [{"local": "198.18.42.1", "prefixlen": 24}]},
                     {"ifname": "wg0", "addr_info": [{"local": "198.18.42.7", "prefixlen": 32}]}]
    conflicts = checks.route_conflicts(SUBNET, "phxlab0", routes, addrs)
    assert conflicts == ["route 198.18.0.0/15 dev tun0", "address 198.18.42.7/32 on wg0"]
    with pytest.raises(checks.LabRefused, match="overlaps.*tun0"):
        checks.require_free_subnet(SUBNET, conflicts)


@pytest.mark.parametrize("nodes", [1, 2, 3, 8])
def test_generated_config_is_valid_and_shaped_as_asked(tmp_path, nodes):
    write_lab_config(tmp_path, nodes, subnet="198.18.77.0/24", bridge="phxtest0",
                     state_dir="/tmp/x/state")
    config, problems = validate(tmp_path)
    assert config is not None, [p.render() for p in problems]
    vms = config.real_vms
    assert len(vms) == nodes
    assert vms[0].swarm_role == "manager" and all(v.swarm_role == "worker" for v in vms[1:])
    assert (vms[1] if nodes > 1 else vms[0]).node_labels["gpu"] == "true"
    assert all(v.node_labels["gpu"] == "false" for v in vms[2:])
    assert [v.address for v in vms] == [f"198.18.77.{11 + i}" for i in range(nodes)]
    lab = config.hypervisor.lab
    assert (lab.bridge, str(lab.subnet), str(lab.state_dir)) == \
        ("phxtest0", "198.18.77.0/24", "/tmp/x/state")
    # the loader points the transport at the files the lab writes
    assert config.hypervisor.vm_access.private_key_file == Path("/tmp/x/state/ssh/id_ed25519")
    assert checks.config_problems(config) == []


def test_etc_lab_is_a_runnable_lab_config():
    config, problems = validate(Path(__file__).resolve().parents[2] / "etc" / "lab")
    assert config is not None, [p.render() for p in problems]
    assert checks.config_problems(config) == []
    assert [(v.vmid, v.name) for v in config.real_vms] == \
        [(1001, "portainer"), (1002, "drphoenix"), (1003, "cpuworker")]


def test_vm_ip_outside_the_lab_subnet_is_a_config_problem(tmp_path):
    write_lab_config(tmp_path, 2, subnet="198.18.77.0/24")
    path = tmp_path / "phoenix_vm_configs.json"
    doc = json.loads(path.read_text())
    doc["vms"][2]["network_config"]["ip"] = "198.18.78.12/24"
    path.write_text(json.dumps(doc))
    config, problems = validate(tmp_path)
    assert config is None
    assert any("outside the lab subnet" in p.render() for p in problems)


def test_proxmox_config_is_not_a_lab():
    config, _ = validate(Path(__file__).resolve().parents[2] / "etc")
    assert config is not None
    (problem,) = checks.config_problems(config)
    assert "not 'lab'" in problem


@pytest.mark.parametrize("kwargs, message", [
    ({"nodes": 0}, "--nodes"),
    ({"nodes": 3, "subnet": "198.18.77.0/29"}, "too small"),
    ({"nodes": 3, "subnet": "198.18.77.1/24"}, "--subnet"),
    ({"nodes": 3, "state_dir": "relative/state"}, "absolute"),
])
def test_config_generation_refuses_bad_input(kwargs, message):
    with pytest.raises(LabConfigRefused, match=message):
        lab_config(**kwargs)


@pytest.mark.parametrize("state_dir, words", [
    ("/", "system or top-level"), ("/etc", "system or top-level"), ("/var/lib", "system or top-level"),
    ("/srv", "system or top-level"), ("/x", "system or top-level"), ("/etc/../", "system or top-level"),
    ("/var/lib/docker", "system or top-level"),
])
def test_a_state_dir_that_is_not_the_labs_own_is_refused(state_dir, words):
    (problem,) = checks.state_dir_problems(Path(state_dir))
    assert words in problem


def test_an_existing_state_dir_must_be_empty_or_the_labs(tmp_path):
    foreign = tmp_path / "data"
    foreign.mkdir()
    (foreign / "precious.txt").write_text("keep me")
    (problem,) = checks.state_dir_problems(foreign)
    assert "holds files the lab did not make" in problem
    ours = tmp_path / "lab"
    ours.mkdir()
    (ours / checks.RECORD_FILE).write_text("{}")
    (ours / "vms").mkdir()
    assert checks.state_dir_problems(ours) == []
    assert checks.state_dir_problems(tmp_path / "new") == []
    (tmp_path / "afile").write_text("x")
    assert "not a plain directory" in checks.state_dir_problems(tmp_path / "afile")[0]


@pytest.mark.parametrize("bridge", ["docker0", "lo", "br-1a2b3c", "veth123", "virbr0"])
def test_a_bridge_of_other_software_is_refused(tmp_path, bridge):
    from phoenix_tasks.config import load_config
    write_lab_config(tmp_path / "etc", 2, subnet="198.18.42.0/24", bridge=bridge, state_dir=str(tmp_path / "s"))
    problems = checks.config_problems(load_config(tmp_path / "etc"))
    assert any("belongs to other software" in p for p in problems), problems
