"""The whole lab: up, down and status.

`up` refuses before making anything (root, packages, config, subnet, bridge
ownership), records what it will make in the state dir, starts the lab registry, then
brings every VM up in parallel (the first one ready pushes the stand-in images to the
registry, every one pulls them).  `down` needs only the state dir: it is what cleans
up after a crash.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from phoenix_tasks.core.errors import PhoenixError
from phoenix_tasks.lab import (checks, commands, images, keys, mirror, private_registry, registry, registry_api,
                               system, var_lib_docker)
from phoenix_tasks.lab import vm as labvm
from phoenix_tasks.lab.naming import RUN_ROOT, VM_DOCKER_ROOT, LabNames, VMNames
from phoenix_tasks.core.model import VM, Config

RECORD_VERSION = 1
STATE_POINTER = "state_dir"  # in the lab's run dir
Report = Callable[[str], None]


class LabFailed(PhoenixError):
    """One or more VMs failed; the message names each with its reason."""


@dataclass(frozen=True)
class VMResult:
    vm: VM
    actions: tuple[str, ...]
    error: str | None = None


@dataclass(frozen=True)
class UpResult:
    lab_actions: tuple[str, ...]
    vms: tuple[VMResult, ...]
    seconds: float

    @property
    def changed(self) -> bool:
        return bool(self.lab_actions) or any(r.actions for r in self.vms)


@dataclass(frozen=True)
class RegistryStatus:
    address: str
    pid: int | None
    answers: bool

    @property
    def up(self) -> bool:
        return self.pid is not None and self.answers


@dataclass(frozen=True)
class VMStatus:
    vm: VM
    netns: str
    namespace: bool
    engine: bool
    sshd: bool
    link: bool = True  # the host end of its veth is up

    @property
    def up(self) -> bool:
        return self.namespace and self.engine and self.sshd


def names_for(config: Config) -> LabNames:
    lab = config.hypervisor.lab
    assert lab is not None
    return LabNames(lab.bridge, lab.state_dir)


def registry_address(config: Config) -> str:
    return registry.address(config.hypervisor.lab.gateway)


def desired_for(config: Config, names: LabNames, vm: VM) -> labvm.Desired:
    access = config.hypervisor.vm_access
    vnames = names.vm(vm.vmid)
    daemon = commands.daemon_config(vnames, system.dockerd_major_version(),
                                    registry_address(config))
    return labvm.Desired(
        vm=vm, bridge=names.bridge, ssh_port=access.port,
        sshd_config=keys.sshd_config_text(vnames, vm, access.port, access.user,
                                          names.authorized_keys),
        daemon_json=json.dumps(daemon, indent=2) + "\n")


def publisher_for(config: Config, names: LabNames, report: Report = lambda line: None
                  ) -> mirror.Publisher:
    """What pushes the stacks' stand-ins to the lab registry, once, for one bring-up."""
    return mirror.Publisher(names, registry_address(config),
                            images.stand_ins_for_stacks(config.stacks_dir), report)


# --- checks ---------------------------------------------------------------------------
def refuse_unless_runnable(config: Config) -> None:
    """Every refusal, before anything is made."""
    checks.require_root(os.geteuid())
    checks.require_packages(checks.missing_packages())
    problems = checks.config_problems(config)
    if problems:
        raise checks.LabRefused("the lab cannot run this configuration:\n  - "
                                + "\n  - ".join(problems))
    names = names_for(config)
    lab = config.hypervisor.lab
    recorded = read_record(names.state_dir)
    if recorded and recorded.get("bridge") != names.bridge:
        raise checks.LabRefused(
            f"state dir {names.state_dir} belongs to a lab on bridge "
            f"{recorded.get('bridge')!r}, not {names.bridge!r}; run `inv lab.down` with "
            "the old configuration first, or pick another state_dir")
    if system.link_exists(names.bridge) and not recorded:
        other = state_dir_of_bridge(names.bridge)
        hint = (f"it belongs to the lab recorded in {other}: remove that one with "
                f"`inv lab.down --state-dir {other}`, or pick another lab.bridge"
                if other else
                f"it is not this lab's: pick another lab.bridge, or remove it with "
                f"`ip link delete {names.bridge}` if it is left from an old lab")
        raise checks.LabRefused(f"interface {names.bridge!r} exists but is not recorded "
                                f"in {names.state_dir}; {hint}")
    checks.require_free_subnet(lab.subnet, checks.route_conflicts(
        lab.subnet, names.bridge, system.ipv4_routes(), system.ipv4_addresses()))
    docker_root = var_lib_docker.problem()
    if docker_root:
        raise checks.LabRefused(docker_root)


