"""Swarm placement constraints: parsing, and whether a configured VM can satisfy them."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Iterable

from ..model import VM

_CONSTRAINT = re.compile(r"^\s*node\.(?P<attr>[A-Za-z0-9._-]+)\s*(?P<op>==|!=)\s*(?P<value>\S+)\s*$")


@dataclass(frozen=True)
class Constraint:
    text: str
    attribute: str  # "role", "hostname", "labels.gpu", ...
    op: str  # "==" or "!="
    value: str

    def decidable(self) -> bool:
        """True when the config alone says which VMs satisfy it."""
        return self.attribute in ("role", "hostname") or self.attribute.startswith("labels.")

    def satisfied_by(self, vm: VM) -> bool:
        if self.attribute == "role":
            actual: str | None = vm.swarm_role
        elif self.attribute == "hostname":
            actual = vm.name
        elif self.attribute.startswith("labels."):
            actual = vm.node_labels.get(self.attribute[len("labels."):])
        else:  # engine labels, platform, node id: only the live node knows
            return True
        return (actual == self.value) if self.op == "==" else (actual != self.value)


def parse(text: str) -> Constraint | None:
    m = _CONSTRAINT.match(text)
    if not m:
        return None
    return Constraint(text, m["attr"], m["op"], m["value"])


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
