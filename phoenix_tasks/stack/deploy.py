"""`swarm.deploy`: facts -> plan (diff + pre-flight) -> show -> deploy -> wait -> read again.

An unchanged stack costs one round trip to one manager and runs nothing.  A changed
one reads what the pre-flight checks need (a second round trip), creates the
content-named configs and secrets that are missing, sends the rendered document on
stdin to `docker stack deploy`, waits for the truth (wait.py), and reads again: a
service that still differs from the rendered document is pending, an error.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Mapping, Sequence

from ..core.errors import PhoenixError
from ..core.model import VM, Config
from ..core.plan import Action, Blocked, Outcome, Payload, Plan
from ..core.transport import Transport
from . import commands, preflight
from .diff import Desired, ServiceChange, compare, desired_services
from .facts import ClusterView, StackRead, on_a_manager, parse_preflight, parse_progress, parse_stack_read
from ..docker.render import Rendered
from .wait import FAILED, STABLE_S, Verdict, wait

DEFAULT_TIMEOUT_S = 300.0
LOG_LINES = 20


@dataclass
class DeployOutcome(Outcome):
    changes: list[ServiceChange] = field(default_factory=list)
    verdicts: dict[str, Verdict] = field(default_factory=dict)
    logs: dict[str, str] = field(default_factory=dict)  # failing service -> its last log lines
    manager: VM | None = None
    # Nothing to deploy, but these services run fewer replicas than desired (a deploy
    # interrupted in its wait, a crashing service), or Swarm is still updating them (an
    # interrupted rolling update): name -> "running/desired[, update <state>]".
    behind: dict[str, str] = field(default_factory=dict)


def plan_deploy(rendered: Rendered, manager: VM, changes: list[ServiceChange], view: ClusterView,
                pre: preflight.Preflight) -> Plan:
    """The actions of a changed deploy (pure): create missing configs/secrets, deploy."""
    plan = Plan(warnings=[*rendered.warnings, *pre.warnings])
    plan.blocked += [Blocked(rendered.namespace, e) for e in pre.errors]
    for obj in rendered.objects:
        if obj.name in (view.configs if obj.kind == "config" else view.secrets):
            continue
        plan.actions.append(Action(
            kind=f"create-{obj.kind}", where=manager, target=rendered.namespace,
            summary=f"create {obj.kind} {obj.name} (content of {obj.key})",
            argv=tuple(commands.object_create(obj.kind, obj.name, obj.labels)),
            stdin=Payload(obj.content, f"content of {obj.kind} {obj.key}")))
    counts = {k: [c.name for c in changes if c.kind == k] for k in ("add", "change", "remove")}
    what = "; ".join(f"{k} {len(v)} service{'s' if len(v) != 1 else ''}" for k, v in counts.items() if v)
    plan.actions.append(Action(
        kind="deploy", where=manager, target=rendered.namespace,
        summary=f"docker stack deploy {rendered.namespace} ({what}; hash {rendered.hash})",
        argv=tuple(commands.stack_deploy(rendered.namespace, view.cli_version)),
        stdin=Payload(rendered.text, "rendered compose file")))
    return plan


def read_stack(transport: Transport, config: Config, namespace: str,
               manager: VM | None = None) -> tuple[VM, StackRead]:
    """(manager, the namespace's services and their replicas): one round trip."""
    argv = commands.stack_services(namespace)
    if manager is not None:
        return manager, parse_stack_read(transport.run(manager, argv, mutating=False).stdout)
    vm, res = on_a_manager(transport, config, argv)
    return vm, parse_stack_read(res.stdout)


def read_view(transport: Transport, manager: VM, namespace: str) -> ClusterView:
    return parse_preflight(transport.run(manager, commands.preflight(namespace), mutating=False).stdout)


def _holder_nodes(transport: Transport, manager: VM, holders: set[str]) -> dict[str, set[str]]:
    out = {}
    for holder in sorted(holders):
        res = transport.run(manager, commands.service_nodes([holder]), mutating=False, check=False)
        out[holder] = {line.strip() for line in res.stdout.splitlines() if line.strip()}
    return out


def deploy(transport: Transport, config: Config, rendered: Rendered, *, dry_run: bool,
           timeout_s: float = DEFAULT_TIMEOUT_S, stable_s: float = STABLE_S,
           show: Callable[[DeployOutcome], None] = lambda outcome: None,
           report: Callable[[Mapping[str, Verdict]], None] = lambda verdicts: None,
           first_read: tuple[VM, StackRead] | None = None) -> DeployOutcome:
    """`first_read`: the namespace's services as the caller just read them (its first
    round trip), so that it is not read twice."""
    manager, read = first_read or read_stack(transport, config, rendered.namespace)
    running = read.services
    desired = desired_services(rendered)
    changes = compare(desired, running)
    outcome = DeployOutcome(Plan(warnings=list(rendered.warnings)), dry_run=dry_run, changes=changes,
                            manager=manager, facts=running)
    if not changes:
        # The spec is what the config says; is it also running?  A deploy interrupted in
        # its wait, or a service crashing since, is not done: wait for the truth again.
        # A service whose update Swarm paused gets no new task by itself: resume it
        # (one forced rollout of the same spec), then wait.
        outcome.behind = {**read.behind(), **read.in_progress()}
        outcome.plan.actions = [
            Action(kind="resume", where=manager, target=name,
                   summary=f"resume {name} ({rd} running; Swarm paused its update): docker service update --force",
                   argv=tuple(commands.service_resume(name)))
            for name, rd in sorted(read.paused().items())]
        show(outcome)
        if outcome.behind and not dry_run:
            started = None
            if outcome.plan.actions:
                started = read_view(transport, manager, rendered.namespace).now  # what failed before is history
                for action in outcome.plan.actions:
                    try:
                        transport.run(action.where, action.argv, mutating=True)
                    except PhoenixError as exc:
                        outcome.failed.append((action.target, str(exc)))
                        return outcome
                    outcome.applied.append(action)
            _wait_and_read(transport, config, manager, rendered, desired, outcome, timeout_s=timeout_s,
                           stable_s=stable_s, report=report, started=started, eligible={})
        return outcome
    view = read_view(transport, manager, rendered.namespace)
    pre = preflight.check(rendered, desired, view)
    if pre.host_collisions:
        holders = {holder for _, _, holder in pre.host_collisions}
        preflight.host_collision_messages(pre, desired, _holder_nodes(transport, manager, holders))
    outcome.plan = plan_deploy(rendered, manager, changes, view, pre)
    outcome.blocked = list(outcome.plan.blocked)
    show(outcome)
    if dry_run or outcome.blocked:
        return outcome
    for action in outcome.plan.actions:
        stdin = action.stdin.data if action.stdin else None
        # `docker stack deploy` resolves every image at the registry before it
        # returns: it may take longer than any other command, up to the deploy's own
        # timeout.  Everything else keeps the access's command_timeout_s.
        deadline = max(timeout_s, transport.access.command_timeout_s) if action.kind == "deploy" else None
        try:
            transport.run(action.where, action.argv, mutating=True, stdin=stdin, timeout=deadline)
        except PhoenixError as exc:
            outcome.failed.append((rendered.namespace, str(exc)))
            return outcome
        outcome.applied.append(action)
    eligible = {name: tuple(pre.candidates.get(name, [])) for name, d in desired.items() if d.mode == "global"}
    _wait_and_read(transport, config, manager, rendered, desired, outcome, timeout_s=timeout_s,
                   stable_s=stable_s, report=report, started=view.now, eligible=eligible)
    return outcome


def _wait_and_read(transport: Transport, config: Config, manager: VM, rendered: Rendered,
                   desired: Mapping[str, Desired], outcome: DeployOutcome, *, timeout_s: float, stable_s: float,
                   report, started: int | None, eligible: Mapping[str, Sequence[str]]) -> None:
    """Wait until every service converged or one failed (their logs kept), then read
    the services again: one that still differs from the document is pending."""
    polls = []

    def read():  # echoed once (--verbose), then quiet: the same read every second
        polls.append(1)
        res = transport.run(manager, commands.progress(rendered.namespace), mutating=False, quiet=len(polls) > 1)
        return parse_progress(res.stdout)

    outcome.verdicts = wait(read, desired, timeout_s=timeout_s, eligible=eligible, started=started,
                            stable_s=stable_s, report=report)
    for name, verdict in outcome.verdicts.items():
        if verdict.state == FAILED:
            outcome.failed.append((name, verdict.detail))
            try:  # gathered from every node of the service: a hung one must not lose the outcome
                res = transport.run(manager, commands.service_logs(name, LOG_LINES), mutating=False, check=False)
            except PhoenixError as exc:
                outcome.logs[name] = f"(no logs: {exc})"
                continue
            outcome.logs[name] = (res.stdout + res.stderr).strip()
    _, after = read_stack(transport, config, rendered.namespace, manager)
    outcome.facts = after.services
    if not outcome.failed:
        outcome.pending = [Action(kind=c.kind, where=manager, target=c.name, summary=c.summary())
                           for c in compare(desired, after.services)]
