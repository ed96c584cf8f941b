"""One lab VM: read its facts, plan the actions that reach the desired state, apply.

Desired state of a running VM: namespace + veth on the bridge with the VM's IP and
default route; dockerd answering on its socket with hostname = VM name and running
with the current daemon.json; sshd on the VM's IP with the current config; every
stand-in image there, pulled from the lab registry with its digest (``mirror``).  A VM that is already
there yields no actions, so a second `lab.up` changes nothing.
"""

from __future__ import annotations

import json
import shutil
import signal
import socket
import time
from dataclasses import dataclass
from pathlib import Path

from phoenix_tasks.core.errors import PhoenixError
from phoenix_tasks.lab import commands, keys, procs, system
from phoenix_tasks.lab.images import StandIn, hub_name
from phoenix_tasks.lab.naming import INSIDE_IFACE, VMNames
from phoenix_tasks.core.model import VM
from phoenix_tasks.core.plan import LOCAL, Action

ENGINE_API_VERSION = "1.41"  # docker 20.10; newer engines still speak it
# Until a started VM's dockerd and sshd answer.  The wait ends as soon as both do; the
# bound matters only on a crowded machine: 20 lab VMs started at once on 2 cores once
# left one dockerd at "Starting up" for over 90 s (the 20-VM lab test, in CI), and it
# came up later in the same run.
READY_TIMEOUT_S = 180.0


class VMNotReady(PhoenixError):
    pass


@dataclass(frozen=True)
class Desired:
    """What one VM should be, from its config entry and the lab settings."""

    vm: VM
    bridge: str
    ssh_port: int
    sshd_config: str  # full text
    daemon_json: str  # full text (commands.daemon_config)


@dataclass(frozen=True)
class Facts:
    netns: bool
    veth: bool
    veth_master: str | None
    addresses: tuple[str, ...]
    eth0_up: bool
    lo_up: bool
    gateway: str | None
    host_key: bool
    sshd_config: str | None
    daemon_json: str | None  # what the running dockerd was started with (None: missing)
    dockerd_pid: int | None
    engine_name: str | None  # None: no answer on the socket
    sshd_pid: int | None
    sshd_listening: bool
    images: frozenset[str] | None = None  # None: not read (engine down)
    veth_up: bool = True  # the host end of the VM's link (taken down: the VM is cut off)


# --- facts ---------------------------------------------------------------------------
def engine_client(names: VMNames, timeout: float = 5):
    """A docker.APIClient on the VM's socket (the SDK is imported here: `inv --list` and
    `validate` load this module and should not pay for it)."""
    import docker
    return docker.APIClient(base_url=names.docker_host, version=ENGINE_API_VERSION,
                            timeout=timeout)


def engine_name(names: VMNames) -> str | None:
    """The engine's hostname (`docker info` Name), or None if it does not answer."""
    if not names.socket.exists():
        return None
    import docker.errors
    try:
        with engine_client(names) as client:
            return client.info().get("Name")
    except (docker.errors.DockerException, OSError, ValueError):
        return None


def engine_images(names: VMNames) -> dict[str, frozenset[str]] | None:
    """Each tag on the engine -> the RepoDigests of the image it names (None: the
    engine does not answer)."""
    import docker.errors
    try:
        with engine_client(names) as client:
            return {tag: frozenset(image.get("RepoDigests") or ())
                    for image in client.images() for tag in (image.get("RepoTags") or [])}
    except (docker.errors.DockerException, OSError, ValueError):
        return None


def ssh_answers(address: str, port: int, timeout: float = 1.0) -> bool:
    """True if an SSH server greets on address:port (a lab address only)."""
    try:
        with socket.create_connection((address, port), timeout=timeout) as conn:
            conn.settimeout(timeout)
            return conn.recv(8).startswith(b"SSH-")
    except OSError:
        return False


def dockerd_pid(names: VMNames) -> int | None:
    return procs.lab_pid(names.dockerd_pidfile, str(names.dockerd_pidfile))


def dockerd_died(names: VMNames) -> bool:
    """dockerd wrote its whole pid file, and that process is gone.  A pid file being
    written (empty for a moment, seen on a crowded machine) is not a death."""
    pid = procs.read_pidfile(names.dockerd_pidfile)
    return pid is not None and not procs.is_running(pid)


def sshd_pid(names: VMNames) -> int | None:
    return procs.lab_pid(names.sshd_pidfile, str(names.sshd_config))


