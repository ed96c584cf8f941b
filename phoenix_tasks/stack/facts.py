"""Facts of the stack flows: what a manager says about services, tasks, nodes,
networks, volumes, configs and secrets.  Parsers are pure functions of the recorded
output of the scripts in commands.py; readers run those scripts on a manager."""

from __future__ import annotations

import json
import re
from datetime import datetime
from dataclasses import dataclass, field
from typing import Any, Mapping

from ..core.errors import PhoenixError
from ..core.model import Config
from ..swarm.facts import NodeFacts, parse_nodes
from ..core.transport import RemoteCommandFailed, Transport, Unreachable
from . import commands
from ..docker.render import LABEL_HASH


class NoManager(PhoenixError):
    """No configured manager answered as a swarm manager."""


_RFC3339 = re.compile(r"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(?:\.(\d{1,9}))?(Z|[+-]\d\d:\d\d)")


def parse_time(text: str | None) -> int | None:
    """RFC 3339 with up to nanoseconds (the engine prints UTC "Z") -> ns since the epoch."""
    m = _RFC3339.fullmatch(text or "")
    if not m:
        return None
    zone = "+00:00" if m[3] == "Z" else m[3]
    base = datetime.fromisoformat(m[1] + zone)
    return int(base.timestamp()) * 1_000_000_000 + int((m[2] or "").ljust(9, "0"))


@dataclass(frozen=True)
class Port:
    published: int | None
    target: int
    protocol: str = "tcp"
    mode: str = "ingress"

    def __str__(self) -> str:
        pub = f"{self.published}:" if self.published else ""
        return f"{pub}{self.target}/{self.protocol} ({self.mode})"


@dataclass(frozen=True)
class ServiceShape:
    """A service as the diff compares it: the same type for what the rendered document
    wants (diff.Desired) and what runs (ServiceFacts), compared field by field."""

    name: str
    image: str
    mode: str  # replicated | global
    replicas: int | None
    constraints: tuple[str, ...]
    env: tuple[str, ...]
    ports: tuple[Port, ...]
    configs: tuple[str, ...]
    secrets: tuple[str, ...]
    restart_condition: str  # any | on-failure | none


@dataclass(frozen=True)
class ServiceFacts(ServiceShape):
    id: str
    labels: Mapping[str, str]
    created_at: int | None
    updated_at: int | None
    update_state: str | None
    update_started_at: int | None
    update_message: str
    task_template: Mapping[str, Any] = field(default_factory=dict, compare=False)

    @property
    def hash(self) -> str | None:
        return self.labels.get(LABEL_HASH)


def _ports(items) -> tuple[Port, ...]:
    return tuple(sorted(
        (Port(p.get("PublishedPort"), p.get("TargetPort", 0), p.get("Protocol", "tcp"),
              p.get("PublishMode", "ingress")) for p in items or []),
        key=lambda p: (p.published or 0, p.target, p.protocol)))


def parse_service(s: Mapping[str, Any]) -> ServiceFacts:
    spec = s.get("Spec") or {}
    tt = spec.get("TaskTemplate") or {}
    cs = tt.get("ContainerSpec") or {}
    mode = spec.get("Mode") or {}
    update = s.get("UpdateStatus") or {}
    return ServiceFacts(
        id=s["ID"],
        name=spec.get("Name", ""),
        labels=dict(spec.get("Labels") or {}),
        image=cs.get("Image", ""),
        mode="global" if "Global" in mode else "replicated",
        replicas=(mode.get("Replicated") or {}).get("Replicas") if "Replicated" in mode else None,
        constraints=tuple(sorted((tt.get("Placement") or {}).get("Constraints") or [])),
        env=tuple(sorted(cs.get("Env") or [])),
        ports=_ports((spec.get("EndpointSpec") or {}).get("Ports")),
        configs=tuple(sorted(c.get("ConfigName", "") for c in cs.get("Configs") or [])),
        secrets=tuple(sorted(c.get("SecretName", "") for c in cs.get("Secrets") or [])),
        restart_condition=(tt.get("RestartPolicy") or {}).get("Condition", "any"),
        created_at=parse_time(s.get("CreatedAt")),
        updated_at=parse_time(s.get("UpdatedAt")),
        update_state=update.get("State"),
        update_started_at=parse_time(update.get("StartedAt")),
        update_message=update.get("Message", ""),
        task_template=tt,
    )


