"""Typed, validated configuration: what every library module works with.

Raw JSON never leaves ``phoenix_tasks.config``: it is schema-checked, cross-checked,
and then turned into these frozen dataclasses.  Library code takes these objects.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Mapping

SwarmRole = Literal["manager", "worker"]
HostKeyPolicy = Literal["strict", "accept-new", "off"]
LabelPolicy = Literal["merge", "replace"]
ProviderName = Literal["proxmox", "lab"]
ProxmoxApi = Literal["https", "ssh"]
Availability = Literal["active", "pause", "drain"]


@dataclass(frozen=True)
class Host:
    """Something Phoenix reaches over SSH: a VM, or the hypervisor itself.

    The transport needs only `name` (for messages and the run log) and `address`;
    a `VM` has both too."""

    name: str
    address: str

    def __str__(self) -> str:
        return self.name


@dataclass(frozen=True)
class NetworkConfig:
    ip: ipaddress.IPv4Interface  # address with prefix, e.g. 10.0.0.101/24
    gw: ipaddress.IPv4Address
    nameserver: ipaddress.IPv4Address

    @property
    def address(self) -> str:
        """The bare IP address, as SSH and `--advertise-addr` want it."""
        return str(self.ip.ip)


@dataclass(frozen=True)
class VM:
    vmid: int
    name: str  # lower-case hostname; also the swarm node's hostname
    network: NetworkConfig
    username: str
    cores: int
    memory_mb: int
    disk_size_gb: int
    clone_from_vmid: int | None = None
    is_template: bool = False
    proxmox_node: str | None = None  # None: the hypervisor config's proxmox.node
    docker_stacks: tuple[str, ...] = ()
    swarm_role: SwarmRole | None = None
    # Ordered key -> value; duplicate keys are refused by validation.
    node_labels: Mapping[str, str] = field(default_factory=dict)
    availability: Availability | None = None  # pinned swarm node availability; None: not managed
    index: int = 0  # position in the `vms` array, for JSON pointers in messages

    @property
    def address(self) -> str:
        return self.network.address

    @property
    def in_swarm(self) -> bool:
        return self.swarm_role is not None and not self.is_template

    def __str__(self) -> str:  # how a VM is named in every message
        return f"{self.name} (vmid {self.vmid})"


@dataclass(frozen=True)
class VMAccess:
    """How the transport reaches a VM over SSH.  No secret value lives here."""

    user: str
    port: int
    private_key_file: Path
    host_key_policy: HostKeyPolicy
    known_hosts_file: Path
    connect_timeout_s: float
    # Every remote command's deadline (a step that needs longer gives its own).
    command_timeout_s: float = 60.0
    # A command that only reads (facts, status, envs, history, diff): a shorter deadline,
    # so one hung engine does not hold a read-only task for a write's whole deadline.
    read_timeout_s: float = 15.0

    def deadline(self, mutating: bool) -> float:
        """A command's default deadline: a read's never exceeds a write's."""
        return self.command_timeout_s if mutating else min(self.read_timeout_s, self.command_timeout_s)


@dataclass(frozen=True)
class SwarmSettings:
    # "vm_ip": advertise the VM's configured IP; "interface:<name>": let docker pick
    # the address of that interface on the manager.
    advertise: str
    label_policy: LabelPolicy
    keep_deploys: int = 5  # per environment and stack: ledger records and their configs/secrets
    lock_ttl_s: int = 120  # a deploy lock not renewed for this long is free
    # Init-only (swarm/security.py): overlay subnets come from these pools, in /subnet_size
    # steps.  Empty: docker's default (10.0.0.0/8 in /24s).
    default_addr_pool: tuple[ipaddress.IPv4Network, ...] = ()
    subnet_size: int | None = None  # None: docker's default, 24
    autolock_key_file: Path | None = None  # where the unlock key is kept (mode 0600)

    def advertise_addr(self, vm: VM) -> str:
        if self.advertise == "vm_ip":
            return vm.address
        return self.advertise.split(":", 1)[1]


@dataclass(frozen=True)
class PortainerSettings:
    stack: str
    env: str
    images: Mapping[str, str]
    admin_password_file: Path | None


@dataclass(frozen=True)
class RegistrySettings:
    """A private registry the managers log in to; the password is read (stack/registries.py)
    from the file or the environment variable named here, never stored in the config."""

    server: str
    username: str
    password_file: Path | None = None
    password_env: str | None = None


