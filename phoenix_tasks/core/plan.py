"""The plan core every flow shares (swarm, stacks, lab VMs, and the providers next).

Every change has one shape: read facts -> plan a list of `Action`s -> show the plan
(`--dry-run` stops there) -> apply -> read again.  An `Action` says where it runs,
what it changes, one line for people, and its argv (or that the argv is resolved at
apply time, from facts only the apply can know), or instead of an argv the API call it
makes (`call`: the Proxmox provider's typed `ApiCall`).  A `Plan` is the actions and what
cannot be done (`Blocked`); an `Outcome` is what the apply did.  `show/plans.py` prints
them, one way for every flow.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from .argv import Arg
from .model import Host
from .secrets import Secret

# Where an action runs when it is not a remote host: this machine.
LOCAL = Host("local", "")


@dataclass(frozen=True)
class Payload:
    """Data sent on a command's stdin (a rendered compose file, a config's content).

    Shown only by its size and description; a secret payload is a `Secret`."""

    data: str | Secret
    description: str  # e.g. "rendered compose file", "content of config api_settings"

    @property
    def size(self) -> int:
        value = self.data.reveal() if isinstance(self.data, Secret) else self.data
        return len(value.encode())

    def __str__(self) -> str:
        return f"{self.description} ({self.size} bytes)"


@dataclass(frozen=True)
class Action:
    kind: str  # init, join, labels, create-config, deploy, network, ...
    where: Any  # the Host (or VM) it runs on; LOCAL for this machine
    summary: str  # one line for people
    argv: tuple[Arg, ...] | None = None  # None: resolved at apply
    target: Any = None  # what it changes, when that is not `where` (a VM, a stack)
    phase: str = ""  # for flows applied phase by phase (swarm: init/join/labels)
    stdin: Payload | None = None
    # An API request instead of a command (e.g. providers.proxmox.api.ApiCall); it is
    # data with its own str(), never shell text, so it does not go through `argv`.
    call: Any = None

    @property
    def subject(self) -> Any:
        """What the action is about, as the plan names it."""
        return self.where if self.target is None else self.target

    @property
    def resolved(self) -> bool:
        return self.argv is not None or self.call is not None


@dataclass(frozen=True)
class Blocked:
    """Something the plan cannot converge, and what to do about it."""

    subject: Any  # a VM, a stack, a service
    reason: str


@dataclass
class Plan:
    actions: list[Action] = field(default_factory=list)
    blocked: list[Blocked] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    @property
    def empty(self) -> bool:
        return not self.actions

    def extend(self, other: "Plan") -> None:
        self.actions += other.actions
        self.blocked += [b for b in other.blocked if b not in self.blocked]
        self.warnings += [w for w in other.warnings if w not in self.warnings]


@dataclass
class Outcome:
    plan: Plan  # what was shown before anything ran
    dry_run: bool = False
    applied: list[Action] = field(default_factory=list)
    failed: list[tuple[Any, str]] = field(default_factory=list)  # (subject, message)
    blocked: list[Blocked] = field(default_factory=list)
    pending: list[Action] = field(default_factory=list)  # still to do after the apply
    facts: Any = None  # the last facts read

    @property
    def ok(self) -> bool:
        return not (self.failed or self.blocked or self.pending)

    @property
    def changed(self) -> bool:
        return bool(self.applied)