def parse_services(stdout: str) -> dict[str, ServiceFacts]:
    """Services by name from `docker service inspect` (a JSON array)."""
    return {f.name: f for f in map(parse_service, json.loads(stdout or "[]"))}


PAUSED_UPDATE_STATES = ("paused", "rollback_paused")
IN_PROGRESS_UPDATE_STATES = ("updating", "rollback_started")


@dataclass(frozen=True)
class StackRead:
    """What the deploy reads first (commands.STACK_SERVICES_SCRIPT): the namespace's
    services, and their replicas running/desired as `docker service ls` counts them."""

    services: Mapping[str, ServiceFacts]
    replicas: Mapping[str, str] = field(default_factory=dict)  # service name -> "1/2"

    def behind(self) -> dict[str, str]:
        """Services whose running replicas are not the desired ones: name -> "r/d"."""
        out = {}
        for name, text in self.replicas.items():
            running, _, desired = text.partition("/")
            if running != desired:
                out[name] = text
        return out

    def in_progress(self) -> dict[str, str]:
        """Services Swarm is still updating (or rolling back), whatever their replica
        counts say (a rolling update has old and new tasks running), and those whose
        update Swarm paused while their old tasks still run all replicas (`start-first`,
        or a paused batch): name -> "r/d, update <state>".  A rerun waits for them and
        reports what it finds; it never says "no changes" while the spec is not what runs."""
        return {name: f"{self.replicas.get(name, '?')}, update {s.update_state}"
                for name, s in sorted(self.services.items())
                if s.update_state in IN_PROGRESS_UPDATE_STATES + PAUSED_UPDATE_STATES}

    def paused(self) -> dict[str, str]:
        """Behind services whose last update Swarm paused (a task of it failed): Swarm
        starts no task for them again by itself, even once the cause is gone (a disk
        freed, an image pushed): name -> "r/d"."""
        return {name: rd for name, rd in self.behind().items()
                if name in self.services and self.services[name].update_state in PAUSED_UPDATE_STATES}


def parse_stack_read(stdout: str) -> StackRead:
    inspect, _, rows = stdout.partition(commands.SEPARATOR)
    services = parse_services(inspect)
    by_id = {s.id: name for name, s in services.items()}
    replicas = {}
    for line in rows.splitlines():
        ident, _, text = line.strip().partition(" ")
        name = by_id.get(ident) or next((n for i, n in by_id.items() if i.startswith(ident) and ident), None)
        if name and text:
            replicas[name] = text.split(" ")[0]  # "3/3 (max 1 per node)" -> "3/3"
    return StackRead(services, replicas)


@dataclass(frozen=True)
class TaskFacts:
    id: str
    service_id: str
    slot: int | None
    node_id: str
    state: str  # new pending assigned ... running complete failed rejected shutdown
    desired_state: str
    error: str
    exit_code: int | None
    created_at: int | None
    since: int | None = None  # when it entered its current state (Status.Timestamp)
    spec: Mapping[str, Any] = field(default_factory=dict, compare=False)


def parse_tasks(stdout: str) -> list[TaskFacts]:
    tasks = []
    for t in json.loads(stdout or "[]"):
        status = t.get("Status") or {}
        tasks.append(TaskFacts(
            id=t["ID"], service_id=t.get("ServiceID", ""), slot=t.get("Slot"), node_id=t.get("NodeID", ""),
            state=status.get("State", ""), desired_state=t.get("DesiredState", ""),
            error=status.get("Err", "") or "",
            exit_code=(status.get("ContainerStatus") or {}).get("ExitCode"),
            created_at=parse_time(t.get("CreatedAt")), since=parse_time(status.get("Timestamp")),
            spec=t.get("Spec") or {},
        ))
    return tasks


