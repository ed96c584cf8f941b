"""VMs step of sync-all: read each VM's status from its provider, plan, create/start
what is missing (in parallel), read again.  Provider-agnostic (see providers/)."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Callable

from .errors import PhoenixError
from .model import VM, Config
from .providers import VMProvider, get_provider


@dataclass
class VMsOutcome:
    plan: list[VM] = field(default_factory=list)  # VMs that were not up
    changes: list[str] = field(default_factory=list)
    failed: list[tuple[VM, str]] = field(default_factory=list)
    still_down: list[VM] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not (self.failed or self.still_down)


def ensure_vms(config: Config, *, dry_run: bool, report: Callable[[str], None],
               provider: VMProvider | None = None) -> VMsOutcome:
    provider = provider or get_provider(config)
    vms = list(config.real_vms)
    outcome = VMsOutcome()
    for vm in vms:
        st = provider.status(vm)
        if not st.up:
            outcome.plan.append(vm)
    if not outcome.plan:
        report("vms: no changes")
        return outcome
    report(f"vms: {len(outcome.plan)} to create or start: " + ", ".join(str(vm) for vm in outcome.plan))
    if dry_run:
        return outcome
    outcome.changes += provider.prepare()

    def bring_up(vm: VM) -> list[str] | PhoenixError:
        try:
            return provider.create(vm) + provider.start(vm)
        except PhoenixError as exc:
            return exc

    with ThreadPoolExecutor(max_workers=max(1, len(outcome.plan))) as pool:
        for vm, result in zip(outcome.plan, pool.map(bring_up, outcome.plan)):
            if isinstance(result, PhoenixError):
                outcome.failed.append((vm, str(result)))
            else:
                outcome.changes += result
    for line in outcome.changes:
        report(f"  {line}")
    failed = {vm.vmid for vm, _ in outcome.failed}
    outcome.still_down = [vm for vm in vms if vm.vmid not in failed and not provider.status(vm).up]
    return outcome
