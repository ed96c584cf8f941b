"""Stage 2 of validation: checks across files, on documents that passed their schema.

Families, run in this order: VMs, hypervisor (and the VMs inside its networks),
references to stacks, and each stack (manifest services, variables, name lengths,
placement).  Each adds what it finds to `problems`.
"""

from __future__ import annotations

import ipaddress
from pathlib import Path
from typing import Any

from ..core import paths
from ..core.model import VM
from ..docker.naming import MAX_SERVICE_NAME, max_env_length, service_name
from . import compose, compose_schema
from .collisions import check_stack_collisions
from .build import build_vms
from ..docker.constraints import Constraint, first_unsatisfiable, parse
from ..core.safe_read import pointer
from .problems import Problem
from .read import Raw
from .render_checks import check_stack_renders
from .swarm_options import check_swarm_options

VM_FIELDS_FROM_DEFAULTS = ("cores", "memory_mb", "disk_size_gb")


def check_all(raw: Raw, problems: list[Problem]) -> None:
    check_vms(raw, problems)
    check_hypervisor(raw, problems)
    check_swarm_options(raw, problems)
    check_stack_references(raw, problems)
    check_stacks(raw, problems)
    check_stack_collisions(raw, problems)
    check_stack_renders(raw, problems)
    check_docker_stacks(raw, problems)
    check_portainer(raw, problems)
    check_availability(raw, problems)


def check_vms(raw: Raw, problems: list[Problem]) -> None:
    if raw.vms is None:
        return
    f = raw.vm_file
    seen: dict[str, dict[Any, int]] = {"vmid": {}, "name": {}, "ip": {}}
    vms = raw.effective_vms()
    for i, vm in vms:
        ip = vm["network_config"]["ip"]
        for key, value, where in (
            ("vmid", vm["vmid"], pointer("vms", i, "vmid")),
            ("name", vm["name"], pointer("vms", i, "name")),
            ("ip", ip.split("/")[0], pointer("vms", i, "network_config", "ip")),
        ):
            if value in seen[key]:
                problems.append(Problem(f, where, f"duplicate {key} {value!r}: already used by /vms/{seen[key][value]}"))
            else:
                seen[key][value] = i
        for field_name in VM_FIELDS_FROM_DEFAULTS:
            if field_name not in vm:
                problems.append(Problem(f, pointer("vms", i), f"missing {field_name!r}, and /vm_defaults sets none"))
        for key in ("gw", "nameserver"):
            if key not in vm["network_config"]:
                problems.append(Problem(f, pointer("vms", i, "network_config"), f"missing {key!r}, and /vm_defaults/network_config sets none"))
        if "username" not in vm["user_config"]:
            problems.append(Problem(f, pointer("vms", i, "user_config"), "missing 'username', and /vm_defaults/user_config sets none"))
        iface = ipaddress.IPv4Interface(ip)
        if iface.network.prefixlen < 31 and iface.ip in (iface.network.network_address, iface.network.broadcast_address):
            problems.append(Problem(f, pointer("vms", i, "network_config", "ip"), f"{ip} is the network or broadcast address of its subnet"))
        gw = vm["network_config"].get("gw")
        if gw and ipaddress.IPv4Address(gw) not in iface.network:
            problems.append(Problem(f, pointer("vms", i, "network_config", "gw"), f"gateway {gw} is outside the VM's subnet {iface.network}"))
        labels = vm.get("node_labels", [])
        keys: dict[str, int] = {}
        for j, label in enumerate(labels):
            k = label.split("=", 1)[0]
            if k in keys:
                problems.append(Problem(f, pointer("vms", i, "node_labels", j), f"label key {k!r} given twice on this VM (also /vms/{i}/node_labels/{keys[k]})"))
            keys.setdefault(k, j)
        if vm.get("is_template") and vm.get("swarm_role"):
            problems.append(Problem(f, pointer("vms", i, "swarm_role"), "a template VM cannot be in the swarm"))
    by_id = {vm["vmid"]: vm for _, vm in vms}
    for i, vm in vms:
        src = vm.get("clone_from_vmid")
        if src is not None and not vm.get("is_template") and src in by_id and not by_id[src].get("is_template"):
            problems.append(Problem(f, pointer("vms", i, "clone_from_vmid"), f"VM {src} is not a template (is_template: true)"))
        if src == vm["vmid"]:
            problems.append(Problem(f, pointer("vms", i, "clone_from_vmid"), "a VM cannot be cloned from itself"))
    swarm = [(i, vm) for i, vm in vms if vm.get("swarm_role") and not vm.get("is_template")]
    managers = [i for i, vm in swarm if vm["swarm_role"] == "manager"]
    if not managers:
        problems.append(Problem(f, "/vms", "no VM has swarm_role 'manager': the swarm needs at least one"))
    elif len(managers) % 2 == 0:
        problems.append(Problem(f, "/vms", f"{len(managers)} managers: an even number adds no fault tolerance over {len(managers) - 1} (Raft needs a majority)", "warning"))


