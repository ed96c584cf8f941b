"""How plans, outcomes and the cluster status look in a terminal (rich).

Every flow's plan and outcome print the same way.  Text that comes from the config or
from a host is printed with markup off: a label like `zone=[/x]` is data, not style."""

from __future__ import annotations

from rich.console import Console
from rich.text import Text

from .core.argv import display_command
from .core.plan import Outcome, Plan
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


def _cells(*values) -> list[Text]:
    """Table cells as text: a value read from the swarm or the config is never markup,
    whatever the console's markup setting."""
    return [Text(str(v)) for v in values]


def _labels(labels: dict) -> str:
    return ", ".join(f"{k}={v}" for k, v in sorted(labels.items())) or "-"


def show_status(console: Console, status: ClusterStatus) -> None:
    from rich.table import Table  # here: rich tables cost start-up time
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
        table.add_row(*_cells(n.vmid, n.name, n.address, role, state, n.node_status or "-",
                              n.availability or "-", _labels(n.labels), " ".join(drift) or "-"), style=style)
    console.print(table)
    for n in status.nodes:
        if n.detail:
            # Named as every other message names a VM: `name (vmid N): state: detail`.
            detail = n.detail if n.state != "unreachable" or n.detail.startswith("unreachable") \
                else f"unreachable: {n.detail}"
            line = n.detail if n.detail.startswith(n.name) else f"{n.name} (vmid {n.vmid}): {detail}"
            console.print(f"  {line}", markup=False, highlight=False)
    console.print(f"leader: {status.leader or '-'}; read from manager: "
                  f"{status.manager or 'none (no reachable VM is a swarm manager)'}")
    show_swarm_settings(console, status)
    if status.quorum:
        show_quorum(console, status.quorum)
    for o in status.other_nodes:
        console.print(f"  other node in the swarm, not a configured VM: {o.hostname} {o.node_id[:12]} "
                      f"({o.role}, {o.status})" + (f": {o.kind}: {o.detail}" if o.kind else ""),
                      markup=False, highlight=False)
    if status.environments:
        show_environments(console, status.environments)
    else:
        console.print("environments: none (no stack deployed)")
    for p in status.problems:
        console.print(f"problem: {p}", style="red", markup=False, highlight=False)
    console.print(Text.assemble("cluster: ", Text("DEGRADED", "red") if status.degraded else Text("healthy", "green")))


def show_swarm_settings(console: Console, status: ClusterStatus) -> None:
    """The swarm's address pool and autolock (security.py), and their warnings."""
    if status.default_addr_pool is not None:
        console.print(f"address pool: {', '.join(status.default_addr_pool)} in /{status.subnet_size}s; "
                      f"autolock: {'on' if status.autolock else 'off'}"
                      + (f" (key file: {status.autolock_key_file})" if status.autolock else ""),
                      markup=False, highlight=False)
    for w in status.warnings:
        console.print(f"warning: {w}", style="yellow", markup=False, highlight=False)


def show_rotation(console: Console, err: Console, result) -> None:
    """What a token rotation did (security.Rotated): which role, from which manager, when;
    never a token."""
    from .swarm.events import clock  # noqa: PLC0415 - show.py imports no flow module at load
    show_outcome(console, err, result.outcome)
    for action in result.outcome.applied:
        if action not in result.outcome.pending:
            console.print(f"rotated: the {action.subject} on {action.where} at {clock(result.at)}; the old token "
                          f"no longer joins (the new one is not shown: `swarm.tokens --reveal` prints it)",
                          markup=False, highlight=False)
    if result.event is not None:
        console.print(f"recorded as cluster event {result.event.name}", markup=False, highlight=False)
    for p in result.problems:
        err.print(f"warning: {p}", style="yellow", markup=False, highlight=False)


def show_autolock(console: Console, err: Console, result, key_state: str) -> None:
    """Autolock after `swarm.autolock` (security.Autolocked): on/off, the key file; never the key."""
    show_outcome(console, err, result.outcome)
    if not (result.outcome.applied or result.outcome.plan.actions):  # show_outcome did not say why
        for b in result.outcome.blocked:
            err.print(f"blocked: {b.subject}: {b.reason}", style="red", markup=False, highlight=False)
    state = result.state
    if state is not None and state.enabled is not None:
        style = "yellow" if state.enabled and not state.file.usable else None
        console.print(f"autolock: {'on' if state.enabled else 'off'}; key file: {key_state}", style=style,
                      markup=False, highlight=False)
    if result.event is not None:
        console.print(f"recorded as cluster event {result.event.name}", markup=False, highlight=False)
    if result.last is not None:
        console.print(f"last change: {result.last.describe()}", markup=False, highlight=False)
    for p in result.problems:
        err.print(f"warning: {p}", style="yellow", markup=False, highlight=False)