def read_facts(names: VMNames, vm: VM, ssh_port: int) -> Facts:
    netns = names.netns_file.exists()
    veth = system.link_exists(names.veth)
    pid = dockerd_pid(names)
    spid = sshd_pid(names)
    return Facts(
        netns=netns,
        veth=veth,
        veth_master=system.link_master(names.veth) if veth else None,
        veth_up=veth and system.link_up(names.veth),
        addresses=tuple(system.netns_addresses(names.netns, INSIDE_IFACE)) if netns else (),
        eth0_up=netns and system.netns_link_up(names.netns, INSIDE_IFACE),
        lo_up=netns and system.netns_link_up(names.netns, "lo"),
        gateway=system.netns_default_gateway(names.netns) if netns else None,
        host_key=names.host_key.exists() and Path(f"{names.host_key}.pub").exists(),
        sshd_config=names.sshd_config.read_text() if names.sshd_config.exists() else None,
        daemon_json=names.daemon_json.read_text() if names.daemon_json.exists() else None,
        dockerd_pid=pid,
        engine_name=engine_name(names) if pid else None,
        sshd_pid=spid,
        sshd_listening=bool(spid) and ssh_answers(vm.address, ssh_port),
    )


# --- plan (pure) ---------------------------------------------------------------------
def network_argvs(names: VMNames, vm: VM, bridge: str, facts: Facts) -> list[tuple[str, list[str]]]:
    """(what, argv) for each network step still missing."""
    argvs = []
    if not facts.netns:
        argvs.append((f"add namespace {names.netns}", commands.netns_add(names)))
    if not facts.veth:
        argvs.append((f"add veth {names.veth}", commands.veth_add(names)))
    if not facts.veth or facts.veth_master != bridge:
        argvs.append((f"attach {names.veth} to {bridge}", commands.veth_attach(names, bridge)))
    elif not facts.veth_up:
        argvs.append((f"link {names.veth} was down: set it up", commands.link_up(names.veth)))
    if str(vm.network.ip) not in facts.addresses:
        argvs.append((f"address {vm.network.ip}", commands.inside_address(names, vm.network.ip)))
    if not facts.eth0_up:
        argvs.append((f"{INSIDE_IFACE} up", commands.inside_up(names, INSIDE_IFACE)))
    if not facts.lo_up:
        argvs.append(("lo up", commands.inside_up(names, "lo")))
    if facts.gateway != str(vm.network.gw):
        argvs.append((f"default route via {vm.network.gw}", commands.inside_default_route(names, vm.network.gw)))
    return argvs


def _act(vm: VM, kind: str, summary: str, argv=None) -> Action:
    """A lab action: runs on this machine, changes one lab VM.  argv None: done in
    Python by apply() (a key, a config file)."""
    return Action(kind=kind, where=LOCAL, summary=f"{vm}: {summary}",
                  argv=tuple(argv) if argv is not None else None, target=str(vm))


def plan(names: VMNames, desired: Desired, facts: Facts) -> list[Action]:
    """Actions that bring one VM from facts to desired (empty: nothing to change)."""
    vm = desired.vm
    actions = [_act(vm, "network", f"network: {what}", argv)
               for what, argv in network_argvs(names, vm, desired.bridge, facts)]
    if not facts.host_key:
        actions.append(_act(vm, "host-key", "generate SSH host key"))
    if facts.sshd_config != desired.sshd_config:
        actions.append(_act(vm, "sshd-config", "write sshd_config"))
    if facts.dockerd_pid is None:
        actions.append(_act(vm, "dockerd-start", "start dockerd",
                            commands.in_vm(names, vm.name, commands.dockerd(names))))
    elif facts.engine_name != vm.name or facts.daemon_json != desired.daemon_json:
        why = "does not answer" if facts.engine_name is None else \
            f"has hostname {facts.engine_name!r}" if facts.engine_name != vm.name else \
            "daemon.json changed"
        actions.append(_act(vm, "dockerd-restart", f"restart dockerd (pid {facts.dockerd_pid} {why})",
                            commands.in_vm(names, vm.name, commands.dockerd(names))))
    sshd_changed = facts.sshd_config != desired.sshd_config or not facts.host_key
    if facts.sshd_pid is None:
        actions.append(_act(vm, "sshd-start", f"start sshd on {vm.address}",
                            commands.in_vm(names, vm.name, commands.sshd(names))))
    elif sshd_changed or (not facts.sshd_listening and not any(a.kind == "network" for a in actions)):
        # an sshd that does not answer because the VM's network is down is not
        # restarted: the network is repaired first, and wait_ready checks sshd after
        actions.append(_act(vm, "sshd-restart", f"restart sshd (pid {facts.sshd_pid})",
                            commands.in_vm(names, vm.name, commands.sshd(names))))
    return actions


