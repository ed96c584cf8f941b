"""How every plan and outcome prints: the same shape for each flow, and the table cells all areas share.

Text that comes from the config or from a host is printed with markup off (see plans.py)."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:  # rich is imported where something is printed: `inv --list` prints nothing of it
    from rich.console import Console
    from rich.text import Text

from ..core.argv import display_command
from ..core.cluster_text import clean
from ..core.plan import Outcome, Plan


def show_plan(console: Console, plan: Plan, *, verbose: bool = False, title: str = "plan") -> None:
    for w in plan.warnings:
        console.print(f"  warning: {w}", style="yellow", markup=False, highlight=False)
    if plan.actions:
        n = len(plan.actions)
        console.print(f"{title}: {n} change{'s' if n != 1 else ''}", markup=False)
        for a in plan.actions:
            where = f" (on {a.where.name})" if a.target is not None and a.where != a.target else ""
            console.print(f"  {a.subject}  {a.kind:<8} {a.summary}{where}", markup=False, highlight=False)
            if verbose and a.argv is not None:
                stdin = f" < {a.stdin}" if a.stdin is not None else ""
                console.print(f"      $ {display_command(a.argv)}{stdin}", markup=False, highlight=False)
            if verbose and a.call is not None:
                console.print(f"      > {a.call}", markup=False, highlight=False)
    else:
        console.print(f"{title}: no changes", markup=False)
    for b in plan.blocked:
        console.print(f"  blocked {b.subject}: {b.reason}", style="red", markup=False, highlight=False)


def _failed(err: Console, subject, message: str) -> None:
    err.print(f"failed: {subject}: {message}", style="red", markup=False, highlight=False)


def show_outcome(console: Console, err: Console, outcome: Outcome) -> None:
    if outcome.dry_run:
        console.print("dry run: nothing was changed")
    elif outcome.applied:
        n = len(outcome.applied)
        console.print(f"applied {n} change{'s' if n != 1 else ''}")
    for subject, message in outcome.failed:
        _failed(err, subject, message)
    if not outcome.dry_run:
        for b in outcome.blocked:
            if outcome.applied or outcome.plan.actions:
                err.print(f"blocked: {b.subject}: {b.reason}", style="red", markup=False, highlight=False)
        for a in outcome.pending:
            err.print(f"still pending after apply: {a.subject}: {a.kind} {a.summary}", style="red",
                      markup=False, highlight=False)
        if outcome.ok and outcome.applied:
            console.print("converged: facts read again, nothing pending")


def cells(*values) -> list[Text]:
    """Table cells as text: a value read from the swarm or the config is never markup,
    whatever the console's markup setting, and never a control character (a node label,
    a task's error or a service name anyone with access to the swarm wrote: an ESC or a
    newline would reach the operator's terminal raw); each cell is cut to MAX_TEXT."""
    from rich.text import Text
    return [Text(clean(v)) for v in values]


def labels_text(labels: dict) -> str:
    return ", ".join(f"{k}={v}" for k, v in sorted(labels.items())) or "-"