def show_quorum(console: Console, q: dict) -> None:
    """Managers, how many are reachable, what quorum needs, how many failures it tolerates."""
    from .swarm.quorum import Quorum, even_warning  # noqa: PLC0415 - show.py imports no flow module at load
    quorum = Quorum(q["managers"], q["reachable"])
    console.print(f"managers: {quorum.describe()}", style=None if quorum.has_quorum else "red",
                  markup=False, highlight=False)
    warning = even_warning(quorum.managers)
    if warning:
        console.print(f"  warning: {warning}", style="yellow", markup=False, highlight=False)


def _rd(running, desired) -> str:
    return f"{'?' if running is None else running}/{'?' if desired is None else desired}"


def show_environments(console: Console, environments) -> None:
    """Environments -> stacks -> services, replicas running/desired, deployed hash."""
    from rich.table import Table  # here: rich tables cost start-up time
    table = Table(title="environments", title_justify="left")
    for col in ("env", "stack", "hash", "service", "mode", "running/desired"):
        table.add_column(col)
    for env in environments:
        for st in env.stacks:
            for i, svc in enumerate(st.services):
                first = (env.name, st.stack, st.hash or "-") if i == 0 else ("", "", "")
                table.add_row(*_cells(*first, svc.name, svc.mode, _rd(svc.running, svc.desired)),
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


def portainer_login_line(password) -> str:
    """How the admin logs in: the configured password's source (never the value), or
    Portainer's own first-login page."""
    if password is not None:
        return f"admin password: from {password.source} (a swarm secret, handed to Portainer by file)"
    return ("admin password: not configured: create the admin user on Portainer's first-login page "
            "within 5 minutes of its start, or set portainer.admin_password_file")


def show_portainer(console: Console, status, password) -> None:
    """Portainer: deployed? replicas, where it answers, how to log in."""
    if not status.deployed:
        console.print(f"portainer: {status.detail}", style="red", markup=False)
        return
    replicas = ", ".join(f"{name} {rd}" for name, rd in sorted(status.replicas.items()))
    console.print(f"portainer: {status.namespace}: {replicas}", markup=False, highlight=False)
    style = None if status.answers else "red"
    console.print(f"portainer: {status.detail}", style=style, markup=False, highlight=False)
    console.print(f"portainer: {portainer_login_line(password)}", markup=False, highlight=False)


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


def show_vm_plan(console: Console, plan: Plan, *, verbose: bool) -> None:
    """A provider's plan: create-only plans (the lab) in one line, others action by action."""
    if plan.actions and all(a.kind == "create" for a in plan.actions):
        names = ", ".join(str(a.target) for a in plan.actions)
        console.print(f"vms: {len(plan.actions)} to create or start: {names}", markup=False, highlight=False)
    else:
        show_plan(console, plan, verbose=verbose, title="vms")


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
    if plan.portainer is not None:
        show_deploy(console, plan.portainer, rendered, verbose=verbose, stage="plan")
    else:
        console.print(f"portainer: {plan.notes.get('portainer', '')}", markup=False, highlight=False)
    console.print("portainer answers: checked over the network from a manager (a read)")


def show_sync_summary(console: Console, config, result, password) -> None:
    """VM, role, state, labels, stacks, what changed; Portainer; the elapsed time."""
    from .swarm.facts import ACTIVE  # noqa: PLC0415 - show.py imports no flow module at load
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
        table.add_row(*_cells(f"{vm.name}", str(vm.vmid), vm.swarm_role or "-", state,
                              _labels(vm.node_labels), ", ".join(vm.docker_stacks) or "-", changed), style=style)
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
    verdict = "converged" if result.ok else "NOT converged"
    what = "changes applied" if changed else "no changes"
    console.print(f"sync-all: {verdict} ({what}) in {result.elapsed_s:.1f} s", style=None if result.ok else "red",
                  markup=False)


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
        table.add_row(*_cells(e.seq, e.kind, started, e.who, e.hash or "-", e.result,
                              "-" if e.duration_s is None else e.duration_s, detail), style=style)
    console.print(table)


def show_tasks(console: Console, namespace: str, manager: str, now_ns: int, tasks) -> None:
    """`swarm.ps`: one row per task; a failed or rejected one in red with its reason."""
    from rich.table import Table  # here: rich tables cost start-up time
    from .stack.ps import age_text
    if not tasks:
        console.print(f"{namespace}: no tasks (read from {manager})", markup=False)
        return
    table = Table(title=f"tasks of {namespace} (read from {manager})", title_justify="left")
    for col in ("task", "node", "desired", "state", "age", "error", "image", "digest"):
        table.add_column(col)
    for t in tasks:
        style = "red" if t.failed else None if t.state in ("running", "complete") else "yellow"
        table.add_row(*_cells(t.name, t.node or "-", t.desired_state, t.state, age_text(t.age_s(now_ns)),
                              t.error or ("" if t.state in ("running", "complete") else t.message),
                              t.image, (t.digest or "-")[:19]), style=style)
    console.print(table)
