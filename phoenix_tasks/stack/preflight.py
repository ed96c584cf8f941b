"""Pre-flight: what the cluster says *now* about a deploy, before anything changes.

- external networks (and configs, secrets) exist; external volumes exist on the
  manager (volumes are per node: a missing one is a warning naming that limit);
- every service's placement constraints match at least one ready, active node;
- a published port held by another stack or environment: ingress mode is an error
  (the port is cluster-wide), host mode a warning naming the nodes left.
Pure: a function of the rendered document and the facts read on a manager.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Mapping, Sequence

from ..docker.constraints import parse
from ..swarm.facts import NodeFacts
from .diff import Desired
from .facts import ClusterView
from ..docker.render import Rendered


@dataclass
class Preflight:
    errors: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    # service -> names of the ready, active nodes its constraints allow
    candidates: dict[str, list[str]] = field(default_factory=dict)
    # host-mode port collisions whose holders' nodes must be read: (service, port, holder)
    host_collisions: list[tuple[str, str, str]] = field(default_factory=list)


def ready_nodes(view: ClusterView) -> list[NodeFacts]:
    return [n for n in view.nodes.values() if n.status == "ready" and n.availability == "active"]


def candidates_for(constraints: Sequence[str], nodes: Sequence[NodeFacts]) -> list[NodeFacts]:
    parsed = [c for c in map(parse, constraints) if c is not None]
    return [n for n in nodes if all(c.matches(n) for c in parsed)]


def _external(rendered: Rendered, section: str) -> list[str]:
    out = []
    for key, spec in (rendered.document.get(section) or {}).items():
        if isinstance(spec, dict) and spec.get("external"):
            out.append(spec.get("name") or key)
    return out


def check(rendered: Rendered, desired: Mapping[str, Desired], view: ClusterView) -> Preflight:
    pre = Preflight()
    for name in _external(rendered, "networks"):
        if name not in view.networks:
            pre.errors.append(f"external network {name!r} does not exist (create it, e.g. "
                              f"`docker network create --driver overlay {name}`)")
    own = {o.name for o in rendered.objects}
    for section, present in (("configs", view.configs), ("secrets", view.secrets)):
        for name in _external(rendered, section):
            if name not in present and name not in own:
                pre.errors.append(f"external {section[:-1]} {name!r} does not exist")
    for name in _external(rendered, "volumes"):
        if name not in view.volumes:
            pre.warnings.append(f"external volume {name!r} is not on the manager; volumes are per node, "
                                f"so it must exist on every node its services can run on")
    nodes = ready_nodes(view)
    for svc in desired.values():
        fits = candidates_for(svc.constraints, nodes)
        pre.candidates[svc.name] = sorted(n.hostname for n in fits)
        if not fits:
            what = " and ".join(repr(c) for c in svc.constraints) or "(no constraint)"
            pre.errors.append(f"service {svc.name}: no ready, active node satisfies {what} "
                              f"(ready nodes: {', '.join(sorted(n.hostname for n in nodes)) or 'none'})")
    for svc in desired.values():
        for port in svc.ports:
            if port.published is None:
                continue
            for other in view.services.values():
                if other.name in desired or other.labels.get("com.docker.stack.namespace") == rendered.namespace:
                    continue
                for held in other.ports:
                    if (held.published, held.protocol) != (port.published, port.protocol):
                        continue
                    holder = f"{other.name} (stack {other.labels.get('com.docker.stack.namespace', '-')})"
                    if "ingress" in (held.mode, port.mode):
                        pre.errors.append(f"service {svc.name}: port {port.published}/{port.protocol} is already "
                                          f"published by {holder} in {held.mode} mode; an ingress port is "
                                          f"cluster-wide: give this environment another port")
                    else:
                        pre.host_collisions.append((svc.name, f"{port.published}/{port.protocol}", other.name))
    return pre


def host_collision_messages(pre: Preflight, desired: Mapping[str, Desired],
                            holder_nodes: Mapping[str, set[str]]) -> None:
    """Turn host-mode collisions into warnings (or an error when no node is left)."""
    for svc, port, holder in pre.host_collisions:
        taken = holder_nodes.get(holder, set())
        left = [n for n in pre.candidates.get(svc, []) if n not in taken]
        pre.candidates[svc] = left  # where it can run: a global service waits for these only
        on = ", ".join(sorted(taken)) or "no node yet"
        if not left:
            pre.errors.append(f"service {svc}: host-mode port {port} is held by {holder} on {on}, and no other "
                              f"node its constraints allow is free")
        else:
            want = desired[svc].replicas
            short = f" ({want} replicas wanted)" if want and want > len(left) else ""
            pre.warnings.append(f"service {svc}: host-mode port {port} is also published by {holder} (on {on}); "
                                f"the two cannot share a node: nodes left for it: {', '.join(left)}{short}")
