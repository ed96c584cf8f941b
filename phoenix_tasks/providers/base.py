"""The VM provider interface: what `sync-all`'s first step and `vm.create`/`vm.status` call.

Every provider follows the same shape as the swarm: `plan(vms)` reads the VMs' state
and returns a `Plan` (shown, `--dry-run` stops there), `apply(plan)` makes it and
reads again (`VMsOutcome`).  The default plan/apply here serve a provider whose only
verbs are create and start (the lab): one "create" action per VM that is not up,
carried out as create + start, VMs in parallel.  A provider with a richer plan (the
Proxmox API: clone, hardware, disk, cloud-init, start, drift) overrides both.

The single-VM methods are idempotent and return the changes they made, one line
each; an empty list means "no changes".
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Callable, Iterable

from phoenix_tasks.core.errors import PhoenixError
from phoenix_tasks.core.model import VM
from phoenix_tasks.core.plan import Action, Blocked, Plan

Report = Callable[[str], None]


@dataclass(frozen=True)
class VMStatus:
    vm: VM
    exists: bool
    running: bool
    # provider-specific parts, e.g. {"namespace": True, "engine": True, "sshd": False}
    parts: tuple[tuple[str, bool], ...] = ()
    detail: str = ""  # one line for people: where it runs, what differs from the config

    @property
    def up(self) -> bool:
        return self.exists and self.running


@dataclass
class VMsOutcome:
    plan: list[VM] = field(default_factory=list)  # the VMs the plan changes
    changes: list[str] = field(default_factory=list)
    applied: list[Action] = field(default_factory=list)  # when the provider plans in actions
    failed: list[tuple[VM, str]] = field(default_factory=list)
    still_down: list[VM] = field(default_factory=list)
    blocked: list[Blocked] = field(default_factory=list)  # what the plan could not do
    pending: list[Action] = field(default_factory=list)  # still planned when read again
    started: list[VM] = field(default_factory=list)  # VMs this run booted: SSH comes up late
    why_down: dict[int, str] = field(default_factory=dict)  # vmid -> why a still_down VM is not up

    def down_reason(self, vm: VM) -> str:
        return self.why_down.get(vm.vmid, "not running when read again")

    @property
    def ok(self) -> bool:
        return not (self.failed or self.still_down or self.blocked or self.pending)


def plan_targets(plan: Plan) -> list[VM]:
    """The VMs a plan changes, in plan order, once each."""
    return list({a.target.vmid: a.target for a in plan.actions}.values())


class VMProvider(ABC):
    name: str

    def prepare(self) -> list[str]:
        """Shared resources every VM needs (a bridge, keys); idempotent."""
        return []

    def close(self) -> None:
        """Let go of what the provider holds open (an SSH connection to the hypervisor)."""

    def __enter__(self) -> "VMProvider":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # -- plan and apply (the flows use these) -----------------------------------------

    def plan(self, vms: Iterable[VM], *, apply_drift: bool = False) -> Plan:
        """Read the VMs' state: one "create" action (create and start) per VM not up."""
        plan = Plan()
        vms = [vm for vm in vms if not vm.is_template]
        for vm, status in zip(vms, self.statuses(vms)):
            if not status.up:
                plan.actions.append(Action(kind="create", where=vm, target=vm, phase="create",
                                           summary=f"create and start ({self.name} provider)"))
        return plan

    def apply(self, plan: Plan, *, report: Report) -> VMsOutcome:
        """Create and start each planned VM in parallel, then read every one again."""
        todo = plan_targets(plan)
        outcome = VMsOutcome(plan=todo, blocked=list(plan.blocked))
        if not todo:
            return outcome
        outcome.changes += self.prepare()

        def one(vm: VM) -> list[str] | PhoenixError:
            try:
                return self.create(vm) + self.start(vm)
            except PhoenixError as exc:
                return exc

        with ThreadPoolExecutor(max_workers=len(todo)) as pool:
            for vm, result in zip(todo, pool.map(one, todo)):
                if isinstance(result, PhoenixError):
                    outcome.failed.append((vm, str(result)))
                else:
                    outcome.changes += result
                    outcome.started.append(vm)
        for line in outcome.changes:
            report(f"  {line}")
        failed = {vm.vmid for vm, _ in outcome.failed}
        outcome.still_down = [vm for vm, s in zip(todo, self.statuses(todo)) if vm.vmid not in failed and not s.up]
        return outcome

    def statuses(self, vms: Iterable[VM]) -> list[VMStatus]:
        """Read-only: the status of each VM, in order (a provider may read them at once)."""
        return [self.status(vm) for vm in vms]

    # -- one VM ---------------------------------------------------------------------

    @abstractmethod
    def create(self, vm: VM) -> list[str]:
        """Make the VM if it does not exist; a VM that exists is left as it is."""

    @abstractmethod
    def start(self, vm: VM) -> list[str]:
        """Start the VM and wait until it is ready (SSH answers, engine works)."""

    @abstractmethod
    def stop(self, vm: VM) -> list[str]:
        """Stop the VM, keeping what it is made of."""

    @abstractmethod
    def destroy(self, vm: VM) -> list[str]:
        """Remove the VM and everything it is made of; nothing to remove is fine."""

    @abstractmethod
    def status(self, vm: VM) -> VMStatus:
        """Read-only: does the VM exist, does it run."""
