"""How sync-all prints: the one plan of every stage, the progress of each stage, the summary table.

Text that comes from the config or from a host is printed with markup off (see plans.py)."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:  # rich is imported where something is printed: `inv --list` prints nothing of it
    from rich.console import Console

from ..core.plan import Outcome, Plan
from .plans import cells, labels_text, show_outcome, show_plan
from .portainer import portainer_login_line
from .stacks import show_deploy, show_progress
from .vms import show_vm_plan


class SyncReporter:
    """How sync-all prints its stages (the sync.Reporter protocol)."""

    def __init__(self, console: Console, err: Console, *, verbose: bool, stages: int = 5):
        self.console, self.err, self.verbose, self.stages = console, err, verbose, stages
        self._progress = show_progress(console)

    def stage(self, number: int, title: str) -> None:
        self.console.print(f"stage {number}/{self.stages}: {title}", style="bold", markup=False)

    def line(self, text: str, style: str | None = None) -> None:
        (self.err if style == "red" else self.console).print(text, style=style, markup=False, highlight=False)

    def swarm_plan(self, plan: Plan) -> None:
        show_plan(self.console, plan, verbose=self.verbose, title="swarm init/join/labels")

    def prune_plan(self, plan: Plan) -> None:
        show_plan(self.console, plan, verbose=self.verbose, title="prune")

    def swarm_outcome(self, outcome: Outcome) -> None:
        show_outcome(self.console, self.err, outcome)
        if not (outcome.applied or outcome.plan.actions) and not outcome.dry_run:  # show_outcome did not say why
            for b in outcome.blocked:
                self.err.print(f"blocked: {b.subject}: {b.reason}", style="red", markup=False, highlight=False)

    def deploy(self, outcome, rendered, stage: str) -> None:
        show_deploy(self.console, outcome, rendered, verbose=self.verbose, stage=stage, err=self.err)

    def progress(self, verdicts) -> None:
        self._progress(verdicts)


def show_sync_plan(console: Console, plan, *, verbose: bool) -> None:
    """The whole run's plan, stage by stage, before anything changes."""
    rendered = plan.rendered
    console.print("plan", style="bold")
    show_vm_plan(console, plan.vm_plan, verbose=verbose)
    if plan.vms:
        console.print("ssh: wait until every created or started VM answers")
    else:
        console.print("ssh: no changes (every VM answered)")
    if plan.swarm is not None:
        show_plan(console, plan.swarm.plan, verbose=verbose, title="swarm init/join/labels")
    else:
        console.print(f"swarm init/join/labels: {plan.notes.get('swarm', '')}", markup=False, highlight=False)
    if plan.prune is not None:
        show_plan(console, plan.prune, verbose=verbose, title="prune")
    if getattr(plan, "portainer_move", None) is not None:
        console.print(f"portainer data: {plan.portainer_move.summary()}", style="yellow", markup=False,
                      highlight=False)
    for line in getattr(plan, "portainer_blocked", []):
        console.print(f"blocked {rendered.namespace}: {line}", style="red", markup=False, highlight=False)
    if plan.portainer is not None:
        show_deploy(console, plan.portainer, rendered, verbose=verbose, stage="plan")
    else:
        console.print(f"portainer: {plan.notes.get('portainer', '')}", markup=False, highlight=False)
    console.print("portainer answers: checked over the network from a manager (a read)")


def show_sync_summary(console: Console, config, result, password) -> None:
    """VM, role, state, labels, stacks, what changed; Portainer; the elapsed time."""
    from ..swarm.facts import ACTIVE  # noqa: PLC0415 - show.py imports no flow module at load
    from rich.table import Table  # here: rich tables cost start-up time
    table = Table(title="sync-all", title_justify="left")
    for col in ("VM", "vmid", "role", "state", "labels", "stacks", "changed"):
        table.add_column(col)
    for vm in config.real_vms:
        failure = result.failure_for(vm)
        if failure:
            state, style = f"failed: {failure}", "red"
        elif result.facts is not None and vm.vmid in result.facts.engines:
            engine = result.facts.engine(vm)
            state = f"{engine.state} {'manager' if engine.is_manager else 'worker'}" if engine.state == ACTIVE else engine.state
            style = None if engine.state == ACTIVE else "yellow"
        else:
            state, style = ("running" if not vm.in_swarm else "-"), None
        changed = ", ".join(result.changes_for(vm)) or "no changes"
        table.add_row(*cells(f"{vm.name}", str(vm.vmid), vm.swarm_role or "-", state,
                              labels_text(vm.node_labels), ", ".join(vm.docker_stacks) or "-", changed), style=style)
    console.print(table)
    if result.status is not None:
        style = None if result.status.answers else "red"
        console.print(f"portainer: {result.status.detail}", style=style, markup=False, highlight=False)
        console.print(f"portainer: {portainer_login_line(password)}", markup=False, highlight=False)
    changed = (result.vms is not None and bool(result.vms.plan)) or (result.swarm is not None and result.swarm.applied) \
        or (result.portainer is not None and bool(result.portainer.applied))
    if result.prune is not None and result.prune.applied:
        changed = True
        done = dict.fromkeys(f"{a.subject} {a.kind}" for a in result.prune.applied)
        console.print(f"prune: {'; '.join(done)}", markup=False, highlight=False)
    for problem in result.problems:  # stage-level failures (named when they happened too)
        console.print(f"sync-all: {problem}", style="red", markup=False, highlight=False)
    verdict = "converged" if result.ok else "NOT converged"
    what = "changes applied" if changed else "no changes"
    console.print(f"sync-all: {verdict} ({what}) in {result.elapsed_s:.1f} s", style=None if result.ok else "red",
                  markup=False)
