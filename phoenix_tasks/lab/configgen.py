"""A lab configuration directory of N VMs, for tests and benchmarks.

Same schemas as etc/: VM 1 is the swarm manager (portainer), VM 2 a worker labelled
gpu=true (drphoenix), the rest CPU-only workers.  IPs are the subnet's hosts .11 on,
the gateway is its first host.
"""

from __future__ import annotations

import ipaddress
import json
from pathlib import Path

from phoenix_tasks.core.errors import PhoenixError

FIRST_VMID = 1001
TEMPLATE_VMID = 9000
FIRST_HOST = 11  # .11, .12, ... as in etc/lab
MAX_NODES = 200


class LabConfigRefused(PhoenixError):
    pass


def vm_entry(index: int, ip: ipaddress.IPv4Interface, nodes: int) -> dict:
    """The index-th VM (0-based): manager, gpu worker, then CPU workers.  A lone VM
    is manager and gpu=true, so every stack's constraints can be met."""
    if index == 0:
        name, role, stacks, labels = "portainer", "manager", \
            ["portainer_service", "qdrant_service"], ["zone=core"]
        if nodes == 1:
            stacks, labels = stacks + ["thinkheads_ai_app"], ["gpu=true", "zone=core"]
    elif index == 1:
        name, role, stacks, labels = "drphoenix", "worker", ["thinkheads_ai_app"], \
            ["gpu=true", "zone=compute"]
    else:
        name = "cpuworker" if index == 2 else f"cpuworker{index - 1}"
        role, stacks, labels = "worker", ["thinkheads_ai_app"], ["gpu=false", "zone=compute"]
    return {"vmid": FIRST_VMID + index, "name": name, "network_config": {"ip": str(ip)},
            "docker_stacks": stacks, "swarm_role": role, "node_labels": labels}


def lab_config(nodes: int, subnet: str = "198.18.42.0/24", bridge: str = "phxlab0",
               state_dir: str = "/var/lib/phoenix-lab") -> tuple[dict, dict]:
    """(hypervisor config, VM config) documents for a lab of `nodes` VMs."""
    try:
        net = ipaddress.IPv4Network(subnet, strict=True)
    except ValueError as e:
        raise LabConfigRefused(f"--subnet {subnet!r}: {e}") from None
    if not 1 <= nodes <= MAX_NODES:
        raise LabConfigRefused(f"--nodes must be 1 to {MAX_NODES}, not {nodes}")
    hosts = net.num_addresses - 2
    if hosts < FIRST_HOST + nodes:
        raise LabConfigRefused(f"subnet {net} is too small for {nodes} VMs "
                               f"(they take hosts .{FIRST_HOST} on); use a larger one")
    if not state_dir.startswith("/"):
        raise LabConfigRefused(f"--state-dir must be an absolute path, not {state_dir!r}")

    def host(n: int) -> ipaddress.IPv4Interface:
        return ipaddress.IPv4Interface(f"{net.network_address + n}/{net.prefixlen}")

    gateway = host(1)
    hypervisor = {
        "$schema": "../../schemas/phoenix_hypervisor_config.schema.json",
        "provider": "lab",
        "domain": "lab.phoenix.internal",
        "network": {"subnet": str(net), "gateway": str(gateway.ip),
                    "nameserver": str(gateway.ip)},
        "lab": {"subnet": str(net), "gateway": str(gateway), "bridge": bridge,
                "state_dir": state_dir},
        "vm_access": {"user": "root", "port": 22, "host_key_policy": "strict",
                      "connect_timeout_s": 5},
        "swarm": {"advertise": "vm_ip", "label_policy": "merge"},
        "portainer": {"stack": "portainer_service", "env": "prod",
                      "images": {"portainer": "portainer/portainer-ce:2.21.4",
                                 "agent": "portainer/agent:2.21.4"}},
    }
    template_host = min(FIRST_HOST + nodes + 50, hosts)
    vms = {
        "$schema": "../../schemas/phoenix_vm_configs.schema.json",
        "vm_defaults": {
            "cores": 1, "memory_mb": 1024, "disk_size_gb": 8,
            "clone_from_vmid": TEMPLATE_VMID,
            "network_config": {"gw": str(gateway.ip), "nameserver": str(gateway.ip)},
            "user_config": {"username": "root"},
        },
        "vms": [{"vmid": TEMPLATE_VMID, "name": "lab-template", "is_template": True,
                 "network_config": {"ip": str(host(template_host))}}]
        + [vm_entry(i, host(FIRST_HOST + i), nodes) for i in range(nodes)],
    }
    return hypervisor, vms


def write_lab_config(out: Path, nodes: int, **settings: str) -> list[Path]:
    """Write both JSON files into out (created if needed); returns their paths."""
    hypervisor, vms = lab_config(nodes, **settings)
    out.mkdir(parents=True, exist_ok=True)
    # $schema paths are relative to the file; point them at this checkout's schemas.
    schemas = Path(__file__).resolve().parent.parent.parent / "schemas"
    hypervisor["$schema"] = str(schemas / "phoenix_hypervisor_config.schema.json")
    vms["$schema"] = str(schemas / "phoenix_vm_configs.schema.json")
    written = []
    for name, doc in (("phoenix_hypervisor_config.json", hypervisor),
                      ("phoenix_vm_configs.json", vms)):
        path = out / name
        path.write_text(json.dumps(doc, indent=2) + "\n")
        written.append(path)
    return written