# --- state record ---------------------------------------------------------------------
def read_record(state_dir: Path) -> dict | None:
    try:
        return json.loads((state_dir / checks.RECORD_FILE).read_text())
    except (OSError, ValueError):
        return None


def write_record(config: Config, names: LabNames, made_var_lib_docker: bool = False) -> None:
    """lab.json; made_var_lib_docker: this lab made the host's /var/lib/docker (or
    is about to), so lab.down may remove it."""
    lab = config.hypervisor.lab
    names.state_dir.mkdir(parents=True, exist_ok=True)
    os.chmod(names.state_dir, 0o700)
    keys.write_private(names.record_file, json.dumps({
        "version": RECORD_VERSION, "bridge": names.bridge, "prefix": names.prefix,
        "subnet": str(lab.subnet), "gateway": str(lab.gateway),
        "run_dir": str(names.run_dir), "config_dir": str(config.config_dir),
        var_lib_docker.RECORD_KEY: made_var_lib_docker,
    }, indent=2) + "\n")
    # Which state dir owns this bridge: lets a later run find a lab whose config is lost.
    names.run_dir.mkdir(parents=True, exist_ok=True)
    (names.run_dir / STATE_POINTER).write_text(f"{names.state_dir}\n")


def state_dir_of_bridge(bridge: str) -> Path | None:
    """The state dir of the lab that made `bridge` (None if none recorded it)."""
    pointer = LabNames(bridge, Path("/")).run_dir / STATE_POINTER
    try:
        text = pointer.read_text().strip()
    except OSError:
        return None
    return Path(text) if text else None


def recorded_vmids(names: LabNames) -> list[int]:
    """VMs this lab made: those with a state dir, and namespaces with its prefix."""
    vmids = set()
    if names.vms_dir.is_dir():
        vmids |= {int(p.name) for p in names.vms_dir.iterdir() if p.name.isdigit()}
    for ns in system.netns_names():
        tail = ns.removeprefix(names.netns_prefix)
        if ns.startswith(names.netns_prefix) and tail.isdigit():
            vmids.add(int(tail))
    return sorted(vmids)


# --- up -----------------------------------------------------------------------------------
def ensure_bridge(config: Config, names: LabNames) -> list[str]:
    lab = config.hypervisor.lab
    done = []
    if not system.link_exists(names.bridge):
        system.run(commands.bridge_add(names.bridge))
        done.append(f"created bridge {names.bridge}")
    addresses = [f"{a['local']}/{a['prefixlen']}" for link in
                 system.ip_json(["-4", "addr", "show", "dev", names.bridge])
                 for a in link.get("addr_info", [])]
    if str(lab.gateway) not in addresses:
        system.run(commands.bridge_address(names.bridge, lab.gateway))
        done.append(f"gave {names.bridge} address {lab.gateway}")
    flags = system.ip_json(["link", "show", "dev", names.bridge])[0].get("flags", [])
    if "UP" not in flags:
        system.run(commands.link_up(names.bridge))
        done.append(f"set {names.bridge} up")
    return done


def up_vm(config: Config, names: LabNames, vm: VM, publisher: mirror.Publisher,
          report: Report, steps: tuple[str, ...] | None = None) -> VMResult:
    """Plan and apply one VM from its facts; `steps`: only those (create without
    starting), else everything, then wait until ready and pull the stand-in images
    (publishing them first, through this VM's engine, if no VM did yet)."""
    vnames = names.vm(vm.vmid)
    desired = desired_for(config, names, vm)
    done: list[str] = []
    try:
        labvm.record(vnames, vm)
        facts = labvm.read_facts(vnames, vm, desired.ssh_port)
        for action in labvm.plan(vnames, desired, facts):
            if steps is not None and action.kind not in steps:
                continue
            report(action.summary)
            labvm.apply(vnames, desired, action)
            done.append(action.summary)
        if steps is not None:
            return VMResult(vm, tuple(done))
        labvm.wait_ready(vnames, vm, desired.ssh_port)
        digests = publisher.digests(vnames)
        present = labvm.engine_images(vnames)
        if present is None:
            raise labvm.VMNotReady(f"{vm}: the engine stopped answering")
        for action in labvm.image_actions(vnames, vm, publisher.stand_ins, present, digests):
            report(action.summary)
            labvm.apply(vnames, desired, action)
            done.append(action.summary)
    except PhoenixError as e:
        text = str(e)
        return VMResult(vm, tuple(done), text if text.startswith(str(vm)) else f"{vm}: {text}")
    except Exception as e:  # one VM's failure must not hide the others' results
        return VMResult(vm, tuple(done), f"{vm}: {type(e).__name__}: {e}")
    return VMResult(vm, tuple(done))


