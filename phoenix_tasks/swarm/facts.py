"""Facts: what each VM's engine says about the swarm, read without changing anything.

Per VM one round trip (commands.facts(): `docker info` as JSON, and on a manager
every node, inspected, in the same command); a second round trip only when a manager's
node list could not be read with its info.  Nodes are identified by the node ID each
engine reports about itself, never by hostname.  Parsers are pure functions of the
recorded output.

After an apply, `read_facts(..., previous=, reread=)` reads again only the VMs a phase
changed (and the control manager, whose node list holds every label and role), keeping
the other engines' facts: a cold run reads every VM once, not once per phase.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from typing import Callable, Iterable, Mapping

from ..core.errors import PhoenixError
from ..core.model import VM, Config
from ..core.transport import Transport, Unreachable
from . import commands

# Engine states (docker info .Swarm.LocalNodeState), plus what we could not read.
UNREACHABLE = "unreachable"  # SSH failed
NO_ENGINE = "no-engine"  # SSH works, docker does not answer
INACTIVE = "inactive"
PENDING = "pending"
ACTIVE = "active"
LOCKED = "locked"
ERROR = "error"


@dataclass(frozen=True)
class EngineFacts:
    vm: VM
    state: str
    detail: str = ""  # why unreachable / no engine / error
    hostname: str | None = None
    node_id: str | None = None
    node_addr: str | None = None
    is_manager: bool = False  # ControlAvailable
    cluster_id: str | None = None  # only managers know it
    remote_managers: tuple[tuple[str, str], ...] = ()  # (node id, addr)
    # The swarm's settings, known only to an active manager (None elsewhere):
    default_addr_pool: tuple[str, ...] | None = None  # () = docker's default, 10.0.0.0/8
    subnet_size: int | None = None
    autolock: bool | None = None

    @property
    def known(self) -> bool:
        return self.state not in (UNREACHABLE, NO_ENGINE)


@dataclass(frozen=True)
class NodeFacts:
    id: str
    hostname: str
    role: str
    availability: str
    status: str  # ready / down / unknown
    addr: str
    labels: Mapping[str, str] = field(default_factory=dict)
    leader: bool = False
    reachability: str | None = None  # managers only
    version: int = 0
    platform_os: str = ""  # Description.Platform, for node.platform.* constraints
    platform_arch: str = ""
    engine_labels: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class ClusterFacts:
    engines: Mapping[int, EngineFacts]  # by vmid, every swarm VM of the config
    nodes: Mapping[str, NodeFacts] | None = None  # by node id, from `control`
    control: VM | None = None  # the manager the node list came from
    cluster_id: str | None = None  # our swarm
    problems: tuple[str, ...] = ()  # what could not be read beyond one VM

    def engine(self, vm: VM) -> EngineFacts:
        return self.engines[vm.vmid]

    def node_of(self, vm: VM) -> NodeFacts | None:
        e = self.engines.get(vm.vmid)
        if self.nodes is None or e is None or not e.node_id:
            return None
        return self.nodes.get(e.node_id)

    @property
    def swarm_settings(self) -> EngineFacts | None:
        """The control manager's facts, which hold the swarm's address pool, subnet
        size and autolock (security.py); None when no manager answers."""
        return self.engines[self.control.vmid] if self.control is not None else None

    @property
    def manager_addr(self) -> str | None:
        if self.control is None:
            return None
        addr = self.engines[self.control.vmid].node_addr
        return f"{addr}:{commands.SWARM_PORT}" if addr else None


def parse_info(vm: VM, stdout: str) -> EngineFacts:
    """Facts from `docker info --format '{{json .}}'` (recorded output in tests)."""
    try:
        info = json.loads(stdout)
    except json.JSONDecodeError:
        return EngineFacts(vm, NO_ENGINE, "docker info did not print JSON")
    server_errors = info.get("ServerErrors") or []
    swarm = info.get("Swarm")
    if server_errors or not isinstance(swarm, dict) or not info.get("ID", True):
        reason = "; ".join(server_errors) if server_errors else "no swarm section in docker info"
        return EngineFacts(vm, NO_ENGINE, reason)
    state = swarm.get("LocalNodeState") or INACTIVE
    cluster = swarm.get("Cluster") or {}
    remote = tuple(
        (m.get("NodeID", ""), m.get("Addr", "")) for m in (swarm.get("RemoteManagers") or [])
    )
    return EngineFacts(
        vm=vm,
        state=state,
        detail=swarm.get("Error") or "",
        hostname=info.get("Name"),
        node_id=swarm.get("NodeID") or None,
        node_addr=swarm.get("NodeAddr") or None,
        is_manager=bool(swarm.get("ControlAvailable")),
        cluster_id=cluster.get("ID") or None,
        remote_managers=remote,
        **_swarm_settings(cluster),
    )


def _swarm_settings(cluster: Mapping) -> dict:
    """Address pool, subnet size, autolock: in `docker info` of a manager only."""
    if not cluster.get("ID"):
        return {}
    encryption = (cluster.get("Spec") or {}).get("EncryptionConfig") or {}
    return {"default_addr_pool": tuple(cluster.get("DefaultAddrPool") or ()),
            "subnet_size": cluster.get("SubnetSize") or None,
            "autolock": bool(encryption.get("AutoLockManagers"))}


def parse_nodes(stdout: str) -> dict[str, NodeFacts]:
    """Nodes from `docker node inspect` (a JSON array)."""
    nodes = {}
    for n in json.loads(stdout or "[]"):
        spec = n.get("Spec") or {}
        status = n.get("Status") or {}
        manager = n.get("ManagerStatus") or {}
        nodes[n["ID"]] = NodeFacts(
            id=n["ID"],
            hostname=(n.get("Description") or {}).get("Hostname", ""),
            role=spec.get("Role", "worker"),
            availability=spec.get("Availability", "active"),
            status=status.get("State", "unknown"),
            addr=status.get("Addr", ""),
            labels=dict(spec.get("Labels") or {}),
            leader=bool(manager.get("Leader")),
            reachability=manager.get("Reachability"),
            version=(n.get("Version") or {}).get("Index", 0),
            platform_os=((n.get("Description") or {}).get("Platform") or {}).get("OS", ""),
            platform_arch=((n.get("Description") or {}).get("Platform") or {}).get("Architecture", ""),
            engine_labels=dict(((n.get("Description") or {}).get("Engine") or {}).get("Labels") or {}),
        )
    return nodes


def parse_facts(vm: VM, stdout: str) -> tuple[EngineFacts, dict[str, NodeFacts] | None]:
    """A VM's engine facts and, from a manager, the swarm's nodes (None: not listed)."""
    info, sep, listed = stdout.partition(commands.NODES_SEPARATOR)
    engine = parse_info(vm, info)
    if not sep or not listed.strip() or not engine.is_manager:
        return engine, None
    try:
        return engine, parse_nodes(listed)
    except (json.JSONDecodeError, KeyError, TypeError, AttributeError):
        return engine, None  # half a list (a node left mid-read): asked again with inspect_nodes()


def read_vm(transport: Transport, vm: VM) -> tuple[EngineFacts, dict[str, NodeFacts] | None]:
    """One round trip: the VM's engine facts, and the node list if it is a manager."""
    try:
        res = transport.run(vm, commands.facts(), mutating=False, check=False)
    except Unreachable as exc:
        return EngineFacts(vm, UNREACHABLE, str(exc).removeprefix(f"{vm}: ")), None
    if not res.ok:
        lines = (res.stderr or res.stdout).strip().splitlines()
        return EngineFacts(vm, NO_ENGINE, lines[-1] if lines else f"docker info exited {res.exited}"), None
    return parse_facts(vm, res.stdout)


