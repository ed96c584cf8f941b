"""The cluster as configured vs as it is: one document for the table and for --json."""

from __future__ import annotations

import dataclasses
import json
from dataclasses import asdict, dataclass, field

from ..core.errors import PhoenixError
from ..core.model import Config
from ..stack.envs import parse_environments
from ..core.transport import Transport
from ..swarm import commands
from ..swarm.facts import ClusterFacts, NodeFacts, read_facts
from ..swarm.plan import MEMBER, NO_SWARM, WRONG_ROLE, classify, label_diff, no_manager_reason
from ..swarm.security import read_key_file, status_fields
from ..swarm import quorum, unclaimed


@dataclass(frozen=True)
class NodeStatus:
    vmid: int
    name: str
    address: str
    role: str  # configured role
    actual_role: str | None
    state: str  # member / wrong-role / inactive / foreign / unreachable / no-engine / pending / locked / error
    node_status: str | None  # ready / down (from the manager)
    availability: str | None
    reachable: bool
    leader: bool
    node_id: str | None
    labels: dict[str, str]
    label_drift: dict[str, dict] = field(default_factory=dict)  # {"add": {...}, "remove": [...]}
    detail: str = ""
    pinned_availability: str | None = None  # the config's `availability` (None: active is healthy)

    @property
    def healthy(self) -> bool:
        return (self.state == MEMBER and self.node_status == "ready"
                and self.availability == (self.pinned_availability or "active"))


@dataclass(frozen=True)
class ServiceStatus:
    name: str
    desired: int | None
    running: int | None
    mode: str


@dataclass(frozen=True)
class StackStatus:
    name: str
    services: list[ServiceStatus]


@dataclass(frozen=True)
class OtherNode:
    """A node of the swarm that no configured VM is (stale after a rejoin, or added by hand)."""

    node_id: str
    hostname: str
    role: str
    status: str
    kind: str = ""  # unclaimed.py: not-in-config / stale (a prune removes it) / undecided
    detail: str = ""


@dataclass(frozen=True)
class ClusterStatus:
    nodes: list[NodeStatus]
    stacks: list[StackStatus]
    leader: str | None
    manager: str | None  # the VM the cluster was read from
    cluster_id: str | None
    problems: list[str]
    other_nodes: list[OtherNode] = field(default_factory=list)
    environments: list = field(default_factory=list)  # stack.envs.Environment
    # The swarm's own settings, from the control manager (security.py); None: not read.
    default_addr_pool: list[str] | None = None  # docker's default included: never empty
    subnet_size: int | None = None
    autolock: bool | None = None
    autolock_key_file: str | None = None  # the key file's state, in words (never its content)
    warnings: list[str] = field(default_factory=list)  # init-only drift, autolock without its key
    quorum: dict | None = None  # quorum.Quorum.to_dict(): managers, reachable, needed, tolerates, even

    @property
    def degraded(self) -> bool:
        return not self.nodes or self.manager is None or any(not n.healthy for n in self.nodes)

    def to_json(self) -> str:
        doc = asdict(self)
        doc["degraded"] = self.degraded
        doc["environments"] = [e.to_dict() for e in self.environments]
        return json.dumps(doc, indent=2, sort_keys=False)


def parse_services(stdout: str) -> list[StackStatus]:
    """Stacks and their services from `commands.services()`: the JSON lines of
    `docker stack ls`, the separator, the JSON lines of `docker service ls`.  A service
    belongs to the longest stack name that prefixes it as `STACK_`."""
    stack_part, _, service_part = stdout.partition(commands.SERVICES_SEPARATOR)
    service_part = service_part.partition(commands.LABELS_SEPARATOR)[0]
    names = sorted((json.loads(line)["Name"] for line in stack_part.splitlines() if line.strip()),
                   key=len, reverse=True)
    stacks: dict[str, list[ServiceStatus]] = {name: [] for name in names}
    for line in service_part.splitlines():
        if not line.strip():
            continue
        s = json.loads(line)
        name = s.get("Name", "")
        stack = next((n for n in names if name.startswith(n + "_")), "(no stack)")
        running, desired = None, None
        replicas = (s.get("Replicas") or "").split(" ")[0]
        if "/" in replicas:
            r, d = replicas.split("/", 1)
            running, desired = (int(r) if r.isdigit() else None), (int(d) if d.isdigit() else None)
        stacks.setdefault(stack, []).append(ServiceStatus(name, desired, running, s.get("Mode", "")))
    return [StackStatus(k, sorted(v, key=lambda s: s.name)) for k, v in sorted(stacks.items())]