def write_known_hosts(config: Config, names: LabNames, only_existing: bool = False) -> bool:
    """known_hosts with every VM's host key; True if the file changed.

    only_existing: skip VMs without a host key yet (a provider starting one VM)."""
    port = config.hypervisor.vm_access.port
    vms = [vm for vm in config.real_vms
           if not only_existing or names.vm(vm.vmid).host_key.exists()]
    text = keys.known_hosts_text([(vm.address, port, keys.host_public_key(names.vm(vm.vmid)))
                                  for vm in vms])
    if names.known_hosts.exists() and names.known_hosts.read_text() == text:
        return False
    keys.write_private(names.known_hosts, text)
    return True


def prepare(config: Config, names: LabNames, checked: bool = False) -> list[str]:
    """What every VM of the lab needs: checks (unless `checked`), state record, bridge,
    key, rootfs, the lab registry; idempotent."""
    if not checked:
        refuse_unless_runnable(config)
    done: list[str] = []
    recorded = read_record(names.state_dir)
    if recorded is None:
        done.append(f"recorded the lab in {names.state_dir}")
    # Recorded before it is made, and kept on every later run.
    made_docker_root = bool((recorded or {}).get(var_lib_docker.RECORD_KEY)) or var_lib_docker.missing()
    write_record(config, names, made_docker_root)
    if var_lib_docker.make():
        done.append(f"made {VM_DOCKER_ROOT} (empty): lab VMs mount their data root there")
    done += ensure_bridge(config, names)
    if keys.ensure_client_key(names):
        done.append(f"generated the lab's SSH key {names.private_key}")
    if not names.resolv_conf.exists() or names.resolv_conf.read_text() != commands.LAB_RESOLV_CONF:
        keys.write_private(names.resolv_conf, commands.LAB_RESOLV_CONF)
        done.append(f"wrote {names.resolv_conf} (no name server: lookups stay in the lab)")
    done += private_registry.ensure_files(names, config.hypervisor.lab.gateway.ip)
    if images.ensure_tls_pair(names.standin_cert, names.standin_key, system.run):
        done.append(f"made the stand-ins' TLS certificate {names.standin_cert}")
    parts = images.RootfsParts(checks.BUSYBOX, checks.OPENSSL,
                               images.openssl_libraries(checks.OPENSSL, system.run),
                               names.standin_cert, names.standin_key)
    if images.ensure_rootfs_tar(names.rootfs_tar, parts):
        done.append(f"built the stand-in rootfs {names.rootfs_tar}")
    done += registry.ensure(names, registry_address(config))
    done += private_registry.ensure_hub(names, config.hypervisor.lab.gateway.ip)
    return done


def up(config: Config, report: Report = lambda line: None) -> UpResult:
    """Create and start every non-template VM of a lab config; idempotent."""
    started = time.monotonic()
    refuse_unless_runnable(config)  # before anything, even naming: a proxmox config stops here
    names = names_for(config)
    publisher = publisher_for(config, names, report)  # reads the stacks: before anything is made
    lab_actions = prepare(config, names, checked=True)
    for line in lab_actions:
        report(line)
    wanted = {vm.vmid for vm in config.real_vms}
    for vmid in recorded_vmids(names):
        if vmid not in wanted:
            report(f"vmid {vmid}: no longer in the config: removing it")
            labvm.destroy(names.vm(vmid))
            lab_actions.append(f"removed vmid {vmid} (no longer in the config)")
    vms = config.real_vms
    with ThreadPoolExecutor(max_workers=max(1, len(vms))) as pool:
        results = tuple(pool.map(lambda vm: up_vm(config, names, vm, publisher, report), vms))
    lab_actions += publisher.take_done()
    failed = [r for r in results if r.error]
    if failed:
        raise LabFailed("lab.up failed for " + "; ".join(r.error for r in failed))
    if write_known_hosts(config, names):
        lab_actions.append(f"wrote {names.known_hosts}")
        report(f"wrote {names.known_hosts}")
    return UpResult(tuple(lab_actions), results, time.monotonic() - started)