def control_candidates(config: Config, engines: Mapping[int, EngineFacts]) -> list[VM]:
    """VMs whose engine is a swarm manager, configured managers first (config order)."""
    ordered = list(config.managers) + [vm for vm in config.swarm_vms if vm.swarm_role != "manager"]
    return [vm for vm in ordered if engines[vm.vmid].state == ACTIVE and engines[vm.vmid].is_manager]


def in_transition(e: EngineFacts) -> bool:
    """Not a state to plan from: read it again.
    - a manager whose engine reports control but no cluster: a demoted leader says so
      for about half a second;
    - `pending`: a `swarm init` or `join` under way (another run's, from another control
      machine: its first manager shows `pending` while it initialises).  Still pending
      after the settle time, it is a join that never finished (plan.py blocks it)."""
    return (e.state == ACTIVE and e.is_manager and not e.cluster_id) or e.state == PENDING


def read_facts(transport: Transport, config: Config, *, settle_s: float = 5.0,
               sleep: Callable[[float], None] = time.sleep, previous: ClusterFacts | None = None,
               reread: Iterable[VM] = ()) -> ClusterFacts:
    """Every swarm VM's engine in parallel (with a manager's node list in the same
    command), then, only if that list was not read, the node list from one manager.
    An engine in transition (in_transition) is read again (every 0.5 s, up to `settle_s`).

    With `previous`: only the VMs in `reread` and previous's control manager are read;
    the others keep their previous engine facts (an apply changed only those)."""
    if previous is None:
        wanted = list(config.swarm_vms)
    else:
        names = {vm.vmid for vm in reread} | ({previous.control.vmid} if previous.control else set())
        wanted = [vm for vm in config.swarm_vms if vm.vmid in names]
    results = transport.each(wanted, lambda vm: read_vm(transport, vm))
    engines = dict(previous.engines) if previous is not None else {}
    listed: dict[int, dict[str, NodeFacts]] = {}
    for vm in wanted:
        r = results[vm.name]
        engine, nodes = r if isinstance(r, tuple) else (EngineFacts(vm, UNREACHABLE, str(r)), None)
        engines[vm.vmid] = engine
        if nodes is not None:
            listed[vm.vmid] = nodes
    for _ in range(int(settle_s / 0.5)):
        moving = [e.vm for e in engines.values() if in_transition(e)]
        if not moving:
            break
        sleep(0.5)
        for vm in moving:
            engines[vm.vmid], nodes = read_vm(transport, vm)
            listed.pop(vm.vmid, None)
            if nodes is not None:
                listed[vm.vmid] = nodes
    problems = []
    fallback = None
    for vm in control_candidates(config, engines):
        nodes = listed.get(vm.vmid)
        if nodes is None:
            try:
                res = transport.run(vm, commands.inspect_nodes(), mutating=False)
                nodes = parse_nodes(res.stdout)
            except (PhoenixError, json.JSONDecodeError, KeyError) as exc:
                problems.append(f"{vm}: cannot list the swarm's nodes: {exc}")
                continue
        me = nodes.get(engines[vm.vmid].node_id or "")
        if me is None or me.role != "manager" or me.reachability not in (None, "reachable"):
            # Just demoted (its engine still says "control" for a moment): its own
            # list says otherwise.  Ask the next manager.
            fallback = fallback or ClusterFacts(engines, nodes, vm, engines[vm.vmid].cluster_id, tuple(problems))
            continue
        return ClusterFacts(engines, nodes, vm, engines[vm.vmid].cluster_id, tuple(problems))
    if fallback is not None:
        return fallback
    return ClusterFacts(engines, None, None, None, tuple(problems))
