"""`swarm.ps`: every task of one environment, as the manager knows it.

One fixed script reads, in one round trip: the manager's clock, the namespace's
services (full ID and name), every task swarm keeps of them (`docker inspect --type
task`: its history too, up to the swarm's task-history limit) and the nodes.  The
parser and the selection ("current tasks plus the last failed one of each slot") are
pure functions of that output."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Mapping, Sequence

from ..core.errors import PhoenixError
from ..swarm.facts import parse_nodes
from .commands import SEPARATOR, _script
from .facts import parse_time

READ_SCRIPT = "; ".join([
    "set -e",
    "date +%s%N",
    f"echo '{SEPARATOR}'",
    'ids=$(docker service ls -q --filter "label=com.docker.stack.namespace=$1")',
    'if [ -n "$ids" ]; then docker service inspect --format \'{{.ID}} {{.Spec.Name}}\' $ids; fi',
    f"echo '{SEPARATOR}'",
    'tasks=""',
    'if [ -n "$ids" ]; then tasks=$(docker service ps -q --no-trunc $ids); fi',
    'if [ -n "$tasks" ]; then docker inspect --type task $tasks; else echo "[]"; fi',
    f"echo '{SEPARATOR}'",
    "docker node inspect $(docker node ls -q)",
])

# A task is current while swarm still wants it (desired running, ready or complete);
# an older one is kept in the task history with desired state "shutdown".
CURRENT_DESIRED = frozenset({"new", "pending", "assigned", "accepted", "preparing", "ready", "starting",
                             "running", "complete"})
FAILED = frozenset({"failed", "rejected"})


def read_argv(namespace: str) -> list[str]:
    return _script(READ_SCRIPT, namespace)


@dataclass(frozen=True)
class TaskRow:
    id: str
    service: str
    slot: int | None  # None: a global service's task (one per node)
    node: str  # the node's hostname; "" while no node was chosen (pending)
    desired_state: str
    state: str
    state_since_ns: int | None  # when the current state was reached
    created_ns: int | None
    error: str  # why it was rejected or failed ("" when none)
    message: str  # swarm's own word for the state ("started", "no suitable node ...")
    image: str  # the reference the task runs, without its digest
    digest: str | None  # sha256:... when the task's image is pinned
    exit_code: int | None

    @property
    def current(self) -> bool:
        return self.desired_state in CURRENT_DESIRED

    @property
    def failed(self) -> bool:
        return self.state in FAILED

    @property
    def name(self) -> str:
        """The task's name as docker prints it: service.slot (or service.node for a global one)."""
        return f"{self.service}.{self.slot if self.slot is not None else self.node or '?'}"

    def age_s(self, now_ns: int) -> float | None:
        return None if self.state_since_ns is None else max(0.0, (now_ns - self.state_since_ns) / 1e9)

    def to_dict(self, now_ns: int) -> dict[str, Any]:
        age = self.age_s(now_ns)
        return {"id": self.id, "name": self.name, "service": self.service, "slot": self.slot, "node": self.node or None,
                "desired_state": self.desired_state, "state": self.state,
                "state_age_s": None if age is None else round(age, 1), "current": self.current,
                "error": self.error or None, "message": self.message or None,
                "image": self.image, "digest": self.digest, "exit_code": self.exit_code}


@dataclass(frozen=True)
class PsRead:
    now: int  # the manager's clock, ns since the epoch
    tasks: tuple[TaskRow, ...]


class PsUnreadable(PhoenixError):
    """The manager's answer is not what the read script prints."""


def _split_image(ref: str) -> tuple[str, str | None]:
    if "@" in ref:
        image, digest = ref.split("@", 1)
        return image, digest
    return ref, None


def parse_task(t: Mapping[str, Any], services: Mapping[str, str], nodes: Mapping[str, str]) -> TaskRow:
    status = t.get("Status") or {}
    spec = ((t.get("Spec") or {}).get("ContainerSpec") or {})
    image, digest = _split_image(spec.get("Image", ""))
    container = status.get("ContainerStatus") or {}
    node_id = t.get("NodeID") or ""
    slot = t.get("Slot")
    exit_code = container.get("ExitCode")
    return TaskRow(
        id=t.get("ID", ""),
        service=services.get(t.get("ServiceID", ""), t.get("ServiceID", "")[:12]),
        slot=slot if isinstance(slot, int) and slot > 0 else None,
        node=nodes.get(node_id, node_id[:12]),
        desired_state=t.get("DesiredState", ""),
        state=status.get("State", ""),
        state_since_ns=parse_time(status.get("Timestamp")),
        created_ns=parse_time(t.get("CreatedAt")),
        error=status.get("Err", "") or "",
        message=status.get("Message", "") or "",
        image=image, digest=digest,
        exit_code=exit_code if isinstance(exit_code, int) and status.get("State") in ("failed", "complete") else None,
    )


def parse_read(stdout: str) -> PsRead:
    parts = stdout.split(SEPARATOR)
    if len(parts) != 4:
        raise PsUnreadable(f"the manager's task list is not in the expected form ({len(parts)} parts)")
    clock, service_rows, task_json, node_json = parts
    try:
        now = int(clock.strip())
        tasks = json.loads(task_json or "[]")
        nodes = {nid: n.hostname for nid, n in parse_nodes(node_json).items()}
    except (ValueError, KeyError, TypeError) as exc:
        raise PsUnreadable(f"the manager's task list is not in the expected form: {exc}") from None
    services = dict(line.split(" ", 1) for line in service_rows.strip().splitlines() if " " in line)
    rows = [parse_task(t, services, nodes) for t in tasks]
    return PsRead(now, tuple(sort_rows(rows)))


def sort_rows(rows: Sequence[TaskRow]) -> list[TaskRow]:
    """By service, slot (or node), current first, then the newest first."""
    return sorted(rows, key=lambda r: (r.service, r.slot or 0, r.node if r.slot is None else "",
                                       not r.current, -(r.state_since_ns or 0)))


def current_and_last_failed(rows: Sequence[TaskRow]) -> list[TaskRow]:
    """The tasks swarm wants now, and for each slot (or node, for a global service) its
    most recent failed or rejected task among the older ones: why a slot restarts."""
    chosen, seen = [], set()
    for row in sort_rows(rows):
        if row.current:
            chosen.append(row)
            continue
        key = (row.service, row.slot if row.slot is not None else row.node)
        if row.failed and key not in seen:
            seen.add(key)
            chosen.append(row)
    return chosen


def to_json(namespace: str, manager: str, now_ns: int, rows: Sequence[TaskRow]) -> dict[str, Any]:
    return {"namespace": namespace, "read_from": manager, "tasks": [r.to_dict(now_ns) for r in rows]}


def age_text(seconds: float | None) -> str:
    """`12 s`, `5 min`, `3 h`, `2 d` (docker's 'x ago', shortened)."""
    if seconds is None:
        return "-"
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60)):
        if seconds >= size:
            return f"{int(seconds // size)} {unit}"
    return f"{int(seconds)} s"