def check_hypervisor(raw: Raw, problems: list[Problem]) -> None:
    hv = raw.hypervisor
    if hv is None:
        return
    f = raw.hv_file
    net = ipaddress.IPv4Network(hv["network"]["subnet"], strict=False)
    if str(net) != hv["network"]["subnet"]:
        problems.append(Problem(f, "/network/subnet", f"{hv['network']['subnet']} has host bits set; did you mean {net}?"))
    if ipaddress.IPv4Address(hv["network"]["gateway"]) not in net:
        problems.append(Problem(f, "/network/gateway", f"gateway {hv['network']['gateway']} is outside {net}"))
    px = hv.get("proxmox")
    if px and px.get("ca_file") and px.get("verify_tls") is False:
        problems.append(Problem(f, "/proxmox/ca_file", "ca_file is set but verify_tls is false: the CA file would be ignored "
                                "(remove one of the two)"))
    if px and px.get("ca_file") and px.get("verify_tls") is not False:
        why = ca_file_problem(_config_path(px["ca_file"], raw.config_dir))
        if why:
            problems.append(Problem(f, "/proxmox/ca_file", why))
    if px and px.get("api") == "ssh" and px.get("ssh_user", "root") != "root":
        problems.append(Problem(f, "/proxmox/ssh_user", f"api is 'ssh', and pvesh runs only as root: ssh_user "
                                f"'{px['ssh_user']}' cannot run it (use root, or api 'https' with a token)"))
    lab = hv.get("lab")
    if lab:
        lnet = ipaddress.IPv4Network(lab["subnet"], strict=False)
        if str(lnet) != lab["subnet"]:
            problems.append(Problem(f, "/lab/subnet", f"{lab['subnet']} has host bits set; did you mean {lnet}?"))
        gw = ipaddress.IPv4Interface(lab["gateway"])
        if gw.network != lnet:
            problems.append(Problem(f, "/lab/gateway", f"{lab['gateway']} is not an address of the lab subnet {lnet}"))
        # The schema's pattern (any character but NUL) lets a newline through.
    if raw.vms is None:
        return
    for i, vm in raw.effective_vms():
        ip = ipaddress.IPv4Interface(vm["network_config"]["ip"])
        where = pointer("vms", i, "network_config", "ip")
        if ip.ip not in net:
            problems.append(Problem(raw.vm_file, where, f"{ip.ip} is outside the VM network {net} ({paths.HYPERVISOR_CONFIG_FILE} /network/subnet)"))
        elif ip.network.prefixlen != (ref := ipaddress.IPv4Network(lab["subnet"], strict=False) if lab else net).prefixlen:
            ref_where = "/lab/subnet" if lab else "/network/subnet"
            problems.append(Problem(raw.vm_file, where, f"prefix /{ip.network.prefixlen} differs from the {'lab' if lab else 'VM'} network {ref} ({paths.HYPERVISOR_CONFIG_FILE} {ref_where})"))
        if lab and ip.ip not in ipaddress.IPv4Network(lab["subnet"], strict=False):
            problems.append(Problem(raw.vm_file, where, f"{ip.ip} is outside the lab subnet {lab['subnet']} ({paths.HYPERVISOR_CONFIG_FILE} /lab/subnet)"))
        if lab and str(ip.ip) == str(ipaddress.IPv4Interface(lab["gateway"]).ip):
            problems.append(Problem(raw.vm_file, where, f"{ip.ip} is the lab bridge's own address (/lab/gateway)"))
    if hv["provider"] == "proxmox" and px:
        _check_manager_spread(raw, px["node"], problems)


def _config_path(value: str, config_dir: Path) -> Path:
    p = Path(value).expanduser()
    return p if p.is_absolute() else config_dir / p  # as config/build.py resolves it


