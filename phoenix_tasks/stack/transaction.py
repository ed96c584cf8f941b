"""Deploy, remove and roll back under the environment's lock, with a ledger record,
image digests and clean-up: the safety around stack/deploy.py and stack/remove.py.

    lock (lock.py) -> resolve digests (digests.py) -> render by digest -> plan, show
    -> ledger entry (only when something changes) -> apply, wait (renewing the lock)
    -> ledger result -> clean-up beyond the last K deploys (gc.py) -> unlock

A dry run takes no lock and writes no record (it still resolves digests: a plan by
digest is the point).  A deploy with nothing to change writes no record either, so
"no changes" runs never push a rollback target out of the ledger; unless it resumes an
update Swarm paused (deploy.py): that is a change, made under the lock, with a record.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Callable, Mapping

import yaml

from ..core.errors import PhoenixError
from ..core.model import VM, Config
from ..core.plan import Action, Blocked, Plan
from ..core.transport import Transport
from . import digests as digests_mod
from . import gc, ledger
from .deploy import DEFAULT_TIMEOUT_S, DeployOutcome, deploy, read_stack, read_view
from .diff import compare, desired_services
from .facts import StackRead
from .lock import DEFAULT_WAIT_S, Lock
from .remove import DEFAULT_TIMEOUT_S as RM_TIMEOUT_S
from .remove import RemoveOutcome, remove
from ..docker.render import Rendered
from .wait import FAILED

Renderer = Callable[[Mapping[str, str]], Rendered]  # digests -> the document to deploy


@dataclass(frozen=True)
class Guard:
    command: str  # what the lock and the ledger say this run is, e.g. "swarm.deploy --stack x --env dev1"
    lock_wait_s: float = DEFAULT_WAIT_S
    force_unlock: bool = False
    resolve: bool = True
    require_digests: bool = False  # a registry not reached blocks the deploy (instead of by tag)
    restore: bool = True  # a deploy that fails in its wait redeploys the last converged record
    # registries.Credential of the configured private registries: the manager logs in to
    # those the document's images name, in the digests' round trip
    credentials: tuple = ()


@dataclass
class Guarded:
    rendered: Rendered
    outcome: DeployOutcome | None = None
    entry: ledger.Entry | None = None
    collected: gc.Collected | None = None
    warnings: list[str] = field(default_factory=list)
    restored: "Guarded | None" = None  # the automatic restore after a failed wait
    restore_note: str = ""  # why nothing was restored
    target: ledger.Entry | None = None  # for a restore: the record it went back to


def result_of(outcome: DeployOutcome) -> tuple[str, str]:
    if outcome.ok:
        return ledger.CONVERGED, ""
    reasons = [f"{subject}: {message}" for subject, message in outcome.failed]
    reasons += [f"blocked {b.subject}: {b.reason}" for b in outcome.blocked]
    reasons += [f"pending {a.subject}: {a.summary}" for a in outcome.pending]
    rolled = any(v.state == FAILED and "rolled the update back" in v.detail for v in outcome.verdicts.values())
    return (ledger.ROLLED_BACK if rolled else ledger.FAILED), "; ".join(reasons) or "not converged"


def referenced_objects(document: Mapping) -> tuple[str, ...]:
    """The swarm configs and secrets a rendered document names (external, by name)."""
    names = []
    for section in ("configs", "secrets"):
        for spec in (document.get(section) or {}).values():
            if isinstance(spec, Mapping) and spec.get("external") and spec.get("name"):
                names.append(str(spec["name"]))
    return tuple(names)


def read_resolve_gate(transport: Transport, config: Config, renderer: Renderer, first: Rendered,
                      resolve: bool, manager: VM | None = None, credentials: tuple = ()
                      ) -> tuple[VM, StackRead, Rendered, digests_mod.Resolution]:
    """(the manager, the namespace's services, the document by digest, the Resolution:
    warnings and the image gate's lines).  The
    stack read and the digests' resolution run at once (two channels) on `manager`, or,
    when the caller knows none, on the first configured manager; should another manager
    answer the read (the first one is down or not a manager), the digests are resolved
    again there."""
    if not resolve or (manager is None and not config.managers):
        found, read = read_stack(transport, config, first.namespace, manager)
        return found, read, first, digests_mod.Resolution()
    guess = manager or config.managers[0]
    with ThreadPoolExecutor(max_workers=1) as pool:
        resolving = pool.submit(digests_mod.render_by_digest, transport, guess, renderer, first, credentials)
        found, read = read_stack(transport, config, first.namespace, manager)
        try:
            resolved, error = resolving.result(), None
        except PhoenixError as exc:
            resolved, error = None, exc
    if found.vmid != guess.vmid:
        resolved, error = digests_mod.render_by_digest(transport, found, renderer, first, credentials), None
    if error is not None:
        raise error
    rendered, resolution = resolved
    return found, read, rendered, resolution


def gated(rendered: Rendered, manager: VM, read: StackRead, lines: list[str], warnings: list[str],
          dry_run: bool) -> DeployOutcome:
    """The outcome of a deploy the image gate stopped: the changes it would have made
    (to show), one blocked line per image, nothing applied, nothing locked."""
    plan = Plan(warnings=[*rendered.warnings, *warnings],
                blocked=[Blocked(rendered.namespace, line) for line in lines])
    changes = compare(desired_services(rendered), read.services)
    if changes:  # what would have run, shown with its block (as a pre-flight block shows it)
        plan.actions.append(Action(kind="deploy", where=manager, target=rendered.namespace,
                                   summary=f"docker stack deploy {rendered.namespace} (hash {rendered.hash})"))
    outcome = DeployOutcome(plan, dry_run=dry_run, changes=changes, manager=manager, facts=read.services)
    outcome.blocked = list(plan.blocked)
    return outcome


def gate_lines(resolution: digests_mod.Resolution, require_digests: bool) -> list[str]:
    """What blocks the deploy: images the registry says do not exist or refuses; with
    --require-digests also those whose registry was not reached."""
    return [*resolution.blocked,
            *([f"{line}: --require-digests refuses to deploy it by tag" for line in resolution.unreachable]
              if require_digests else [])]


def should_restore(guard: Guard, outcome: DeployOutcome | None, dry_run: bool) -> bool:
    """A deploy that failed in its wait (a task rejected, a crash, not converged in time)
    restores the last converged record, unless --no-restore."""
    return (guard.restore and not dry_run and outcome is not None
            and any(v.state == FAILED for v in outcome.verdicts.values()))


def guarded_deploy(transport: Transport, config: Config, renderer: Renderer, *, guard: Guard, dry_run: bool,
                   kind: str = "deploy", timeout_s: float = DEFAULT_TIMEOUT_S,
                   show: Callable[[DeployOutcome, Rendered], None] = lambda o, r: None,
                   report: Callable[[Mapping], None] = lambda v: None,
                   note: Callable[[str], None] = lambda line: None) -> Guarded:
    """Read first, without the lock: a deploy with nothing to change (the usual second
    run) takes no lock, writes nothing and costs the reads alone.  The image gate is
    read in the same round trip (the digests' resolution): an image the registry does
    not have, or refuses, stops the deploy here.  With changes, the lock is taken and
    everything is read and planned again under it.  A deploy that fails in its wait
    redeploys the last converged ledger record (restore), as a second record."""
    rendered = renderer({})
    manager, read, rendered, resolution = read_resolve_gate(transport, config, renderer, rendered, guard.resolve,
                                                            credentials=guard.credentials)
    warnings = list(resolution.warnings)
    result = Guarded(rendered, warnings=warnings)

    def with_warnings(outcome: DeployOutcome) -> DeployOutcome:
        outcome.plan.warnings[:0] = [w for w in warnings if w not in outcome.plan.warnings]
        return outcome

    blocking = gate_lines(resolution, guard.require_digests)
    if blocking:
        result.outcome = gated(rendered, manager, read, blocking, warnings, dry_run)
        show(result.outcome, rendered)
        return result

    swarm = config.hypervisor.swarm

    def new_lock() -> Lock:
        return Lock(transport, manager, rendered.namespace, guard.command, ttl_s=swarm.lock_ttl_s,
                    wait_s=guard.lock_wait_s, force=guard.force_unlock, report=note)

    if dry_run or (not compare(desired_services(rendered), read.services) and not read.paused()):
        # nothing to change (it may still wait for replicas), or only a plan: no lock.
        # (A paused update to resume is a change: under the lock, with a record.)
        result.outcome = deploy(transport, config, rendered, dry_run=dry_run, timeout_s=timeout_s,
                                show=lambda o: show(with_warnings(o), rendered), report=report,
                                first_read=(manager, read))
        if should_restore(guard, result.outcome, dry_run):
            lock = new_lock()
            lock.acquire()
            try:
                restore(transport, config, manager, result, guard=guard, lock=lock, timeout_s=timeout_s,
                        show=show, report=report, note=note)
            finally:
                lock.release()
        return result

    lock = new_lock()
    lock.acquire()
    try:
        recorder = ledger.Recorder(transport, manager)

        def on_plan(outcome: DeployOutcome) -> None:
            lock.renew_if_due()  # the reads and the pre-flight may have taken a while
            show(with_warnings(outcome), rendered)
            if (outcome.changes or outcome.plan.actions) and not outcome.blocked:
                result.entry = recorder.start(ledger.Entry(
                    namespace=rendered.namespace, seq=0, kind=kind, env=rendered.env, stack=rendered.stack,
                    hash=rendered.hash, who=lock.holder, command=guard.command, started=0,
                    document=rendered.text, objects=referenced_objects(rendered.document),
                    digests=digests_mod.images_digests(rendered.document),
                    services=tuple(f"{c.kind} {c.name}" for c in outcome.changes)))

        def on_progress(verdicts) -> None:
            lock.renew_if_due()
            report(verdicts)

        outcome = deploy(transport, config, rendered, dry_run=False, timeout_s=timeout_s,
                         show=on_plan, report=on_progress)
        result.outcome = outcome
        if result.entry is not None:
            state, reason = result_of(outcome)
            recorder.finish(result.entry, state, reason)
            if state == ledger.CONVERGED:
                result.collected = gc.collect(transport, manager, rendered.namespace, swarm.keep_deploys)
        if should_restore(guard, outcome, False):
            restore(transport, config, manager, result, guard=guard, lock=lock, timeout_s=timeout_s,
                    show=show, report=report, note=note)
        return result
    finally:
        lock.release()


def restore(transport: Transport, config: Config, manager: VM, result: Guarded, *, guard: Guard, lock: Lock,
            timeout_s: float, show, report, note) -> None:
    """Redeploy the environment's last converged ledger record, as `swarm.rollback`
    does, under the lock already held, and wait for it: a record of its own (kind
    rollback).  Sets result.restored (or result.restore_note: why nothing was restored)."""
    rendered = result.rendered
    ns = rendered.namespace
    _, entries = ledger.read(transport, manager, ns)
    failed_seq = result.entry.seq if result.entry is not None else None
    good = [e for e in entries if e.result == ledger.CONVERGED and e.document and e.seq != failed_seq]
    if not good:
        result.restore_note = (f"nothing to restore: no deploy of {ns} has converged before "
                               "(its first deploy failed); what failed stays as it is")
        return
    target = good[-1]
    if target.hash == rendered.hash:
        result.restore_note = (f"nothing to restore: the last deploy of {ns} that converged (record "
                               f"#{target.seq}) is this same document")
        return
    try:
        check_restorable(transport, manager, target)
        stored = stored_rendered(target)
    except RollbackRefused as exc:
        result.restore_note = f"cannot restore: {exc}"
        return
    note(f"restoring {ns} to ledger record #{target.seq} (hash {target.hash}, the last deploy that converged)")
    restored = Guarded(stored, target=target)
    recorder = ledger.Recorder(transport, manager)
    command = f"{guard.command} (automatic restore to #{target.seq})"

    def on_plan(outcome: DeployOutcome) -> None:
        lock.renew_if_due()
        show(outcome, stored)
        if (outcome.changes or outcome.plan.actions) and not outcome.blocked:
            restored.entry = recorder.start(ledger.Entry(
                namespace=ns, seq=0, kind="rollback", env=stored.env, stack=stored.stack, hash=stored.hash,
                who=lock.holder, command=command, started=0, document=stored.text,
                objects=referenced_objects(stored.document), digests=dict(target.digests),
                services=tuple(f"{c.kind} {c.name}" for c in outcome.changes)))

    def on_progress(verdicts) -> None:
        lock.renew_if_due()
        report(verdicts)

    restored.outcome = deploy(transport, config, stored, dry_run=False, timeout_s=timeout_s, show=on_plan,
                              report=on_progress)
    if restored.entry is not None:
        state, reason = result_of(restored.outcome)
        recorder.finish(restored.entry, state, reason)
    result.restored = restored


def guarded_remove(transport: Transport, config: Config, namespace: str, env: str, stack: str, *, guard: Guard,
                   dry_run: bool, volumes: bool, timeout_s: float = RM_TIMEOUT_S,
                   show: Callable[[RemoveOutcome], None] = lambda o: None,
                   note: Callable[[str], None] = lambda line: None) -> tuple[RemoveOutcome, ledger.Entry | None]:
    """As guarded_deploy: nothing to remove is a read alone; otherwise lock, record, remove."""
    first = remove(transport, config, namespace, dry_run=True, volumes=volumes)
    first.dry_run = dry_run
    if dry_run or first.plan.empty:
        show(first)
        return first, None
    manager = first.manager
    lock = Lock(transport, manager, namespace, guard.command, ttl_s=config.hypervisor.swarm.lock_ttl_s,
                wait_s=guard.lock_wait_s, force=guard.force_unlock, report=note)
    lock.acquire()
    try:
        entry: list[ledger.Entry] = []
        recorder = ledger.Recorder(transport, manager)

        def on_plan(outcome: RemoveOutcome) -> None:
            show(outcome)
            if not outcome.plan.empty:
                entry.append(recorder.start(ledger.Entry(
                    namespace=namespace, seq=0, kind="rm", env=env, stack=stack, hash=None,
                    who=lock.holder, command=guard.command, started=0)))

        outcome = remove(transport, config, namespace, dry_run=False, volumes=volumes, timeout_s=timeout_s,
                         show=on_plan)
        if entry:
            failed = "; ".join(f"{s}: {m}" for s, m in outcome.failed) or \
                "; ".join(f"{a.subject}: {a.summary}" for a in outcome.pending)
            recorder.finish(entry[0], ledger.REMOVED if outcome.ok else ledger.FAILED, failed)
        return outcome, (entry[0] if entry else None)
    finally:
        lock.release()


class RollbackRefused(PhoenixError):
    """The ledger has no such deploy, or what it needs is gone (nothing was changed)."""


def rollback_target(entries: list[ledger.Entry], to: int | None) -> ledger.Entry:
    """The record to go back to: `to` (a seq), else the last converged deploy before
    what runs now.  Errors list the records there are."""
    listing = "; ".join(f"#{e.seq} {e.kind} {e.result} {e.hash or '-'}" for e in entries) or "none"
    if to is not None:
        match = [e for e in entries if e.seq == to]
        if not match:
            raise RollbackRefused(f"no ledger record #{to} (records: {listing})")
        target = match[0]
        if target.document is None or target.kind == "rm":
            raise RollbackRefused(f"record #{to} is a {target.kind}: there is no document to go back to")
        return target
    good = [e for e in entries if e.result == ledger.CONVERGED and e.document]
    # After a deploy that converged, "back" is the converged one before it; after one
    # that failed (or was rolled back, or never finished), it is the last that converged.
    latest_ok = bool(entries) and entries[-1].result == ledger.CONVERGED and entries[-1].document is not None
    want = 2 if latest_ok else 1
    if len(good) < want:
        raise RollbackRefused(f"no earlier converged deploy to go back to (records: {listing})")
    return good[-want]


def stored_rendered(entry: ledger.Entry) -> Rendered:
    try:
        document = yaml.safe_load(entry.document or "")
    except yaml.YAMLError:
        document = None
    if not isinstance(document, dict) or not isinstance(document.get("services"), dict):
        raise RollbackRefused(f"record #{entry.seq} holds no readable compose document")
    return Rendered(entry.stack, entry.env, entry.namespace, document, entry.document or "", entry.hash or "",
                    (), ())


def check_restorable(transport: Transport, manager: VM, entry: ledger.Entry) -> None:
    document = stored_rendered(entry).document
    view = read_view(transport, manager, entry.namespace)
    missing = []
    for section, have in (("configs", view.configs), ("secrets", view.secrets)):
        for key, spec in (document.get(section) or {}).items():
            if isinstance(spec, Mapping) and spec.get("external"):
                name = spec.get("name") or key  # docker names an external object by its key
                if name not in have:
                    missing.append(f"{section[:-1]} {name}")
    if missing:
        raise RollbackRefused(f"record #{entry.seq} cannot be restored: {', '.join(missing)} no longer exist "
                              f"(removed by `swarm.rm` or by clean-up); nothing was changed")
