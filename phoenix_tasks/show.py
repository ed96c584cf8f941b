"""How plans, outcomes and the cluster status look in a terminal (rich).

Every flow's plan and outcome print the same way.  Text that comes from the config or
from a host is printed with markup off: a label like `zone=[/x]` is data, not style."""

from __future__ import annotations

from rich.console import Console
from rich.table import Table

from .argv import display_command
from .plan import Outcome, Plan
from .swarm.status import ClusterStatus


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
    else:
        console.print(f"{title}: no changes", markup=False)
    for b in plan.blocked:
        console.print(f"  blocked {b.subject}: {b.reason}", style="red", markup=False, highlight=False)


def show_outcome(console: Console, err: Console, outcome: Outcome) -> None:
    if outcome.dry_run:
        console.print("dry run: nothing was changed")
    elif outcome.applied:
        n = len(outcome.applied)
        console.print(f"applied {n} change{'s' if n != 1 else ''}")
    for subject, message in outcome.failed:
        err.print(f"failed: {subject}: {message}", style="red", markup=False, highlight=False)
    if not outcome.dry_run:
        for b in outcome.blocked:
            if outcome.applied or outcome.plan.actions:
                err.print(f"blocked: {b.subject}: {b.reason}", style="red", markup=False, highlight=False)
        for a in outcome.pending:
            err.print(f"still pending after apply: {a.subject}: {a.kind} {a.summary}", style="red",
                      markup=False, highlight=False)
        if outcome.ok and outcome.applied:
            console.print("converged: facts read again, nothing pending")


def _labels(labels: dict) -> str:
    return ", ".join(f"{k}={v}" for k, v in sorted(labels.items())) or "-"


def show_status(console: Console, status: ClusterStatus) -> None:
    table = Table(title="swarm nodes (configured VMs)", title_justify="left")
    for col in ("vmid", "name", "address", "role", "state", "node", "availability", "labels", "label drift"):
        table.add_column(col)
    for n in status.nodes:
        role = n.role if not n.actual_role or n.actual_role == n.role else f"{n.actual_role} (config: {n.role})"
        if n.leader:
            role += " *leader"
        drift = []
        drift += [f"+{k}={v}" for k, v in sorted(n.label_drift.get("add", {}).items())]
        drift += [f"-{k}" for k in n.label_drift.get("remove", [])]
        state = n.state if n.reachable else f"{n.state}"
        style = None if n.healthy else "red"
        table.add_row(str(n.vmid), n.name, n.address, role, state, n.node_status or "-",
                      n.availability or "-", _labels(n.labels), " ".join(drift) or "-", style=style)
    console.print(table)
    for n in status.nodes:
        if n.detail:
            line = n.detail if n.detail.startswith(n.name) else f"{n.name}: {n.detail}"
            console.print(f"  {line}", markup=False, highlight=False)
    console.print(f"leader: {status.leader or '-'}; read from manager: "
                  f"{status.manager or 'none (no reachable VM is a swarm manager)'}")
    for o in status.other_nodes:
        console.print(f"  other node in the swarm, not a configured VM: {o.hostname} {o.node_id[:12]} "
                      f"({o.role}, {o.status})", markup=False, highlight=False)
    if status.stacks:
        st = Table(title="stacks", title_justify="left")
        for col in ("stack", "service", "mode", "running/desired"):
            st.add_column(col)
        for s in status.stacks:
            for svc in s.services:
                rd = f"{'?' if svc.running is None else svc.running}/{'?' if svc.desired is None else svc.desired}"
                st.add_row(s.name, svc.name, svc.mode, rd,
                           style=None if svc.running == svc.desired else "yellow")
        console.print(st)
    else:
        console.print("stacks: none")
    for p in status.problems:
        console.print(f"[red]problem[/red]: {p}", highlight=False)
    console.print("cluster: " + ("[red]DEGRADED[/red]" if status.degraded else "[green]healthy[/green]"))