def ca_file_problem(path: Path) -> str | None:
    """Why `proxmox.ca_file` cannot be the API's trust anchor (None: it can): it must be a
    readable regular file holding at least one PEM certificate.  Read here, before any
    connection, so a run never starts to fail at its first API call."""
    import ssl  # noqa: PLC0415 - only for a config that names a CA file
    from ..core.safe_read import Unreadable, read_bytes  # noqa: PLC0415
    try:
        data = read_bytes(path)
    except Unreadable as exc:
        return f"ca_file {path}: {exc}"
    text = data.decode("ascii", "replace")
    if "-----BEGIN CERTIFICATE-----" not in text:
        return (f"ca_file {path} holds no PEM certificate (no '-----BEGIN CERTIFICATE-----'): give the CA that "
                "signed the API's certificate, e.g. a copy of /etc/pve/pve-root-ca.pem")
    try:
        ssl.create_default_context().load_verify_locations(cadata=text)
    except (ssl.SSLError, ValueError) as exc:
        reason = " ".join(str(getattr(exc, "reason", None) or exc).split())
        return f"ca_file {path} is not a valid PEM certificate ({reason})"
    return None


def _check_manager_spread(raw: Raw, default_node: str, problems: list[Problem]) -> None:
    """Warn when a majority of the swarm's managers sit on one Proxmox node: losing that
    physical host loses the swarm's quorum.  Below three managers spreading gains nothing
    (one or two managers lose quorum with any one of them), so only three or more count."""
    managers = [vm for _, vm in raw.effective_vms()
                if vm.get("swarm_role") == "manager" and not vm.get("is_template")]
    if len(managers) < 3:
        return
    by_node: dict[str, list[str]] = {}
    for vm in managers:
        by_node.setdefault(vm.get("proxmox_node") or default_node, []).append(vm["name"])
    node, names = max(by_node.items(), key=lambda item: len(item[1]))
    if len(names) > len(managers) // 2:
        problems.append(Problem(raw.vm_file, "/vms", f"{len(names)} of {len(managers)} swarm managers ({', '.join(names)}) "
                                f"are on Proxmox node {node!r}: losing that host loses the swarm's quorum "
                                "(spread them with proxmox_node)", "warning"))


def check_stack_references(raw: Raw, problems: list[Problem]) -> None:
    if not raw.stacks_dir.is_dir():
        return  # already reported; every reference would repeat it
    # An incomplete stack directory is reported where it is, not at each reference.
    known = set(raw.stack_dirs) | raw.incomplete_stacks
    if raw.vms is not None:
        for i, vm in raw.effective_vms():
            for j, name in enumerate(vm.get("docker_stacks", [])):
                if name not in known:
                    problems.append(Problem(raw.vm_file, pointer("vms", i, "docker_stacks", j), f"no stack {name!r} in {paths.display(raw.stacks_dir)}"))
    if raw.hypervisor is not None:
        name = raw.hypervisor["portainer"]["stack"]
        if name not in known:
            problems.append(Problem(raw.hv_file, "/portainer/stack", f"no stack {name!r} in {paths.display(raw.stacks_dir)}"))


def check_stacks(raw: Raw, problems: list[Problem]) -> None:
    swarm_vms = _swarm_vm_models(raw, problems)
    for name, manifest in raw.manifests.items():
        doc = raw.composes.get(name)
        if doc is None:
            continue
        mfile = raw.stack_dirs[name] / paths.STACK_MANIFEST_FILE
        cfile = raw.stack_dirs[name] / paths.STACK_COMPOSE_FILE
        services = compose.services(doc)
        for svc in manifest.get("services", {}):
            if svc not in services:
                problems.append(Problem(mfile, pointer("services", svc), f"no service {svc!r} in {paths.STACK_COMPOSE_FILE} (it has: {', '.join(services)})"))
        _check_variables(manifest, mfile, doc, problems)
        problems.extend(compose_schema.check_swarm(cfile, doc, _environments(name, manifest)))
        _check_name_lengths(raw, name, manifest, mfile, list(services), problems)
        if swarm_vms is not None:
            _check_placement(name, manifest, doc, mfile, cfile, swarm_vms, problems)


def _environments(stack: str, manifest: dict) -> dict[str, dict[str, str]]:
    """Each declared environment's variables as a deploy sees them (default merged under)."""
    envs = manifest.get("environments", {})
    default = envs.get("default", {}).get("variables", {})
    return {env: {**default, **spec.get("variables", {}), "PHOENIX_ENV": env, "PHOENIX_STACK": stack}
            for env, spec in envs.items()}