def _node_of_unread_vm(config: Config, facts: ClusterFacts, vm) -> NodeFacts | None:
    """The node of a configured VM whose engine cannot be read (so it names no node ID):
    the one node no engine claims with the VM's hostname or address, if exactly one."""
    if facts.nodes is None or facts.engine(vm).known:
        return None
    claimed = {e.node_id for e in facts.engines.values() if e.node_id}
    found = [n for n in facts.nodes.values() if n.id not in claimed
             and (n.hostname == vm.name or n.addr == vm.address)]
    ready = [n for n in found if n.status != "down"]
    found = ready if len(ready) == 1 else found  # a stale entry left by a rejoin is not it
    return found[0] if len(found) == 1 else None


def build_status(config: Config, facts: ClusterFacts, stacks: list[StackStatus]) -> ClusterStatus:
    classes = classify(config, facts)
    nodes = []
    leader = None
    for vm in config.swarm_vms:
        c = classes[vm.vmid]
        node = c.node if c.kind in (MEMBER, WRONG_ROLE) else None
        unread = _node_of_unread_vm(config, facts, vm)  # its engine is unknown; the manager knows its node
        if unread is not None:
            nodes.append(NodeStatus(
                vmid=vm.vmid, name=vm.name, address=vm.address, role=vm.swarm_role, actual_role=unread.role,
                state=c.kind, node_status=unread.status, availability=unread.availability, reachable=False,
                leader=unread.leader, node_id=unread.id, labels=dict(unread.labels),
                detail=c.detail, pinned_availability=vm.availability))
            continue
        drift = {}
        if node is not None:
            add, remove = label_diff(node.labels, vm.node_labels, config.hypervisor.swarm.label_policy)
            if add:
                drift["add"] = add
            if remove:
                drift["remove"] = remove
            if node.leader:
                leader = vm.name
        e = facts.engine(vm)
        nodes.append(NodeStatus(
            vmid=vm.vmid, name=vm.name, address=vm.address, role=vm.swarm_role, actual_role=c.actual_role,
            state=c.kind, node_status=node.status if node else None,
            availability=node.availability if node else None,
            reachable=e.known, leader=bool(node and node.leader), node_id=e.node_id,
            labels=dict(node.labels) if node else {}, label_drift=drift,
            detail=c.detail if c.kind not in (MEMBER, WRONG_ROLE, NO_SWARM) else "",
            pinned_availability=vm.availability,
        ))
    claimed = {n.node_id for n in nodes if n.node_id}
    kinds = {u.node.id: u for u in unclaimed.find(config, facts)}
    others = [OtherNode(n.id, n.hostname, n.role, n.status, kinds[n.id].kind if n.id in kinds else "",
                        kinds[n.id].detail if n.id in kinds else "")
              for n in (facts.nodes or {}).values() if n.id not in claimed]
    problems = list(facts.problems)
    if facts.control is None and no_manager_reason(config, classes):
        problems.append(no_manager_reason(config, classes))
    return ClusterStatus(nodes, stacks, leader, facts.control.name if facts.control else None,
                         facts.cluster_id, problems, sorted(others, key=lambda o: (o.hostname, o.node_id)),
                         quorum=quorum.of_nodes(facts.nodes.values()).to_dict() if facts.nodes else None)


def read_status(transport: Transport, config: Config) -> ClusterStatus:
    facts = read_facts(transport, config)
    stacks: list[StackStatus] = []
    environments = []
    problems = []
    if facts.control is not None:
        try:
            res = transport.run(facts.control, commands.services(), mutating=False)
            stacks = parse_services(res.stdout)
            environments = parse_environments(res.stdout)
        except (PhoenixError, ValueError) as exc:
            problems.append(f"cannot list services: {exc}")
    status = build_status(config, facts, stacks)
    key = read_key_file(config.hypervisor.swarm.autolock_key_file)
    status = dataclasses.replace(status, **status_fields(config, facts, key))
    status.problems.extend(problems)
    status.environments.extend(environments)
    return status
