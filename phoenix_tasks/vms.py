"""VMs stage of sync-all: read each VM's status from its provider (plan_vms), create and
start what is not up, in parallel, and read again (bring_up).  Provider-agnostic (see
providers/).  A VM is up when the hypervisor runs it: what runs inside it (dockerd) is
the swarm stage's business, as on a real hypervisor."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Callable

from .errors import PhoenixError
from .model import VM, Config
from .providers import VMProvider


@dataclass
class VMsOutcome:
    plan: list[VM] = field(default_factory=list)  # VMs that were not up
    changes: list[str] = field(default_factory=list)
    failed: list[tuple[VM, str]] = field(default_factory=list)
    still_down: list[VM] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not (self.failed or self.still_down)


def plan_vms(config: Config, provider: VMProvider) -> list[VM]:
    """The VMs that are not up (to create or start), read from the provider."""
    return [vm for vm in config.real_vms if not provider.status(vm).up]


def bring_up(config: Config, provider: VMProvider, todo: list[VM], *,
             report: Callable[[str], None]) -> VMsOutcome:
    """Create/start the given VMs in parallel, then read every VM's status again."""
    outcome = VMsOutcome(plan=list(todo))
    if not todo:
        return outcome
    outcome.changes += provider.prepare()

    def one(vm: VM) -> list[str] | PhoenixError:
        try:
            return provider.create(vm) + provider.start(vm)
        except PhoenixError as exc:
            return exc

    with ThreadPoolExecutor(max_workers=max(1, len(todo))) as pool:
        for vm, result in zip(todo, pool.map(one, todo)):
            if isinstance(result, PhoenixError):
                outcome.failed.append((vm, str(result)))
            else:
                outcome.changes += result
    for line in outcome.changes:
        report(f"  {line}")
    failed = {vm.vmid for vm, _ in outcome.failed}
    outcome.still_down = [vm for vm in config.real_vms if vm.vmid not in failed and not provider.status(vm).up]
    return outcome