def _check_variables(manifest: dict, mfile: Path, doc: Any, problems: list[Problem]) -> None:
    needed = compose.variables_in(doc)
    if not needed:
        return
    envs = manifest.get("environments", {})
    if "default" not in envs:
        problems.append(Problem(mfile, "/environments/default", f"missing: {paths.STACK_COMPOSE_FILE} uses ${{{needed[0]}}}, and environments other than {sorted(envs) or 'none'} take their values from 'default'"))
    default = envs.get("default", {}).get("variables", {})
    for env, spec in envs.items():
        have = {**default, **spec["variables"]}
        for var in needed:
            if var not in have:
                problems.append(Problem(mfile, pointer("environments", env, "variables"), f"no value for ${{{var}}} used in {paths.STACK_COMPOSE_FILE} (environment {env!r})"))


def _check_name_lengths(raw: Raw, name: str, manifest: dict, mfile: Path, services: list[str], problems: list[Problem]) -> None:
    longest = max(services, key=len)
    for env in manifest.get("environments", {}):
        full = service_name(env, name, longest)
        if len(full) > MAX_SERVICE_NAME:
            problems.append(Problem(mfile, pointer("environments", env), f"swarm service name {full!r} would be {len(full)} characters; the limit is {MAX_SERVICE_NAME}"))
    hv = raw.hypervisor
    if hv is not None and hv["portainer"]["stack"] == name:
        full = service_name(hv["portainer"]["env"], name, longest)
        if len(full) > MAX_SERVICE_NAME:
            problems.append(Problem(raw.hv_file, "/portainer/env", f"swarm service name {full!r} would be {len(full)} characters; the limit is {MAX_SERVICE_NAME}"))
    if max_env_length(name, services) < 1:
        problems.append(Problem(mfile, "", f"stack name {name!r} with service {longest!r} leaves no room for an environment name within {MAX_SERVICE_NAME} characters"))


def _swarm_vm_models(raw: Raw, problems: list[Problem]) -> list[VM] | None:
    """The configured swarm VMs, or None when the VM file has errors (nothing to place on)."""
    if raw.vms is None or any(p.file == raw.vm_file and p.severity == "error" for p in problems):
        return None
    return [vm for vm in build_vms(raw.effective_vms()) if vm.in_swarm]


def _service_constraints(manifest: dict, svc_name: str, svc: Any, mfile: Path, cfile: Path,
                         problems: list[Problem] | None) -> list[tuple[Path, str, Constraint]]:
    """Every constraint a service is placed by (manifest stack-wide, manifest service,
    compose), with where it is written; one with a variable depends on the environment
    (checked at deploy time).  An unparsable one is reported when `problems` is given."""
    sources: list[tuple[Path, str, str]] = []
    for k, text in enumerate(manifest.get("placement_constraints", [])):
        sources.append((mfile, pointer("placement_constraints", k), text))
    for k, text in enumerate(manifest.get("services", {}).get(svc_name, {}).get("placement_constraints", [])):
        sources.append((mfile, pointer("services", svc_name, "placement_constraints", k), text))
    for k, text in compose.placement_constraints(svc):
        sources.append((cfile, pointer("services", svc_name, "deploy", "placement", "constraints", k), text))
    parsed = []
    for file, where, text in sources:
        if "$" in text:
            continue
        constraint = parse(text)
        if constraint is None:
            if problems is not None and file == cfile:
                problems.append(Problem(cfile, where, f"{text!r} is not a placement constraint (node.<attribute> == value, or !=)"))
            continue
        parsed.append((file, where, constraint))
    return parsed


def _check_placement(name: str, manifest: dict, doc: Any, mfile: Path, cfile: Path, vms: list[VM], problems: list[Problem]) -> None:
    for svc_name, svc in compose.services(doc).items():
        sources = _service_constraints(manifest, svc_name, svc, mfile, cfile, problems)
        culprits = first_unsatisfiable([c for _, _, c in sources], vms)
        if culprits:
            texts = [c.text for c in culprits]
            file, where, _ = next(s for s in sources if s[2].text == texts[0])
            what = f"constraint {texts[0]!r}" if len(texts) == 1 else "constraints " + " and ".join(repr(t) for t in texts) + " together"
            problems.append(Problem(file, where, f"stack {name!r}, service {svc_name!r}: no configured swarm VM satisfies {what}"))