# --- status -------------------------------------------------------------------------------
def registry_status(config: Config) -> RegistryStatus:
    """The lab registry: its process (by pid file and command line), and whether it
    answers on its address."""
    names = names_for(config)
    address = registry_address(config)
    pid = registry.pid(names)
    return RegistryStatus(address, pid, pid is not None and registry_api.answers(address))


def status(config: Config) -> list[VMStatus]:
    """Each non-template VM: namespace, engine (answers with its hostname), sshd."""
    return status_of(config, config.real_vms)


def status_of(config: Config, vms) -> list[VMStatus]:
    names = names_for(config)
    port = config.hypervisor.vm_access.port

    def one(vm: VM) -> VMStatus:
        v = names.vm(vm.vmid)
        namespace = v.netns_file.exists()
        engine = namespace and labvm.engine_name(v) == vm.name
        sshd = namespace and labvm.sshd_pid(v) is not None and labvm.ssh_answers(vm.address, port)
        link = namespace and system.link_up(v.veth)
        return VMStatus(vm, v.netns, namespace, engine, sshd, link)

    with ThreadPoolExecutor(max_workers=max(1, len(vms))) as pool:
        return list(pool.map(one, vms))


# --- down ---------------------------------------------------------------------------------
def down(state_dir: Path, bridge: str | None = None,
         report: Report = lambda line: None) -> list[str]:
    """Destroy every VM, the bridge and the state of the lab recorded in state_dir.

    bridge: the configured bridge, used when the record is missing (crash before it
    was written).  Twice in a row is fine: the second finds nothing to do."""
    checks.require_root(os.geteuid())
    record = read_record(state_dir)
    bridges = [b for b in {(record or {}).get("bridge"), bridge} if b]
    done: list[str] = []
    # The registry's paths are the state dir's alone (the bridge does not matter).
    for line in registry.remove(LabNames(bridges[0] if bridges else "", state_dir)):
        report(line)
        done.append(line)
    for line in private_registry.stop(LabNames(bridges[0] if bridges else "", state_dir), hub=True):
        report(line)
        done.append(line)
    for br in bridges:
        names = LabNames(br, state_dir)
        vmids = recorded_vmids(names)
        with ThreadPoolExecutor(max_workers=max(1, len(vmids))) as pool:
            for vmid, lines in zip(vmids, pool.map(lambda i: labvm.destroy(names.vm(i)), vmids)):
                for line in lines:
                    report(f"vmid {vmid}: {line}")
                done += [f"vmid {vmid}: {line}" for line in lines]
        if system.link_exists(br):
            if os.path.abspath(state_dir_of_bridge(br) or "") != os.path.abspath(state_dir):
                # Not made by this lab (its pointer names another state dir, or none):
                # an interface of other software, e.g. docker0, is never deleted.
                report(f"left interface {br} in place: this lab did not create it")
            else:
                system.run(commands.link_delete(br))
                report(f"deleted bridge {br}")
                done.append(f"deleted bridge {br}")
        if names.run_dir.exists():
            shutil.rmtree(names.run_dir)
        for path in (names.ssh_dir, names.image_dir, names.vms_dir, names.etc_docker, names.private_registry_dir):
            if path.exists():
                shutil.rmtree(path)
        names.record_file.unlink(missing_ok=True)
        names.resolv_conf.unlink(missing_ok=True)
        names.hosts_file.unlink(missing_ok=True)
    removed, line = var_lib_docker.remove_if_made(bool((record or {}).get(var_lib_docker.RECORD_KEY)))
    if line:
        report(line)
    if removed:
        done.append(line)
    for leftover in (state_dir, RUN_ROOT):
        try:
            leftover.rmdir()  # only when empty: never remove what the lab did not make
            done.append(f"removed {leftover}")
        except OSError:
            pass
    if state_dir.exists():
        report(f"left {state_dir} in place: it holds files the lab did not make")
    return done


def vm_names(config: Config, vmid: int) -> VMNames:
    return names_for(config).vm(vmid)