def image_actions(names: VMNames, vm: VM, stand_ins: list[StandIn],
                  present: dict[str, frozenset[str]], digests: dict[str, str]) -> list[Action]:
    """Pull each stand-in the registry has (digests: {image: digest}) unless the
    engine's image of that name has that digest already; import the others (names
    not on Docker Hub, which no mirror serves) where the tag is missing."""
    actions = []
    for s in stand_ins:
        hub = hub_name(s.image)
        if hub is not None and s.image in digests:
            if f"{hub.familiar_repository}@{digests[s.image]}" not in present.get(hub.familiar, ()):
                actions.append(_act(vm, "image-pull", f"pull stand-in image {s.image} "
                                    "(lab registry)", commands.image_pull(names, s.image)))
        elif s.image not in present:
            actions.append(_act(vm, "image", f"load stand-in image {s.image}",
                                commands.rootfs_import(names, s.image, s.changes())))
    return actions


# --- apply ---------------------------------------------------------------------------
def record(names: VMNames, vm: VM) -> None:
    """Write what this VM is made of before making it, so teardown finds it."""
    names.state_dir.mkdir(parents=True, exist_ok=True)
    keys.write_private(names.record_file, json.dumps({
        "vmid": vm.vmid, "name": vm.name, "ip": str(vm.network.ip),
        "netns": names.netns, "veth": names.veth, "run_dir": str(names.run_dir),
        "socket": str(names.socket), "cgroup_parent": names.cgroup_parent,
    }, indent=2) + "\n")


def apply(names: VMNames, desired: Desired, action: Action) -> None:
    if action.kind == "network":
        system.run(list(action.argv))
    elif action.kind == "host-key":
        keys.ensure_host_key(names)
    elif action.kind == "sshd-config":
        keys.write_private(names.sshd_config, desired.sshd_config)
        # Tested as the VM sees it: its /run holds sshd's privilege-separation dir.
        make_vm_dirs(names)
        test = system.run(commands.as_vm(names, desired.vm.name,
                                         commands.sshd_test_config(names)), check=False)
        if test.returncode != 0:
            lines = [line for line in test.stderr.splitlines() if line.strip()]
            raise VMNotReady(f"{desired.vm}: sshd rejects {names.sshd_config}: "
                             f"{lines[-1] if lines else f'exit status {test.returncode}'}")
    elif action.kind in ("dockerd-start", "dockerd-restart"):
        # (the argv was planned from the same names; the config file is written here)
        stop_dockerd(names)
        names.dockerd_pidfile.unlink(missing_ok=True)
        # dockerd reuses a containerd that its pid file names if that pid exists; a
        # killed one (possibly a zombie no init reaps) would make it wait forever.
        containerd_pidfile = names.exec_root / "containerd" / "containerd.pid"
        if procs.lab_pid(containerd_pidfile, str(names.exec_root)) is None:
            containerd_pidfile.unlink(missing_ok=True)
        make_vm_dirs(names)
        names.exec_root.mkdir(exist_ok=True)
        keys.write_private(names.daemon_json, desired.daemon_json)
        with open(names.dockerd_log, "ab") as log:
            log.write(f"--- phoenix lab: starting dockerd {time.ctime()}\n".encode())
        system.spawn(list(action.argv), names.dockerd_log)
    elif action.kind in ("sshd-start", "sshd-restart"):
        stop_sshd(names)
        names.sshd_pidfile.unlink(missing_ok=True)
        make_vm_dirs(names)
        system.spawn(list(action.argv), names.sshd_log)
    elif action.kind == "image":
        argv = list(action.argv)
        # The tar is the only input: `docker import -` reads it from stdin.
        system.run(argv, stdin_file=names.lab.rootfs_tar)
    elif action.kind == "image-pull":
        system.run(list(action.argv), timeout=300)
    else:  # pragma: no cover - plan() only makes the steps above
        raise ValueError(action.kind)


