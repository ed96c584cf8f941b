"""Environments at a glance: environment -> stacks -> services (running/desired) and
the deployed hash, from the services' Phoenix labels.  One round trip to a manager
(the same script `swarm.status` runs).  A stack deployed without Phoenix has no
environment label and is listed under "(not deployed by Phoenix)"."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field

from ..core.model import Config
from ..swarm import commands as swarm_commands
from ..core.transport import Transport
from .facts import on_a_manager
from ..docker.render import LABEL_ENV, LABEL_HASH, LABEL_STACK, STACK_NAMESPACE_LABEL

OUTSIDE = "(not deployed by Phoenix)"


@dataclass(frozen=True)
class EnvService:
    name: str
    mode: str
    running: int | None
    desired: int | None
    hash: str | None = None  # the hash of this service's own spec (its io.phoenix.hash label)


@dataclass
class EnvStack:
    stack: str
    namespace: str
    hash: str | None  # its first service's own hash (kept in --json for scripts); the document's is in the ledger
    services: list[EnvService] = field(default_factory=list)

    @property
    def converged(self) -> bool:
        return all(s.running is not None and s.running == s.desired for s in self.services)


@dataclass
class Environment:
    name: str
    stacks: list[EnvStack] = field(default_factory=list)

    def to_dict(self) -> dict:
        doc = asdict(self)
        for stack, st in zip(doc["stacks"], self.stacks):
            stack["converged"] = st.converged
        return doc


def _replicas(text: str) -> tuple[int | None, int | None]:
    first = (text or "").split(" ")[0]
    if "/" not in first:
        return None, None
    r, d = first.split("/", 1)
    return (int(r) if r.isascii() and r.isdigit() else None), (int(d) if d.isascii() and d.isdigit() else None)


def parse_environments(stdout: str) -> list[Environment]:
    """From `swarm.commands.services()` output: services' replicas and labels."""
    _, _, rest = stdout.partition(swarm_commands.SERVICES_SEPARATOR)
    service_part, _, label_part = rest.partition(swarm_commands.LABELS_SEPARATOR)
    labels = {}
    for line in label_part.splitlines():
        if line.strip():
            doc = json.loads(line)
            labels[doc["name"]] = doc.get("labels") or {}
    envs: dict[str, Environment] = {}
    for line in service_part.splitlines():
        if not line.strip():
            continue
        s = json.loads(line)
        name = s.get("Name", "")
        own = labels.get(name, {})
        namespace = own.get(STACK_NAMESPACE_LABEL)
        if not namespace:
            continue  # a service outside any stack
        env_name = own.get(LABEL_ENV) or OUTSIDE
        stack_name = own.get(LABEL_STACK) or namespace
        env = envs.setdefault(env_name, Environment(env_name))
        stack = next((st for st in env.stacks if st.namespace == namespace), None)
        if stack is None:
            stack = EnvStack(stack_name, namespace, own.get(LABEL_HASH))
            env.stacks.append(stack)
        running, desired = _replicas(s.get("Replicas", ""))
        stack.services.append(EnvService(name, s.get("Mode", ""), running, desired, own.get(LABEL_HASH)))
    for env in envs.values():
        env.stacks.sort(key=lambda st: st.stack)
        for st in env.stacks:
            st.services.sort(key=lambda sv: sv.name)
    return [envs[k] for k in sorted(envs, key=lambda n: (n == OUTSIDE, n))]


def read_environments(transport: Transport, config: Config) -> list[Environment]:
    _, res = on_a_manager(transport, config, swarm_commands.services())
    return parse_environments(res.stdout)