@dataclass(frozen=True)
class Progress:
    """One read of a namespace during the wait."""

    services: Mapping[str, ServiceFacts]
    tasks: tuple[TaskFacts, ...]
    now: int | None = None  # the manager's clock at the read, ns
    node_names: Mapping[str, str] = field(default_factory=dict)  # node ID -> hostname (empty: not read)
    # Hostname -> how many nodes of that name are ready and active now (None: not read).
    # A node that left (a rejoin) stays "ready" for some seconds, then "down".
    ready_hosts: Mapping[str, int] | None = None


def parse_progress(stdout: str) -> Progress:
    clock, _, rest = stdout.partition(commands.SEPARATOR)
    services, _, tasks = rest.partition(commands.SEPARATOR)
    tasks, _, nodes = tasks.partition(commands.SEPARATOR)
    now = clock.strip()
    node_names, ready_hosts = parse_node_rows(nodes)
    return Progress(parse_services(services), tuple(parse_tasks(tasks)),
                    int(now) if now.isascii() and now.isdigit() else None, node_names, ready_hosts)


def parse_node_rows(text: str) -> tuple[dict[str, str], dict[str, int] | None]:
    """`ID STATUS AVAILABILITY HOSTNAME` rows: (node ID -> hostname, hostname -> nodes
    ready and active), the second None when no row was read."""
    names: dict[str, str] = {}
    ready: dict[str, int] = {}
    for line in text.splitlines():
        parts = line.split(None, 3)
        if len(parts) != 4:
            continue
        node_id, status, availability, hostname = parts
        names[node_id] = hostname
        if status.lower() == "ready" and availability.lower() == "active":
            ready[hostname] = ready.get(hostname, 0) + 1
    return names, (ready if names else None)


def _json_lines(text: str) -> list[dict]:
    return [json.loads(line) for line in text.splitlines() if line.strip()]


@dataclass(frozen=True)
class ClusterView:
    """What the pre-flight checks read from a manager."""

    cli_version: str
    now: int | None  # the manager's clock when read (ns): the deploy starts after it
    nodes: Mapping[str, NodeFacts]
    services: Mapping[str, ServiceFacts]
    networks: Mapping[str, Mapping[str, str]]  # by name: Driver, Scope, ID
    volumes: frozenset[str]  # on the manager only: volumes are per node
    configs: frozenset[str]
    secrets: frozenset[str]


def parse_preflight(stdout: str) -> ClusterView:
    parts = stdout.split(commands.SEPARATOR)
    if len(parts) != 7:
        raise ValueError(f"expected 7 sections from the pre-flight read, got {len(parts)}")
    head, nodes, services, networks, volumes, configs, secrets = parts
    version, _, clock = head.strip().partition("\n")
    return ClusterView(
        cli_version=version.strip(),
        now=int(clock.strip()) if clock.strip().isdigit() else None,
        nodes=parse_nodes(nodes),
        services=parse_services(services),
        networks={n["Name"]: n for n in _json_lines(networks)},
        volumes=frozenset(v["Name"] for v in _json_lines(volumes)),
        configs=frozenset(c["Name"] for c in _json_lines(configs)),
        secrets=frozenset(s["Name"] for s in _json_lines(secrets)),
    )


NOT_A_MANAGER = ("not a swarm manager", "This node is not a swarm manager", "not part of a swarm")


def on_a_manager(transport: Transport, config: Config, argv, *, mutating: bool = False, stdin=None):
    """Run `argv` on the first configured manager that answers as a swarm manager
    (configured order); returns (that VM, result).  One round trip when the first
    manager is fine.  Raises NoManager naming why each manager was passed over."""
    why = []
    for vm in config.managers:
        try:
            res = transport.run(vm, argv, mutating=mutating, check=False, stdin=stdin)
        except Unreachable as exc:
            why.append(str(exc))
            continue
        if res.ok:
            return vm, res
        text = (res.stderr or res.stdout).strip()
        if any(marker in text for marker in NOT_A_MANAGER):
            why.append(f"{vm}: not a swarm manager")
            continue
        raise RemoteCommandFailed(vm, res.display, res.exited, res.stderr or res.stdout)
    raise NoManager("no configured manager answers as a swarm manager (" + "; ".join(why) +
                    "): run `inv sync-all` or `inv swarm.init` first")
