"""Load every config file, validate it (schemas, then checks across files), build the model.

`validate()` reports every problem it can find, not only the first; `load_config()`
returns the typed `Config` or raises `ConfigInvalid`.  Nothing here opens a connection.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .. import paths
from ..model import (
    VM,
    Config,
    Hypervisor,
    LabSettings,
    NetworkConfig,
    PortainerSettings,
    ProxmoxSettings,
    Stack,
    StackService,
    SwarmSettings,
    VMAccess,
)
from . import compose
from .constraints import first_unsatisfiable, parse
from .documents import HYPERVISOR_SCHEMA, STACK_SCHEMA, VM_SCHEMA, check_schema, read_json, read_yaml
from .problems import ConfigInvalid, Problem, errors, pointer

STACK_NAME = re.compile(r"^[a-z][a-z0-9_]{0,39}$")
ENV_NAME = re.compile(r"^[a-z][a-z0-9-]{0,23}$")
MAX_SERVICE_NAME = 63  # swarm service names are DNS labels
VM_FIELDS_FROM_DEFAULTS = ("cores", "memory_mb", "disk_size_gb")


def service_name(env: str, stack: str, service: str) -> str:
    """The swarm service name of a stack's service in an environment.

    A stack deployed in environment ENV is the swarm stack ``ENV_STACK``, so every
    service, network and config it makes starts with ``ENV_``.
    """
    return f"{env}_{stack}_{service}"


def max_env_length(stack: str, services: list[str]) -> int:
    longest = max((len(s) for s in services), default=0)
    return MAX_SERVICE_NAME - len(stack) - longest - 2


@dataclass
class _Raw:
    """Parsed documents that passed their schema (None where they did not)."""

    hypervisor: dict | None = None
    vms: dict | None = None
    manifests: dict[str, dict] = field(default_factory=dict)
    composes: dict[str, dict] = field(default_factory=dict)
    stack_dirs: dict[str, Path] = field(default_factory=dict)
    # Stack directories that exist but are incomplete (already reported once).
    incomplete_stacks: set[str] = field(default_factory=set)


class _Validation:
    def __init__(self, config_dir: Path, stacks_dir: Path):
        self.config_dir = config_dir
        self.stacks_dir = stacks_dir
        self.hv_file = config_dir / paths.HYPERVISOR_CONFIG_FILE
        self.vm_file = config_dir / paths.VM_CONFIG_FILE
        self.problems: list[Problem] = []
        self.raw = _Raw()

    # -- helpers ---------------------------------------------------------
    def error(self, file: Path, where: str, message: str) -> None:
        self.problems.append(Problem(file, where, message))

    def warn(self, file: Path, where: str, message: str) -> None:
        self.problems.append(Problem(file, where, message, "warning"))

    def _load(self, path: Path, schema: str, reader=read_json) -> Any | None:
        doc = reader(path, self.problems)
        if doc is None:
            return None
        found = check_schema(doc, schema, path) if schema else []
        self.problems.extend(found)
        return None if found else doc

    # -- stage 1: files and schemas ---------------------------------------
    def load_files(self) -> None:
        if not self.config_dir.is_dir():
            self.error(self.config_dir, "", "configuration directory not found (set PHOENIX_CONFIG_DIR)")
        else:
            self.raw.hypervisor = self._load(self.hv_file, HYPERVISOR_SCHEMA)
            self.raw.vms = self._load(self.vm_file, VM_SCHEMA)
        if not self.stacks_dir.is_dir():
            self.error(self.stacks_dir, "", "stacks directory not found (set PHOENIX_STACKS_DIR)")
            return
        for d in sorted(p for p in self.stacks_dir.iterdir() if p.is_dir() and not p.name.startswith(".")):
            if not STACK_NAME.match(d.name):
                self.error(d, "", f"stack directory name {d.name!r} is not valid (lower-case letters, digits and '_', starting with a letter, at most 40 characters)")
                continue
            manifest, compose_file = d / paths.STACK_MANIFEST_FILE, d / paths.STACK_COMPOSE_FILE
            missing = [f.name for f in (manifest, compose_file) if not f.is_file()]
            if missing:
                self.error(d, "", f"stack {d.name!r} has no {' and no '.join(missing)} (a stack needs both)")
                self.raw.incomplete_stacks.add(d.name)
                continue
            self.raw.stack_dirs[d.name] = d
            m = self._load(manifest, STACK_SCHEMA)
            c = read_yaml(compose_file, self.problems)
            if m is not None:
                self.raw.manifests[d.name] = m
            if c is not None and self._compose_shape(compose_file, c):
                self.raw.composes[d.name] = c

    def _compose_shape(self, path: Path, doc: Any) -> bool:
        if not isinstance(doc, dict) or not isinstance(doc.get("services"), dict) or not doc["services"]:
            self.error(path, "/services", "a compose file needs a 'services' mapping with at least one service")
            return False
        ok = True
        for name, svc in doc["services"].items():
            if not isinstance(svc, dict):
                self.error(path, pointer("services", name), "a service must be a mapping")
                ok = False
            elif not isinstance(svc.get("deploy"), dict):
                self.error(path, pointer("services", name), "missing 'deploy' key: every service says how the swarm runs it (replicas, placement)")
                ok = False
            elif not re.match(r"^[a-z][a-z0-9_-]{0,39}$", str(name)):
                self.error(path, pointer("services", name), f"service name {name!r} is not valid (lower-case letters, digits, '_' and '-', starting with a letter)")
                ok = False
        return ok

    # -- stage 2: checks across files --------------------------------------
    def effective_vms(self) -> list[tuple[int, dict]]:
        """Each VM entry with vm_defaults merged in (network/user config key by key)."""
        doc = self.raw.vms or {}
        defaults = doc.get("vm_defaults", {})
        out = []
        for i, vm in enumerate(doc.get("vms", [])):
            skip = ("network_config", "user_config") + (("clone_from_vmid",) if vm.get("is_template") else ())
            merged = {**{k: v for k, v in defaults.items() if k not in skip}, **vm}
            merged["network_config"] = {**defaults.get("network_config", {}), **vm.get("network_config", {})}
            merged["user_config"] = {**defaults.get("user_config", {}), **vm.get("user_config", {})}
            out.append((i, merged))
        return out

    def check_vms(self) -> None:
        if self.raw.vms is None:
            return
        f = self.vm_file
        seen: dict[str, dict[Any, int]] = {"vmid": {}, "name": {}, "ip": {}}
        vms = self.effective_vms()
        for i, vm in vms:
            ip = vm["network_config"]["ip"]
            for key, value, where in (
                ("vmid", vm["vmid"], pointer("vms", i, "vmid")),
                ("name", vm["name"], pointer("vms", i, "name")),
                ("ip", ip.split("/")[0], pointer("vms", i, "network_config", "ip")),
            ):
                if value in seen[key]:
                    self.error(f, where, f"duplicate {key} {value!r}: already used by /vms/{seen[key][value]}")
                else:
                    seen[key][value] = i
            for field_name in VM_FIELDS_FROM_DEFAULTS:
                if field_name not in vm:
                    self.error(f, pointer("vms", i), f"missing {field_name!r}, and /vm_defaults sets none")
            for key in ("gw", "nameserver"):
                if key not in vm["network_config"]:
                    self.error(f, pointer("vms", i, "network_config"), f"missing {key!r}, and /vm_defaults/network_config sets none")
            if "username" not in vm["user_config"]:
                self.error(f, pointer("vms", i, "user_config"), "missing 'username', and /vm_defaults/user_config sets none")
            iface = ipaddress.IPv4Interface(ip)
            if iface.network.prefixlen < 31 and iface.ip in (iface.network.network_address, iface.network.broadcast_address):
                self.error(f, pointer("vms", i, "network_config", "ip"), f"{ip} is the network or broadcast address of its subnet")
            gw = vm["network_config"].get("gw")
            if gw and ipaddress.IPv4Address(gw) not in iface.network:
                self.error(f, pointer("vms", i, "network_config", "gw"), f"gateway {gw} is outside the VM's subnet {iface.network}")
            labels = vm.get("node_labels", [])
            keys: dict[str, int] = {}
            for j, label in enumerate(labels):
                k = label.split("=", 1)[0]
                if k in keys:
                    self.error(f, pointer("vms", i, "node_labels", j), f"label key {k!r} given twice on this VM (also /vms/{i}/node_labels/{keys[k]})")
                keys.setdefault(k, j)
            if vm.get("is_template") and vm.get("swarm_role"):
                self.error(f, pointer("vms", i, "swarm_role"), "a template VM cannot be in the swarm")
        by_id = {vm["vmid"]: vm for _, vm in vms}
        for i, vm in vms:
            src = vm.get("clone_from_vmid")
            if src is not None and not vm.get("is_template") and src in by_id and not by_id[src].get("is_template"):
                self.error(f, pointer("vms", i, "clone_from_vmid"), f"VM {src} is not a template (is_template: true)")
            if src == vm["vmid"]:
                self.error(f, pointer("vms", i, "clone_from_vmid"), "a VM cannot be cloned from itself")
        swarm = [(i, vm) for i, vm in vms if vm.get("swarm_role") and not vm.get("is_template")]
        managers = [i for i, vm in swarm if vm["swarm_role"] == "manager"]
        if not managers:
            self.error(f, "/vms", "no VM has swarm_role 'manager': the swarm needs at least one")
        elif len(managers) % 2 == 0:
            self.warn(f, "/vms", f"{len(managers)} managers: an even number adds no fault tolerance over {len(managers) - 1} (Raft needs a majority)")

    def check_hypervisor(self) -> None:
        hv = self.raw.hypervisor
        if hv is None:
            return
        f = self.hv_file
        net = ipaddress.IPv4Network(hv["network"]["subnet"], strict=False)
        if str(net) != hv["network"]["subnet"]:
            self.error(f, "/network/subnet", f"{hv['network']['subnet']} has host bits set; did you mean {net}?")
        if ipaddress.IPv4Address(hv["network"]["gateway"]) not in net:
            self.error(f, "/network/gateway", f"gateway {hv['network']['gateway']} is outside {net}")
        lab = hv.get("lab")
        if lab:
            lnet = ipaddress.IPv4Network(lab["subnet"], strict=False)
            if str(lnet) != lab["subnet"]:
                self.error(f, "/lab/subnet", f"{lab['subnet']} has host bits set; did you mean {lnet}?")
            gw = ipaddress.IPv4Interface(lab["gateway"])
            if gw.network != lnet:
                self.error(f, "/lab/gateway", f"{lab['gateway']} is not an address of the lab subnet {lnet}")
        if self.raw.vms is None:
            return
        for i, vm in self.effective_vms():
            ip = ipaddress.IPv4Interface(vm["network_config"]["ip"])
            if ip.ip not in net:
                self.error(self.vm_file, pointer("vms", i, "network_config", "ip"), f"{ip.ip} is outside the VM network {net} ({paths.HYPERVISOR_CONFIG_FILE} /network/subnet)")
            elif ip.network.prefixlen != (ref := ipaddress.IPv4Network(lab["subnet"], strict=False) if lab else net).prefixlen:
                where = "/lab/subnet" if lab else "/network/subnet"
                self.error(self.vm_file, pointer("vms", i, "network_config", "ip"), f"prefix /{ip.network.prefixlen} differs from the {'lab' if lab else 'VM'} network {ref} ({paths.HYPERVISOR_CONFIG_FILE} {where})")
            if lab and ip.ip not in ipaddress.IPv4Network(lab["subnet"], strict=False):
                self.error(self.vm_file, pointer("vms", i, "network_config", "ip"), f"{ip.ip} is outside the lab subnet {lab['subnet']} ({paths.HYPERVISOR_CONFIG_FILE} /lab/subnet)")
            if lab and str(ip.ip) == str(ipaddress.IPv4Interface(lab["gateway"]).ip):
                self.error(self.vm_file, pointer("vms", i, "network_config", "ip"), f"{ip.ip} is the lab bridge's own address (/lab/gateway)")

    def check_stack_references(self) -> None:
        if not self.stacks_dir.is_dir():
            return  # already reported; every reference would repeat it
        # An incomplete stack directory is reported where it is, not at each reference.
        known = set(self.raw.stack_dirs) | self.raw.incomplete_stacks
        if self.raw.vms is not None:
            for i, vm in self.effective_vms():
                for j, name in enumerate(vm.get("docker_stacks", [])):
                    if name not in known:
                        self.error(self.vm_file, pointer("vms", i, "docker_stacks", j), f"no stack {name!r} in {paths.display(self.stacks_dir)}")
        if self.raw.hypervisor is not None:
            name = self.raw.hypervisor["portainer"]["stack"]
            if name not in known:
                self.error(self.hv_file, "/portainer/stack", f"no stack {name!r} in {paths.display(self.stacks_dir)}")

    def check_stacks(self) -> None:
        swarm_vms = self._swarm_vm_models()
        for name, manifest in self.raw.manifests.items():
            doc = self.raw.composes.get(name)
            if doc is None:
                continue
            mfile = self.raw.stack_dirs[name] / paths.STACK_MANIFEST_FILE
            cfile = self.raw.stack_dirs[name] / paths.STACK_COMPOSE_FILE
            services = compose.services(doc)
            for svc in manifest.get("services", {}):
                if svc not in services:
                    self.error(mfile, pointer("services", svc), f"no service {svc!r} in {paths.STACK_COMPOSE_FILE} (it has: {', '.join(services)})")
            self._check_variables(name, manifest, mfile, doc)
            self._check_name_lengths(name, manifest, mfile, list(services))
            if swarm_vms is not None:
                self._check_placement(name, manifest, doc, mfile, cfile, swarm_vms)

    def _check_variables(self, name: str, manifest: dict, mfile: Path, doc: Any) -> None:
        needed = compose.variables_in(doc)
        if not needed:
            return
        envs = manifest.get("environments", {})
        if "default" not in envs:
            self.error(mfile, "/environments/default", f"missing: {paths.STACK_COMPOSE_FILE} uses ${{{needed[0]}}}, and environments other than {sorted(envs) or 'none'} take their values from 'default'")
        default = envs.get("default", {}).get("variables", {})
        for env, spec in envs.items():
            have = {**default, **spec["variables"]}
            for var in needed:
                if var not in have:
                    self.error(mfile, pointer("environments", env, "variables"), f"no value for ${{{var}}} used in {paths.STACK_COMPOSE_FILE} (environment {env!r})")

    def _check_name_lengths(self, name: str, manifest: dict, mfile: Path, services: list[str]) -> None:
        longest = max(services, key=len)
        for env in manifest.get("environments", {}):
            full = service_name(env, name, longest)
            if len(full) > MAX_SERVICE_NAME:
                self.error(mfile, pointer("environments", env), f"swarm service name {full!r} would be {len(full)} characters; the limit is {MAX_SERVICE_NAME}")
        hv = self.raw.hypervisor
        if hv is not None and hv["portainer"]["stack"] == name:
            full = service_name(hv["portainer"]["env"], name, longest)
            if len(full) > MAX_SERVICE_NAME:
                self.error(self.hv_file, "/portainer/env", f"swarm service name {full!r} would be {len(full)} characters; the limit is {MAX_SERVICE_NAME}")
        if max_env_length(name, services) < 1:
            self.error(mfile, "", f"stack name {name!r} with service {longest!r} leaves no room for an environment name within {MAX_SERVICE_NAME} characters")

    def _swarm_vm_models(self) -> list[VM] | None:
        if self.raw.vms is None or any(p.file == self.vm_file and p.severity == "error" for p in self.problems):
            return None
        return [vm for vm in _build_vms(self.effective_vms()) if vm.in_swarm]

    def _check_placement(self, name, manifest, doc, mfile, cfile, vms: list[VM]) -> None:
        for svc_name, svc in compose.services(doc).items():
            sources: list[tuple[Path, str, str]] = []
            for k, text in enumerate(manifest.get("placement_constraints", [])):
                sources.append((mfile, pointer("placement_constraints", k), text))
            for k, text in enumerate(manifest.get("services", {}).get(svc_name, {}).get("placement_constraints", [])):
                sources.append((mfile, pointer("services", svc_name, "placement_constraints", k), text))
            for k, text in compose.placement_constraints(svc):
                where = pointer("services", svc_name, "deploy", "placement", "constraints", k)
                if "$" in text:
                    continue  # depends on the environment; checked at deploy time
                if parse(text) is None:
                    self.error(cfile, where, f"{text!r} is not a placement constraint (node.<attribute> == value, or !=)")
                    continue
                sources.append((cfile, where, text))
            parsed = {text: parse(text) for _, _, text in sources}
            culprits = first_unsatisfiable([c for c in parsed.values() if c], vms)
            if culprits:
                texts = [c.text for c in culprits]
                file, where, _ = next(s for s in sources if s[2] == texts[0])
                what = f"constraint {texts[0]!r}" if len(texts) == 1 else "constraints " + " and ".join(repr(t) for t in texts) + " together"
                self.error(file, where, f"stack {name!r}, service {svc_name!r}: no configured swarm VM satisfies {what}")

    def run(self) -> None:
        self.load_files()
        self.check_vms()
        self.check_hypervisor()
        self.check_stack_references()
        self.check_stacks()


# -- building the typed model ------------------------------------------------

def _build_vms(entries: list[tuple[int, dict]]) -> list[VM]:
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
            docker_stacks=tuple(vm.get("docker_stacks", [])),
            swarm_role=vm.get("swarm_role"),
            node_labels=labels,
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
    px = hv.get("proxmox")
    return Hypervisor(
        provider=hv["provider"],
        domain=hv["domain"],
        network_subnet=ipaddress.IPv4Network(hv["network"]["subnet"], strict=False),
        vm_access=VMAccess(
            user=access["user"],
            port=access.get("port", 22),
            private_key_file=_path(key, config_dir) if key else ssh_dir / "id_ed25519",
            host_key_policy=access.get("host_key_policy", "accept-new"),
            known_hosts_file=_path(known, config_dir) if known else ssh_dir / "known_hosts",
            connect_timeout_s=float(access.get("connect_timeout_s", 10)),
        ),
        swarm=SwarmSettings(
            advertise=hv.get("swarm", {}).get("advertise", "vm_ip"),
            label_policy=hv.get("swarm", {}).get("label_policy", "merge"),
        ),
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
        ) if px else None,
        lab=lab,
    )


def _build_stacks(raw: _Raw) -> dict[str, Stack]:
    stacks = {}
    for name, manifest in raw.manifests.items():
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
        stacks[name] = Stack(
            name=name,
            directory=raw.stack_dirs[name],
            description=manifest["description"],
            placement_constraints=wide,
            services=services,
            environments={env: {**default, **spec["variables"]} for env, spec in envs.items()},
        )
    return stacks


def validate(config_dir: Path | str | None = None, stacks_dir: Path | str | None = None) -> tuple[Config | None, list[Problem]]:
    """Every problem in the configuration, and the Config when there is no error."""
    v = _Validation(paths.config_dir(config_dir), paths.stacks_dir(stacks_dir))
    v.run()
    problems = sorted(set(v.problems), key=lambda p: (str(p.file), p.pointer, p.message))
    if errors(problems):
        return None, problems
    config = Config(
        config_dir=v.config_dir,
        stacks_dir=v.stacks_dir,
        hypervisor=_build_hypervisor(v.raw.hypervisor, v.config_dir),
        vms=tuple(_build_vms(v.effective_vms())),
        stacks=_build_stacks(v.raw),
    )
    return config, problems


def load_config(config_dir: Path | str | None = None, stacks_dir: Path | str | None = None) -> Config:
    """The validated, typed configuration; raises ConfigInvalid listing every problem."""
    config, problems = validate(config_dir, stacks_dir)
    if config is None:
        raise ConfigInvalid(problems)
    return config
