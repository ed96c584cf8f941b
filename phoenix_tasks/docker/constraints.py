"""Swarm placement constraints: parsing, and whether a configured VM can satisfy them."""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass
from typing import Iterable

from ..core.model import VM

_CONSTRAINT = re.compile(
    r"^\s*(?:node\.(?P<attr>[A-Za-z0-9._-]+)|(?P<engine>engine\.labels\.[A-Za-z0-9._-]+))"
    r"\s*(?P<op>==|!=)\s*(?P<value>\S+)\s*$"
)


@dataclass(frozen=True)
class Constraint:
    text: str
    attribute: str  # "role", "hostname", "labels.gpu", ...
    op: str  # "==" or "!="
    value: str

    # As swarmkit matches: attribute names and values case-insensitively, the label
    # key itself case-sensitively.

    def decidable(self) -> bool:
        """True when the config alone says which VMs satisfy it."""
        attr = self.attribute.lower()
        return attr in ("role", "hostname", "ip") or attr.startswith("labels.")

    def satisfied_by(self, vm: VM) -> bool:
        attr = self.attribute.lower()
        if attr == "role":
            actual: str | None = vm.swarm_role
        elif attr == "hostname":
            actual = vm.name
        elif attr == "ip":
            try:
                match = vm.network.ip.ip in ipaddress.ip_network(self.value, strict=False)
            except ValueError:
                return True  # malformed: swarm refuses it at deploy time
            return match if self.op == "==" else not match
        elif attr.startswith("labels."):
            actual = vm.node_labels.get(self.attribute[len("labels."):])
        else:  # engine labels, platform, node id: only the live node knows
            return True
        match = actual is not None and actual.casefold() == self.value.casefold()
        return match if self.op == "==" else not match


    def matches(self, node) -> bool:
        """Whether a live swarm node (swarm.facts.NodeFacts) satisfies it, as swarmkit
        decides: every attribute is known on a live node."""
        attr = self.attribute.lower()
        if attr == "ip":
            try:
                match = ipaddress.ip_address(node.addr) in ipaddress.ip_network(self.value, strict=False)
            except ValueError:
                match = False
            return match if self.op == "==" else not match
        if attr.startswith("labels."):
            actual = node.labels.get(self.attribute[len("labels."):])
        elif attr.startswith("engine.labels."):
            actual = node.engine_labels.get(self.attribute[len("engine.labels."):])
        else:
            actual = {"id": node.id, "hostname": node.hostname, "role": node.role,
                      "platform.os": node.platform_os, "platform.arch": node.platform_arch}.get(attr)
        match = actual is not None and actual.casefold() == self.value.casefold()
        return match if self.op == "==" else not match


def parse(text: str) -> Constraint | None:
    m = _CONSTRAINT.fullmatch(text)
    if not m:
        return None
    return Constraint(text, m["attr"] or m["engine"], m["op"], m["value"])


def first_unsatisfiable(constraints: Iterable[Constraint], vms: Iterable[VM]) -> tuple[Constraint, ...] | None:
    """None when some VM satisfies every constraint; else the culprits.

    A constraint that no VM satisfies on its own is named alone; when each one is
    satisfiable but no VM satisfies them together, all of them are returned.
    """
    constraints = [c for c in constraints if c.decidable()]
    vms = list(vms)
    if any(all(c.satisfied_by(vm) for c in constraints) for vm in vms):
        return None
    for c in constraints:
        if not any(c.satisfied_by(vm) for vm in vms):
            return (c,)
    return tuple(constraints)
