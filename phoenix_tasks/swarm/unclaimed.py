"""Swarm nodes that no configured VM claims, and whether a prune may remove them.

A configured VM claims the node ID its own engine reports (never a hostname).  Every
other node of the swarm is one of:
- `not-in-config`: no configured swarm VM has its hostname (a VM taken out of the
  config, or a machine joined by hand): a prune drains it, demotes it and removes it;
- `stale`: down, and a ready node now has its hostname: the entry a leave and rejoin
  leaves behind; a prune removes it;
- `undecided`: it has a configured VM's hostname but is not stale (that VM's engine
  could not be read, or the VM is out of the swarm, or a second machine answers to
  that hostname): never pruned, only named.
Pure: a function of the config and the facts.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..core.model import Config
from .facts import ClusterFacts, NodeFacts

NOT_IN_CONFIG, STALE, UNDECIDED = "not-in-config", "stale", "undecided"


@dataclass(frozen=True)
class Unclaimed:
    node: NodeFacts
    kind: str
    detail: str

    @property
    def prunable(self) -> bool:
        return self.kind in (NOT_IN_CONFIG, STALE)

    def __str__(self) -> str:
        n = self.node
        return f"node {n.hostname} {n.id[:12]} ({n.role}, {n.status}, {n.availability})"


def find(config: Config, facts: ClusterFacts) -> list[Unclaimed]:
    """Every node no configured VM claims, by hostname then ID (none without a node list)."""
    if facts.nodes is None:
        return []
    claimed = {e.node_id: vmid for vmid, e in facts.engines.items() if e.node_id}
    by_name = {vm.name: vm for vm in config.swarm_vms}
    out = []
    for node in sorted(facts.nodes.values(), key=lambda n: (n.hostname, n.id)):
        if node.id in claimed:
            continue
        vm = by_name.get(node.hostname)
        if vm is None:
            out.append(Unclaimed(node, NOT_IN_CONFIG, "no configured swarm VM has this hostname"))
            continue
        current = [n for n in facts.nodes.values()
                   if n.id != node.id and n.hostname == node.hostname and n.status == "ready"]
        if node.status == "down" and current:
            out.append(Unclaimed(node, STALE, f"left behind by a rejoin: {node.hostname} is now node "
                                              f"{current[0].id[:12]}"))
            continue
        engine = facts.engines[vm.vmid]
        if not engine.known:
            why = f"hostname of {vm}, whose engine could not be read ({engine.state}): left alone"
        elif engine.node_id:
            why = (f"hostname of {vm}, whose engine is node {engine.node_id[:12]} (a second machine with "
                   f"that hostname?): left alone")
        else:
            why = (f"hostname of {vm}, which is not in the swarm now ({engine.state}): left alone; once it "
                   f"rejoins, this entry is stale")
        out.append(Unclaimed(node, UNDECIDED, why))
    return out


def warnings(found: list[Unclaimed]) -> list[str]:
    """What a plan without --prune says about them."""
    lines = []
    for u in found:
        if u.kind == NOT_IN_CONFIG:
            lines.append(f"not in config: {u} ({u.detail}) (run with --prune to drain and remove it: sync all --prune, or swarm prune)")
        elif u.kind == STALE:
            lines.append(f"stale: {u} ({u.detail}) (run with --prune to remove it: sync all --prune, or swarm prune)")
        else:
            lines.append(f"unclaimed: {u}: {u.detail}")
    return lines
