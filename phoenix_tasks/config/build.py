"""Stage 3 of validation: build the typed model (`phoenix_tasks.core.model`) from raw documents.

Called on documents without errors; schema defaults (port 22, accept-new, ...) are
filled in here, so library code never sees an absent field.
"""

from __future__ import annotations

import ipaddress
from pathlib import Path

from ..core import paths
from ..core.model import (
    VM,
    Config,
    Hypervisor,
    LabSettings,
    NetworkConfig,
    PortainerSettings,
    ProxmoxSettings,
    RegistrySettings,
    Stack,
    StackService,
    SwarmSettings,
    VMAccess,
)
from ..docker.refusals import DEFAULT_MAX_REPLICAS
from . import compose
from .read import Raw


def build(raw: Raw) -> Config:
    return Config(
        config_dir=raw.config_dir,
        stacks_dir=raw.stacks_dir,
        hypervisor=_build_hypervisor(raw.hypervisor, raw.config_dir),
        vms=tuple(build_vms(raw.effective_vms())),
        stacks=_build_stacks(raw),
    )


def build_vms(entries: list[tuple[int, dict]]) -> list[VM]:
    """VMs from (index, entry with vm_defaults merged in)."""
    vms = []
    for i, vm in entries:
        net = vm["network_config"]
        labels: dict[str, str] = {}
        for label in vm.get("node_labels", []):
            k, v = label.split("=", 1)
            labels.setdefault(k, v)
        vms.append(VM(
            vmid=vm["vmid"],
            name=vm["name"],
            network=NetworkConfig(
                ip=ipaddress.IPv4Interface(net["ip"]),
                gw=ipaddress.IPv4Address(net.get("gw", "0.0.0.0")),
                nameserver=ipaddress.IPv4Address(net.get("nameserver", "0.0.0.0")),
            ),
            username=vm["user_config"].get("username", ""),
            cores=vm.get("cores", 0),
            memory_mb=vm.get("memory_mb", 0),
            disk_size_gb=vm.get("disk_size_gb", 0),
            clone_from_vmid=vm.get("clone_from_vmid"),
            is_template=vm.get("is_template", False),
            proxmox_node=vm.get("proxmox_node"),
            docker_stacks=tuple(vm.get("docker_stacks", [])),
            swarm_role=vm.get("swarm_role"),
            node_labels=labels,
            availability=vm.get("availability"),
            index=i,
        ))
    return vms


def _path(value: str, base: Path) -> Path:
    p = Path(value).expanduser()
    return p if p.is_absolute() else (base / p)