def check_docker_stacks(raw: Raw, problems: list[Problem]) -> None:
    """A VM's `docker_stacks` are the stacks meant for it: each must be able to place at
    least one of its services on that VM (role and labels against the constraints),
    and the VM must be in the swarm.  sync-all deploys none of them (README)."""
    if raw.vms is None or any(p.file == raw.vm_file and p.severity == "error" for p in problems):
        return
    models = {vm.vmid: vm for vm in build_vms(raw.effective_vms())}
    for i, entry in raw.effective_vms():
        vm = models[entry["vmid"]]
        for j, name in enumerate(entry.get("docker_stacks", [])):
            where = pointer("vms", i, "docker_stacks", j)
            if not vm.in_swarm:
                problems.append(Problem(raw.vm_file, where, f"VM {vm.name!r} lists stack {name!r} but has no swarm_role: "
                                        "stacks run on the swarm, so it can run none"))
                continue
            manifest, doc = raw.manifests.get(name), raw.composes.get(name)
            if manifest is None or doc is None or any(p.file.parent == raw.stack_dirs[name] for p in problems):
                continue  # reported where the stack is
            mfile = raw.stack_dirs[name] / paths.STACK_MANIFEST_FILE
            cfile = raw.stack_dirs[name] / paths.STACK_COMPOSE_FILE
            fits = [svc_name for svc_name, svc in compose.services(doc).items()
                    if not first_unsatisfiable([c for _, _, c in _service_constraints(manifest, svc_name, svc, mfile, cfile, None)], [vm])]
            if not fits:
                problems.append(Problem(raw.vm_file, where, f"VM {vm.name!r} lists stack {name!r}, but no service of it can "
                                        f"be placed on this VM (role {vm.swarm_role}, labels {', '.join(f'{k}={v}' for k, v in vm.node_labels.items()) or 'none'})"))


def check_portainer(raw: Raw, problems: list[Problem]) -> None:
    """`portainer.images` pins an image per role, a role being a service of the Portainer
    stack (the pinned image replaces the compose file's); `portainer` is the server."""
    if raw.hypervisor is None:
        return
    settings = raw.hypervisor["portainer"]
    doc = raw.composes.get(settings["stack"])
    if doc is None:
        return  # no such stack, or it is invalid: reported where it is
    services = list(compose.services(doc))
    for role in settings["images"]:
        if role not in services:
            problems.append(Problem(raw.hv_file, pointer("portainer", "images", role),
                                    f"no service {role!r} in stack {settings['stack']!r} (it has: {', '.join(services)})"))
    if "portainer" not in services:
        problems.append(Problem(raw.hv_file, "/portainer/stack", f"stack {settings['stack']!r} has no service 'portainer' "
                                "(the Portainer server: Phoenix hands it the admin password and checks that it answers)"))


def check_availability(raw: Raw, problems: list[Problem]) -> None:
    """`availability` pins a swarm node's availability, so the VM must be in the swarm.  A
    pinned drain or pause that leaves a stack's service no other VM to run on is a warning
    (its tasks would stop, or never start); `swarm.drain` refuses the same on a live swarm."""
    if raw.vms is None or any(p.file == raw.vm_file and p.severity == "error" for p in problems):
        return
    models = build_vms(raw.effective_vms())
    for vm in models:
        if vm.availability and not vm.in_swarm:
            problems.append(Problem(raw.vm_file, pointer("vms", vm.index, "availability"),
                                    f"VM {vm.name!r} pins availability {vm.availability!r} but has no swarm_role: "
                                    "only a swarm node has an availability"))
    swarm = [vm for vm in models if vm.in_swarm]
    held = [vm for vm in swarm if vm.availability in ("drain", "pause")]
    active = [vm for vm in swarm if vm not in held]
    for name, manifest in raw.manifests.items() if held else ():
        doc = raw.composes.get(name)
        if doc is None:
            continue
        mfile = raw.stack_dirs[name] / paths.STACK_MANIFEST_FILE
        cfile = raw.stack_dirs[name] / paths.STACK_COMPOSE_FILE
        for svc_name, svc in compose.services(doc).items():
            constraints = [c for _, _, c in _service_constraints(manifest, svc_name, svc, mfile, cfile, None)]
            if first_unsatisfiable(constraints, swarm) or not first_unsatisfiable(constraints, active):
                continue  # unsatisfiable anyway (an error of its own), or an active VM can run it
            only = [vm for vm in held if not first_unsatisfiable(constraints, [vm])]
            pins = ", ".join(f"{vm.name} ({vm.availability})" for vm in only)
            problems.append(Problem(raw.vm_file, pointer("vms", only[0].index, "availability"),
                                    f"stack {name!r}, service {svc_name!r}: only VMs whose availability is pinned "
                                    f"to drain or pause satisfy its placement constraints ({pins}): its tasks "
                                    "would have no node to run on", "warning"))
