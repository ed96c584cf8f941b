"""How the VMs plan prints (`vm.*` tasks and the first stage of sync-all).

Text that comes from the config or from a host is printed with markup off (see plans.py)."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:  # rich is imported where something is printed: `inv --list` prints nothing of it
    from rich.console import Console

from ..core.plan import Plan
from .plans import show_plan


def show_vm_plan(console: Console, plan: Plan, *, verbose: bool) -> None:
    """A provider's plan: create-only plans (the lab) in one line, others action by action."""
    if plan.actions and all(a.kind == "create" for a in plan.actions):
        names = ", ".join(str(a.target) for a in plan.actions)
        console.print(f"vms: {len(plan.actions)} to create or start: {names}", markup=False, highlight=False)
    else:
        show_plan(console, plan, verbose=verbose, title="vms")