def _build_hypervisor(hv: dict, config_dir: Path) -> Hypervisor:
    lab = None
    if "lab" in hv:
        lab = LabSettings(
            subnet=ipaddress.IPv4Network(hv["lab"]["subnet"]),
            gateway=ipaddress.IPv4Interface(hv["lab"]["gateway"]),
            bridge=hv["lab"]["bridge"],
            state_dir=Path(hv["lab"]["state_dir"]),
        )
    access = hv["vm_access"]
    ssh_dir = (lab.state_dir / "ssh") if lab and hv["provider"] == "lab" else None
    key = access.get("private_key_file")
    known = access.get("known_hosts_file")
    vm_access = VMAccess(
        user=access["user"],
        port=access.get("port", 22),
        private_key_file=_path(key, config_dir) if key else ssh_dir / "id_ed25519",
        host_key_policy=access.get("host_key_policy", "accept-new"),
        known_hosts_file=_path(known, config_dir) if known else ssh_dir / "known_hosts",
        connect_timeout_s=float(access.get("connect_timeout_s", 10)),
        command_timeout_s=float(access.get("command_timeout_s", 60)),
        read_timeout_s=float(access.get("read_timeout_s", 15)),
    )
    px = hv.get("proxmox")
    return Hypervisor(
        provider=hv["provider"],
        domain=hv["domain"],
        network_subnet=ipaddress.IPv4Network(hv["network"]["subnet"], strict=False),
        vm_access=vm_access,
        swarm=SwarmSettings(
            advertise=hv.get("swarm", {}).get("advertise", "vm_ip"),
            label_policy=hv.get("swarm", {}).get("label_policy", "merge"),
            keep_deploys=hv.get("swarm", {}).get("keep_deploys", 5),
            lock_ttl_s=hv.get("swarm", {}).get("lock_ttl_s", 120),
            default_addr_pool=tuple(ipaddress.IPv4Network(p) for p in hv.get("swarm", {}).get("default_addr_pool", [])),
            subnet_size=hv.get("swarm", {}).get("subnet_size"),
            autolock_key_file=_path(hv["swarm"]["autolock_key_file"], config_dir)
            if hv.get("swarm", {}).get("autolock_key_file") else None,
        ),
        registries=tuple(RegistrySettings(
            server=r["server"], username=r["username"],
            password_file=_path(r["password_file"], config_dir) if r.get("password_file") else None,
            password_env=r.get("password_env")) for r in hv.get("registries") or ()),
        portainer=PortainerSettings(
            stack=hv["portainer"]["stack"],
            env=hv["portainer"]["env"],
            images=dict(hv["portainer"]["images"]),
            admin_password_file=_path(hv["portainer"]["admin_password_file"], config_dir)
            if hv["portainer"].get("admin_password_file") else None,
        ),
        proxmox=ProxmoxSettings(
            host=px["host"], node=px["node"], ssh_user=px.get("ssh_user", "root"),
            ssh_port=px.get("ssh_port", 22), api_token_env=px.get("api_token_env"),
            verify_tls=px.get("verify_tls", True),
            ca_file=_path(px["ca_file"], config_dir) if px.get("ca_file") else None,
            clone_storage=px.get("clone_storage"),
            max_parallel_clones=px.get("max_parallel_clones", 1),
            api_port=px.get("api_port", 8006),
            api=px.get("api", "https"),
            ssh_key_file=_path(px["ssh_key_file"], config_dir) if px.get("ssh_key_file") else None,
            # the Proxmox host's key is checked as the VMs' are (see ProxmoxSettings)
            ssh_host_key_policy=vm_access.host_key_policy,
            ssh_known_hosts_file=vm_access.known_hosts_file,
            ssh_connect_timeout_s=vm_access.connect_timeout_s,
        ) if px else None,
        lab=lab,
    )


def _build_stacks(raw: Raw) -> dict[str, Stack]:
    return {name: build_stack(raw, name) for name in raw.manifests}


def build_stack(raw: Raw, name: str) -> Stack:
    """One stack from its manifest and compose file (both passed their schema)."""
    manifest = raw.manifests[name]
    doc = raw.composes[name]
    wide = tuple(manifest.get("placement_constraints", []))
    services = {}
    for svc_name, svc in compose.services(doc).items():
        own = tuple(manifest.get("services", {}).get(svc_name, {}).get("placement_constraints", []))
        from_compose = tuple(text for _, text in compose.placement_constraints(svc))
        merged = tuple(dict.fromkeys(wide + own + from_compose))
        services[svc_name] = StackService(svc_name, merged)
    envs = manifest.get("environments", {})
    default = envs.get("default", {}).get("variables", {})
    if "max_replicas" in manifest:
        max_replicas, source = manifest["max_replicas"], f" in {paths.STACK_MANIFEST_FILE}"
    else:
        max_replicas = ((raw.hypervisor or {}).get("stacks") or {}).get("max_replicas", DEFAULT_MAX_REPLICAS)
        source = f" = stacks.max_replicas in {paths.HYPERVISOR_CONFIG_FILE}, raised by a stack's " \
                 f"{paths.STACK_MANIFEST_FILE} max_replicas"
    return Stack(
        name=name,
        directory=raw.stack_dirs[name],
        description=manifest["description"],
        placement_constraints=wide,
        services=services,
        environments={env: {**default, **spec["variables"]} for env, spec in envs.items()},
        compose=doc,
        max_replicas=max_replicas,
        max_replicas_source=source,
        shares={section: tuple(names) for section, names in manifest.get("shares", {}).items()},
        known_stacks=tuple(sorted(set(raw.stack_dirs) | raw.incomplete_stacks)),
    )
