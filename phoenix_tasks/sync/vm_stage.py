"""VMs stage of sync-all and the `vm.*` tasks: the provider's plan of the VMs
(`plan_vms`), its apply (`bring_up`), and waiting until each VM it started answers
over SSH as itself (`wait_for_ssh`).  Provider-agnostic (see providers/).  A VM is up
when the hypervisor runs it: what runs inside it (dockerd) is the swarm stage's
business, as on a real hypervisor."""

from __future__ import annotations

import time
from typing import Callable, Iterable

from ..core.errors import PhoenixError
from ..core.model import VM, Config
from ..core.plan import Plan
from ..providers import VMProvider
from ..providers.base import VMsOutcome, plan_targets
from ..core.transport import Transport

SSH_WAIT_S = 300.0  # a fresh clone boots, runs cloud-init, then starts sshd

__all__ = ["SSH_WAIT_S", "VMsOutcome", "bring_up", "plan_targets", "plan_vms", "wait_for_ssh"]


def plan_vms(config: Config, provider: VMProvider, vms: Iterable[VM] | None = None, *,
             apply_drift: bool = False) -> Plan:
    """The provider's plan for the given VMs (default: every VM of the config)."""
    return provider.plan(list(config.vms if vms is None else vms), apply_drift=apply_drift)


def bring_up(provider: VMProvider, plan: Plan, *, report: Callable[[str], None]) -> VMsOutcome:
    """Apply the VMs' plan and read again."""
    return provider.apply(plan, report=report)


def wait_for_ssh(transport: Transport, vms: list[VM], timeout_s: float = SSH_WAIT_S,
                 sleep: Callable[[float], None] = time.sleep, clock: Callable[[], float] = time.monotonic,
                 report: Callable[[str], None] | None = None) -> dict[str, str]:
    """Until each VM answers over SSH with its own hostname (a new VM boots and its
    sshd comes up late; an address that answers as another host is not this VM).
    Says every 30 s who is still awaited.  Returns the VMs that never answered as
    themselves, with their last error.  Bounded: no attempt's command outlives the
    wait (each SSH connect is bounded by vm_access.connect_timeout_s, which `vm
    create` and `sync-all` lower to `--ssh-timeout` when it is longer: tasks/vm.py),
    so the wait ends about `timeout_s` after it began."""
    start = clock()
    end = start + timeout_s
    waiting = {vm.name: vm for vm in vms}
    errors: dict[str, str] = {}
    said = start
    access = getattr(transport, "access", None)
    command_s = float(getattr(access, "command_timeout_s", timeout_s) or timeout_s)
    while waiting:
        attempt_s = max(1.0, min(command_s, end - clock()))
        results = transport.each(list(waiting.values()),
                                 lambda vm: transport.run(vm, ["hostname"], mutating=False, timeout=attempt_s))
        for name, result in results.items():
            if isinstance(result, PhoenixError):
                errors[name] = str(result)
                continue
            answered = result.stdout.strip()
            if answered.split(".")[0] != name:
                errors[name] = f"{waiting[name].address} answers as host {answered!r}, not {name!r}"
                continue
            waiting.pop(name)
            errors.pop(name, None)
        now = clock()
        if not waiting or now >= end:
            break
        if report is not None and now - said >= 30:
            said = now
            report(f"ssh: waiting for {', '.join(sorted(waiting))} ({now - start:.0f} s of {timeout_s:.0f})")
        sleep(max(0.0, min(2.0, end - clock())))
    return {name: errors.get(name, "no answer") for name in waiting}
