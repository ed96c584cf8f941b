"""How stacks print: environments, a deploy and its progress, a removal, the deploy history, tasks.

Text that comes from the config or from a host is printed with markup off (see plans.py)."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:  # rich is imported where something is printed: `inv --list` prints nothing of it
    from rich.console import Console

from .plans import _failed, cells, show_plan


def _rd(running, desired) -> str:
    return f"{'?' if running is None else running}/{'?' if desired is None else desired}"


def show_environments(console: Console, environments) -> None:
    """Environments -> stacks -> services, each with its own spec hash, mode and
    replicas running/desired (the document's hash of a deploy is in its ledger)."""
    from rich.table import Table  # here: rich tables cost start-up time
    table = Table(title="environments", title_justify="left")
    for col in ("env", "stack", "service", "spec hash", "mode", "running/desired"):
        table.add_column(col)
    for env in environments:
        for st in env.stacks:
            for i, svc in enumerate(st.services):
                first = (env.name, st.stack) if i == 0 else ("", "")
                table.add_row(*cells(*first, svc.name, svc.hash or "-", svc.mode, _rd(svc.running, svc.desired)),
                              style=None if svc.running == svc.desired else "yellow")
    console.print(table)


def show_deploy(console: Console, outcome, rendered, *, verbose: bool, stage: str, err: Console | None = None) -> None:
    """The deploy's plan (service changes, then actions), or its result."""
    ns = rendered.namespace
    if stage == "plan":
        if not outcome.changes:
            for w in outcome.plan.warnings:
                console.print(f"  warning: {w}", style="yellow", markup=False, highlight=False)
            console.print(f"{ns}: no changes (hash {rendered.hash}, read from {outcome.manager.name})", markup=False)
            for b in outcome.blocked:
                console.print(f"  blocked {b.subject}: {b.reason}", style="red", markup=False, highlight=False)
            if outcome.behind:
                behind = ", ".join(f"{name} {rd}" for name, rd in sorted(outcome.behind.items()))
                resumed = " after resuming the paused ones" if outcome.plan.actions else ""
                console.print(f"  but not every service has converged ({behind}): "
                              + (f"a deploy would wait for them{resumed}" if outcome.dry_run else
                                 f"waiting for them{resumed} (nothing else is deployed)" if resumed else
                                 "waiting for them (nothing is deployed)"), style="yellow")
                for a in outcome.plan.actions:
                    console.print(f"  {a.summary}", markup=False, highlight=False)
            return
        console.print(f"{ns}: {len(outcome.changes)} service(s) differ from the rendered document "
                      f"(read from {outcome.manager.name})", markup=False)
        for change in outcome.changes:
            console.print(f"  {change.kind:<7} {change.name}: {change.summary()}", markup=False, highlight=False)
        show_plan(console, outcome.plan, verbose=verbose, title=f"deploy {ns}")
        return
    err = err or console
    if outcome.dry_run:
        console.print("dry run: nothing was changed")
        return
    if not outcome.changes and not outcome.behind and not outcome.blocked:
        return
    for subject, message in outcome.failed:
        _failed(err, subject, message)
        logs = outcome.logs.get(subject)
        if logs is not None:
            err.print(f"  last log lines of {subject}:", markup=False)
            for line in (logs.splitlines() or ["(no log output)"]):
                err.print(f"    {line}", markup=False, highlight=False)
    for b in outcome.blocked:
        err.print(f"blocked: {b.subject}: {b.reason}", style="red", markup=False, highlight=False)
    for a in outcome.pending:
        err.print(f"still pending after the deploy: {a.subject}: {a.summary}", style="red",
                  markup=False, highlight=False)
    if outcome.ok:
        what = "deployed" if outcome.changes else "running as deployed"
        console.print(f"converged: {ns} {what} (hash {rendered.hash}); every service read again matches",
                      markup=False)


def show_progress(console: Console):
    """A reporter for the wait: one line per service whenever its state changes."""
    last: dict[str, tuple] = {}

    def report(verdicts) -> None:
        for name, v in verdicts.items():
            key = (v.state, v.progress, v.detail)
            if last.get(name) != key:
                last[name] = key
                detail = f" ({v.detail})" if v.detail else ""
                console.print(f"  {name}: {v.state} {v.progress}{detail}", markup=False, highlight=False)
    return report


def show_remove(console: Console, outcome, namespace: str, *, verbose: bool, stage: str,
                err: Console | None = None) -> None:
    if stage == "plan":
        if outcome.plan.empty:
            console.print(f"{namespace}: no changes (nothing of it is on the swarm)", markup=False)
            return
        show_plan(console, outcome.plan, verbose=verbose, title=f"remove {namespace}")
        return
    err = err or console
    if outcome.dry_run:
        console.print("dry run: nothing was changed")
        return
    for subject, message in outcome.failed:
        _failed(err, subject, message)
    for a in outcome.pending:
        err.print(f"still pending: {a.subject}: {a.summary}", style="red", markup=False, highlight=False)
    if outcome.applied and outcome.ok:
        console.print(f"removed: {namespace}: services, tasks, networks, configs and secrets are gone "
                      f"(read again)", markup=False)


def show_history(console: Console, namespace: str, entries) -> None:
    """The ledger of one environment, oldest first."""
    import time  # noqa: PLC0415
    if not entries:
        console.print(f"{namespace}: no ledger records (nothing was deployed, or removed, since the ledger began)",
                      markup=False)
        return
    from rich.table import Table  # here: rich tables cost start-up time
    table = Table(title=f"history of {namespace}", title_justify="left")
    for col in ("#", "kind", "started (UTC)", "who", "hash", "result", "s", "images / reason"):
        table.add_column(col)
    for e in entries:
        started = time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(e.started)) if e.started else "-"
        detail = e.reason or ", ".join(sorted(e.digests.values())) or "-"
        style = {"converged": None, "removed": None, "incomplete": "yellow"}.get(e.result, "red")
        table.add_row(*cells(e.seq, e.kind, started, e.who, e.hash or "-", e.result,
                              "-" if e.duration_s is None else e.duration_s, detail), style=style)
    console.print(table)


def show_tasks(console: Console, namespace: str, manager: str, now_ns: int, tasks) -> None:
    """`swarm.ps`: one row per task; a failed or rejected one in red with its reason."""
    from rich.table import Table  # here: rich tables cost start-up time
    from ..stack.ps import age_text
    if not tasks:
        console.print(f"{namespace}: no tasks (read from {manager})", markup=False)
        return
    table = Table(title=f"tasks of {namespace} (read from {manager})", title_justify="left")
    for col in ("task", "node", "desired", "state", "age", "error", "image", "digest"):
        table.add_column(col)
    for t in tasks:
        style = "red" if t.failed else None if t.state in ("running", "complete") else "yellow"
        table.add_row(*cells(t.name, t.node or "-", t.desired_state, t.state, age_text(t.age_s(now_ns)),
                              t.error or ("" if t.state in ("running", "complete") else t.message),
                              t.image, (t.digest or "-")[:19]), style=style)
    console.print(table)