def make_vm_dirs(names: VMNames) -> None:
    """What commands.as_vm mounts in the VM's namespace must exist on the host: its
    run dir, its data root and the empty stage its /run is built in (the host's
    /var/lib/docker is the lab's, see var_lib_docker)."""
    names.run_dir.mkdir(parents=True, exist_ok=True)
    names.data_root.mkdir(mode=0o711, parents=True, exist_ok=True)
    names.run_stage.mkdir(mode=0o700, exist_ok=True)


def wait_ready(names: VMNames, vm: VM, ssh_port: int, timeout_s: float = READY_TIMEOUT_S) -> None:
    """Until the engine answers with the VM's hostname and sshd greets on the VM's IP."""
    deadline = time.monotonic() + timeout_s
    engine_ok = ssh_ok = False
    while time.monotonic() < deadline:
        engine_ok = engine_ok or engine_name(names) == vm.name
        ssh_ok = ssh_ok or (sshd_pid(names) is not None
                            and ssh_answers(vm.address, ssh_port, timeout=0.5))
        if engine_ok and ssh_ok:
            return
        if not engine_ok and dockerd_died(names):
            log = names.dockerd_log
            raise VMNotReady(f"{vm}: dockerd exited while starting; see {log}: {system.last_line(log)}")
        time.sleep(0.1)
    down = [what for what, ok in (("dockerd", engine_ok), ("sshd", ssh_ok)) if not ok]
    log = names.dockerd_log if not engine_ok else names.sshd_log
    raise VMNotReady(f"{vm}: {' and '.join(down)} not ready after {timeout_s:.0f} s; "
                     f"see {log}: {system.last_line(log)}")


# --- stop and destroy ----------------------------------------------------------------
def stop_dockerd(names: VMNames, grace_s: float = 20) -> None:
    pid = dockerd_pid(names)
    if pid:
        procs.stop([pid], grace_s)


def stop_sshd(names: VMNames) -> None:
    pid = sshd_pid(names)
    if pid:
        procs.stop([pid], 5)


def stop(names: VMNames) -> list[str]:
    """Stop sshd and dockerd (dockerd stops its containers), then end every process
    still in the VM's namespace and everything below them (shims, containers)."""
    done = []
    if sshd_pid(names):
        stop_sshd(names)
        done.append("stopped sshd")
    if dockerd_pid(names):
        stop_dockerd(names)
        done.append("stopped dockerd")
    leftovers = procs.with_descendants(procs.pids_in_netns(names.netns_file))
    if leftovers:
        procs.signal_pids(leftovers, signal.SIGKILL)
        left = procs.wait_gone(leftovers, 10)
        if left:
            raise PhoenixError(f"vmid {names.vmid}: processes {left} did not end")
        done.append(f"ended {len(leftovers)} leftover process(es)")
    return done


def destroy(names: VMNames) -> list[str]:
    """Remove everything of one VM: processes, mounts, namespace, veth, its state."""
    done = stop(names)
    for point in system.mounts_under(names.data_root, names.run_dir):
        if system.run(commands.umount(point), check=False).returncode != 0:
            system.run(commands.umount(point, lazy=True), check=False)
        done.append(f"unmounted {point}")
    if names.netns_file.exists() or names.netns in system.netns_names():
        system.run(commands.netns_delete(names))
        done.append(f"deleted namespace {names.netns}")
    if system.link_exists(names.veth):
        # Deleting the namespace already deletes the pair, asynchronously.
        if system.run(commands.link_delete(names.veth), check=False).returncode == 0:
            done.append(f"deleted veth {names.veth}")
    deadline = time.monotonic() + 5
    while system.link_exists(names.veth) and time.monotonic() < deadline:
        time.sleep(0.05)
    if system.link_exists(names.veth):
        raise PhoenixError(f"vmid {names.vmid}: veth {names.veth} does not go away")
    for cgroup in Path("/sys/fs/cgroup").glob(f"*/{names.cgroup_parent}"):
        _remove_cgroup(cgroup)
    for path in (names.run_dir, names.state_dir):
        if path.exists():
            shutil.rmtree(path)
            done.append(f"removed {path}")
    return done


def _remove_cgroup(path: Path) -> None:
    """rmdir a cgroup directory tree that no process uses any more (deepest first)."""
    for sub in sorted((p for p in path.rglob("*") if p.is_dir()),
                      key=lambda p: -len(p.parts)):
        try:
            sub.rmdir()
        except OSError:
            pass
    try:
        path.rmdir()
    except OSError:
        pass