@dataclass(frozen=True)
class ProxmoxSettings:
    host: str
    node: str
    ssh_user: str
    ssh_port: int
    api_token_env: str | None  # the variable's NAME; its value is read once, into a Secret
    verify_tls: bool = True
    ca_file: Path | None = None
    clone_storage: str | None = None  # None: the template's own storage
    max_parallel_clones: int = 1
    api_port: int = 8006  # pveproxy's HTTPS port
    # "https": pveproxy with the API token; "ssh": pvesh on `host`, over SSH as ssh_user (root)
    api: ProxmoxApi = "https"
    ssh_key_file: Path | None = None  # None: the SSH agent and ~/.ssh's default keys
    # How SSH to the host is checked, copied from `vm_access` by the loader: Phoenix
    # trusts the Proxmox host's key the way it trusts the VMs' (one known_hosts file).
    ssh_host_key_policy: HostKeyPolicy = "strict"
    ssh_known_hosts_file: Path | None = None
    ssh_connect_timeout_s: float = 10.0

    def node_for(self, vm: "VM") -> str:
        """The Proxmox node a VM is cloned to and runs on."""
        return vm.proxmox_node or self.node


@dataclass(frozen=True)
class LabSettings:
    subnet: ipaddress.IPv4Network
    gateway: ipaddress.IPv4Interface  # bridge address in the root namespace
    bridge: str
    state_dir: Path


@dataclass(frozen=True)
class Hypervisor:
    provider: ProviderName
    domain: str
    network_subnet: ipaddress.IPv4Network
    vm_access: VMAccess
    swarm: SwarmSettings
    portainer: PortainerSettings
    proxmox: ProxmoxSettings | None = None
    lab: LabSettings | None = None
    registries: tuple[RegistrySettings, ...] = ()


@dataclass(frozen=True)
class StackService:
    name: str
    placement_constraints: tuple[str, ...]  # manifest + compose, stack-wide included


@dataclass(frozen=True)
class Stack:
    name: str
    directory: Path
    description: str
    placement_constraints: tuple[str, ...]
    services: Mapping[str, StackService]
    # env name -> effective variables (default merged under the env's own)
    environments: Mapping[str, Mapping[str, str]]
    # the parsed docker-compose.yml, exactly as yaml.safe_load returned it
    compose: Mapping[str, Any] = field(default_factory=dict)
    # the most replicas a service may ask for: stacks.max_replicas of the hypervisor
    # config, or the stack's own max_replicas in phoenix.json (docker/refusals.py)
    max_replicas: int = 100
    max_replicas_source: str = ""  # where that limit is set, for the refusal's message
    # section (secrets, configs, networks, volumes) -> names of other environments'
    # objects the stack uses on purpose (phoenix.json shares)
    shares: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    # every stack of the stacks directory: their namespaces are no stack's to reach into
    known_stacks: tuple[str, ...] = ()

    @property
    def compose_file(self) -> Path:
        return self.directory / "docker-compose.yml"

    @property
    def manifest_file(self) -> Path:
        return self.directory / "phoenix.json"

    def variables_for(self, env: str) -> Mapping[str, str]:
        """Variables for an environment; unknown names take `default`."""
        return self.environments.get(env, self.environments.get("default", {}))


@dataclass(frozen=True)
class Config:
    config_dir: Path
    stacks_dir: Path
    hypervisor: Hypervisor
    vms: tuple[VM, ...]
    stacks: Mapping[str, Stack]

    @property
    def vm_file(self) -> Path:
        return self.config_dir / "phoenix_vm_configs.json"

    @property
    def hypervisor_file(self) -> Path:
        return self.config_dir / "phoenix_hypervisor_config.json"

    @property
    def real_vms(self) -> tuple[VM, ...]:
        """Every VM that is not a template (what a provider creates)."""
        return tuple(vm for vm in self.vms if not vm.is_template)

    @property
    def swarm_vms(self) -> tuple[VM, ...]:
        return tuple(vm for vm in self.vms if vm.in_swarm)

    @property
    def managers(self) -> tuple[VM, ...]:
        return tuple(vm for vm in self.swarm_vms if vm.swarm_role == "manager")

    def vm_by_id(self, vmid: int) -> VM:
        for vm in self.vms:
            if vm.vmid == vmid:
                return vm
        raise KeyError(vmid)
