"""The managers' Raft quorum: pure arithmetic over the node list.

A swarm of n managers changes nothing (no join, promote, demote, node removal, no
scheduling) unless a majority, n // 2 + 1, of them is reachable; so it tolerates
(n - 1) // 2 manager failures, and an even n tolerates no more than n - 1 does.
Every plan that demotes or removes managers asks `refusal` first: it never removes the
last manager and never leaves fewer reachable managers than the new count's majority.
Draining a manager is not a removal: it stays a Raft member and only loses its tasks.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Iterable, Sequence

from .facts import NodeFacts


def is_reachable(node: NodeFacts) -> bool:
    """A manager that takes part in Raft now (the leader is "reachable" too)."""
    return node.role == "manager" and node.reachability == "reachable"


@dataclass(frozen=True)
class Quorum:
    managers: int
    reachable: int

    @property
    def needed(self) -> int:
        return self.managers // 2 + 1

    @property
    def tolerates(self) -> int:
        """How many managers may fail with the swarm still working."""
        return (self.managers - 1) // 2 if self.managers else 0

    @property
    def has_quorum(self) -> bool:
        return self.managers > 0 and self.reachable >= self.needed

    @property
    def even(self) -> bool:
        return self.managers > 0 and self.managers % 2 == 0

    def counts(self) -> str:
        """"3 managers, 1 unreachable" / "3 managers, all reachable"."""
        down = self.managers - self.reachable
        noun = "manager" if self.managers == 1 else "managers"
        return f"{self.managers} {noun}, " + (f"{down} unreachable" if down else
                                             ("reachable" if self.managers == 1 else "all reachable"))

    def describe(self) -> str:
        """One line for plans and status: counts, what quorum needs, what it tolerates."""
        failures = "failure" if self.tolerates == 1 else "failures"
        state = "" if self.has_quorum else " (QUORUM LOST)"
        return (f"{self.counts()}{state}; quorum needs {self.needed}; "
                f"tolerates {self.tolerates} manager {failures}")

    def to_dict(self) -> dict:
        return {**asdict(self), "needed": self.needed, "tolerates": self.tolerates,
                "has_quorum": self.has_quorum, "even": self.even}


def of_nodes(nodes: Iterable[NodeFacts]) -> Quorum:
    managers = [n for n in nodes if n.role == "manager"]
    return Quorum(len(managers), sum(1 for n in managers if is_reachable(n)))


def even_warning(managers: int, when: str = "") -> str | None:
    """A warning for an even number of managers (None for an odd one)."""
    if managers <= 0 or managers % 2:
        return None
    return (f"{managers} managers{when}: an even number tolerates no more manager failures than "
            f"{managers - 1} ({(managers - 1) // 2}); run an odd number of managers")


def refusal(nodes: Iterable[NodeFacts], removing: Sequence[NodeFacts], *, adding: int = 0,
            verb: str = "demoting") -> str | None:
    """Why taking `removing` out of Raft (demote, or remove) is refused; None when safe.

    `adding`: managers promoted first in the same plan (they count as reachable)."""
    nodes = list(nodes)
    leaving = [n for n in removing if n.role == "manager"]
    if not leaving:
        return None
    q = of_nodes(nodes)
    names = ", ".join(n.hostname for n in leaving)
    after = q.managers + adding - len(leaving)
    if after < 1:
        what = f"{names} is the last manager: {verb} it" if len(leaving) == 1 else f"{verb} {names}"
        return f"{what} would leave the swarm without a manager (promote another node first)"
    if not q.has_quorum:
        return (f"{q.counts()}: the swarm has lost quorum (it needs {q.needed} reachable): no manager can be "
                f"demoted or removed until a majority is back (or `docker swarm init --force-new-cluster` "
                f"on a surviving manager)")
    reachable_after = q.reachable + adding - sum(1 for n in leaving if is_reachable(n))
    needed_after = after // 2 + 1
    if reachable_after < needed_after:
        return (f"{q.counts()}: {verb} {names} leaves {reachable_after} of {after} reachable; "
                f"quorum needs {needed_after}")
    return None
