"""`inv swarm.render|diff|deploy|rm|envs`: stacks per environment (`<env>_<stack>`).

Every name and the whole render are checked before any connection: an unknown stack,
an unknown environment without `default`, an unresolved variable are one line each
and exit 1 with nothing contacted."""

from __future__ import annotations

import os
import sys
import time

from invoke import task
from invoke.exceptions import Exit

from ..portainer import service as portainer
from ..core.cluster_text import MAX_TEXT, control_characters
from ..core.model import Config
from ..docker import naming
from ..stack import registries
from ..stack.deploy import DEFAULT_TIMEOUT_S
from ..stack.deploy import read_stack
from ..stack.diff import compare, describe, desired_services
from ..stack.diff_report import CHANGES_EXIT
from ..stack.diff_report import to_json as diff_json
from ..stack.envs import read_environments
from ..stack.remove import DEFAULT_TIMEOUT_S as RM_TIMEOUT_S
from ..docker.render import Rendered, RenderError, render
from ..show.stacks import show_deploy, show_environments, show_history, show_progress, show_remove
from ..stack import ledger
from ..stack import lock as lock_mod
from ..stack.digests import pin
from ..stack.facts import on_a_manager
from ..stack.transaction import (Guard, Guarded, check_restorable, guarded_deploy, guarded_remove, rollback_target,
                             stored_rendered)
from ..stack.lock import DEFAULT_WAIT_S
from . import common
from .common import CONFIG_DIR_HELP, MUTATING_HELP, err, load_config_or_exit, out, user_errors

STACK_HELP = "stack: a directory under stacks/ (e.g. thinkheads_ai_app)"
ENV_HELP = "environment name, e.g. dev1: the stack is deployed as <env>_<stack>"


def _stack_and_env(config: Config, stack: str | None, env: str | None) -> tuple[str, str]:
    if not stack:
        raise Exit(f"--stack is required (stacks: {', '.join(sorted(config.stacks))})", code=1)
    if not env:
        raise Exit("--env is required (an environment name, e.g. dev1)", code=1)
    for problem in (naming.check_stack_name(stack), naming.check_env_name(env)):
        if problem:
            raise Exit(f"error: {problem}", code=1)
    if stack not in config.stacks:
        raise Exit(f"error: no stack {stack!r} in {config.stacks_dir} "
                   f"(stacks: {', '.join(sorted(config.stacks))})", code=1)
    full = naming.service_name(env, stack, max(config.stacks[stack].services, key=len))
    if len(full) > naming.MAX_SERVICE_NAME:
        raise Exit(f"error: environment {env!r} makes the service name {full!r} {len(full)} characters; "
                   f"the limit is {naming.MAX_SERVICE_NAME}", code=1)
    return stack, env


def renderer_or_exit(config: Config, stack: str | None, env: str | None):
    """Names checked, and a renderer (digests -> document) whose first render worked: or
    one message and exit 1 (no connection)."""
    stack, env = _stack_and_env(config, stack, env)
    settings = config.hypervisor.portainer
    if (stack, env) == (settings.stack, settings.env):
        # Portainer's own environment is rendered as portainer.deploy renders it (pinned
        # images, its node, the admin password secret): one document, whichever task.
        with user_errors():
            password = common.read_portainer_password(config)

        def renderer(digests):
            return portainer.render_portainer(config, password, digests)
    else:
        def renderer(digests):
            return render(config.stacks[stack], env, amend=pin(digests) if digests else None)
    try:
        renderer({})
    except (RenderError, portainer.PortainerError) as exc:
        err.print(f"error: {exc}", style="red", markup=False)
        raise Exit(code=1) from None
    return renderer


def rendered_or_exit(config: Config, stack: str | None, env: str | None) -> Rendered:
    """Names checked and the stack rendered, or one message and exit 1 (no connection)."""
    return renderer_or_exit(config, stack, env)({})


@task(name="render", auto_shortflags=False, help={"config_dir": CONFIG_DIR_HELP, "stack": STACK_HELP, "env": ENV_HELP})
def render_(c, stack=None, env=None, config_dir=None):
    """Print the compose document a deploy of STACK as ENV sends (no connection)."""
    config = load_config_or_exit(config_dir, uses=[stack] if stack else [])
    rendered = rendered_or_exit(config, stack, env)
    for w in rendered.warnings:
        err.print(f"warning: {w}", style="yellow", markup=False)
    for obj in rendered.objects:
        err.print(f"# {obj.kind} {obj.name}: created from {obj.key} before the deploy", markup=False)
    sys.stdout.write(rendered.text)


@task(auto_shortflags=False, help={"config_dir": CONFIG_DIR_HELP, 
    "stack": STACK_HELP, "env": ENV_HELP, "verbose": MUTATING_HELP["verbose"],
    "exit_code": f"exit 0 when nothing would change, {CHANGES_EXIT} when something would (errors: 1, usage: 2)",
    "json": "print one JSON document instead of text"})
def diff(c, stack=None, env=None, verbose=False, exit_code=False, json=False, config_dir=None):
    """Show every field that a deploy of STACK as ENV would change, service by service."""
    config = load_config_or_exit(config_dir, uses=[stack] if stack else [])
    rendered = rendered_or_exit(config, stack, env)
    with user_errors(), common.transport_for(config, verbose) as transport:
        manager, read = read_stack(transport, config, rendered.namespace)
    changes = compare(desired_services(rendered), read.services)
    if json:
        import json as jsonlib
        print(jsonlib.dumps(diff_json(rendered.namespace, manager.name, rendered.hash, changes), indent=2))
    elif not changes:
        out.print(f"{rendered.namespace}: no changes (hash {rendered.hash}, read from {manager.name})", markup=False)
    else:
        out.print(f"{rendered.namespace}: {len(changes)} service(s) differ (read from {manager.name})", markup=False)
        for change in changes:
            out.print(f"{change.kind} {change.name}", markup=False, highlight=False)
            for line in describe(change):
                out.print(line, markup=False, highlight=False)
    if changes and exit_code:
        raise Exit(code=CHANGES_EXIT)


GUARD_HELP = {
    "lock_wait": f"seconds to wait for the environment's lock when another run holds it (default {DEFAULT_WAIT_S:.0f})",
    "force_unlock": "take the environment's lock even though another run holds it (that run must be gone)",
}


def guard_for(command: str, lock_wait, force_unlock: bool, resolve: bool = True, *,
              require_digests: bool = False, restore: bool = True, credentials: tuple = ()) -> Guard:
    return Guard(command=command, lock_wait_s=seconds_or_exit(lock_wait, DEFAULT_WAIT_S, minimum=0, flag="--lock-wait"),
                 force_unlock=force_unlock, resolve=resolve, require_digests=require_digests, restore=restore,
                 credentials=credentials)


def note(line: str) -> None:
    err.print(line, style="yellow", markup=False, highlight=False)


def show_guarded(result: Guarded, verbose: bool) -> None:
    show_deploy(out, result.outcome, result.rendered, verbose=verbose, stage="result", err=err)
    if result.entry is not None:
        out.print(f"ledger: record #{result.entry.seq} {result.entry.kind} {result.entry.result}"
                  f" ({result.entry.duration_s} s)", markup=False, highlight=False)
    if result.collected is not None:
        out.print(result.collected.describe(), markup=False, highlight=False)
    restored = result.restored
    if restored is not None:
        target = restored.target
        show_deploy(out, restored.outcome, restored.rendered, verbose=verbose, stage="result", err=err)
        state = "converged" if restored.outcome.ok else "FAILED as well"
        err.print(f"restored: {result.rendered.namespace} to ledger record #{target.seq} (hash {target.hash}, "
                  f"the last deploy that converged): {state}", style="yellow" if restored.outcome.ok else "red",
                  markup=False, highlight=False)
        if restored.entry is not None:
            out.print(f"ledger: record #{restored.entry.seq} {restored.entry.kind} {restored.entry.result}"
                      f" ({restored.entry.duration_s} s)", markup=False, highlight=False)
    elif result.restore_note:
        err.print(result.restore_note, style="yellow", markup=False, highlight=False)


@task(auto_shortflags=False, help={"config_dir": CONFIG_DIR_HELP, 
    "stack": STACK_HELP, "env": ENV_HELP, **{k: MUTATING_HELP[k] for k in ("dry_run", "verbose")},
    "timeout": f"seconds to wait for the services to converge (default {DEFAULT_TIMEOUT_S:.0f})",
    "no_resolve": "deploy images by tag as written (do not resolve each tag to a digest on the manager)",
    "require_digests": "block the deploy when an image's registry cannot be reached (instead of deploying it by tag)",
    "no_restore": "when the deploy fails in its wait, leave it as it is (do not redeploy the last converged record)",
    **GUARD_HELP})
def deploy(c, stack=None, env=None, dry_run=False, verbose=False, timeout=None, no_resolve=False,
           lock_wait=None, force_unlock=False, require_digests=False, no_restore=False, config_dir=None):
    """Deploy STACK as environment ENV (<env>_<stack>): image gate, lock, plan, deploy, wait, ledger, restore."""
    config = load_config_or_exit(config_dir, uses=[stack] if stack else [])
    if no_resolve and require_digests:
        raise Exit("error: --require-digests needs the digests resolved: it cannot go with --no-resolve", code=1)
    renderer = renderer_or_exit(config, stack, env)
    timeout_s = seconds_or_exit(timeout, DEFAULT_TIMEOUT_S)
    first = renderer({})
    with user_errors():  # the registries' passwords, read before any connection
        credentials = registries.read_credentials(config, os.environ)
    guard = guard_for(f"swarm.deploy --stack {first.stack} --env {first.env}", lock_wait, force_unlock,
                      resolve=not no_resolve, require_digests=require_digests, restore=not no_restore,
                      credentials=credentials)
    with user_errors(), common.transport_for(config, verbose) as transport:
        result = guarded_deploy(transport, config, renderer, guard=guard, dry_run=dry_run, timeout_s=timeout_s,
                                show=lambda o, r: show_deploy(out, o, r, verbose=verbose, stage="plan"),
                                report=show_progress(out), note=note)
    show_guarded(result, verbose)
    if not result.outcome.ok:
        raise Exit(code=1)


@task(auto_shortflags=False, help={"config_dir": CONFIG_DIR_HELP, 
    "stack": STACK_HELP, "env": ENV_HELP, **{k: MUTATING_HELP[k] for k in ("dry_run", "verbose")},
    "volumes": "also remove the environment's volumes, on every swarm VM (their data is lost)",
    "timeout": f"seconds to wait until everything is gone (default {RM_TIMEOUT_S:.0f})", **GUARD_HELP})
def rm(c, stack=None, env=None, dry_run=False, verbose=False, volumes=False, timeout=None, lock_wait=None,
       force_unlock=False, config_dir=None):
    """Remove environment ENV of STACK (<env>_<stack>) and wait until it is gone; volumes are kept."""
    config = load_config_or_exit(config_dir, uses=[stack] if stack else [])
    stack, env = _stack_and_env(config, stack, env)
    namespace = naming.namespace(env, stack)
    timeout_s = seconds_or_exit(timeout, RM_TIMEOUT_S)
    guard = guard_for(f"swarm.rm --stack {stack} --env {env}", lock_wait, force_unlock)
    with user_errors(), common.transport_for(config, verbose) as transport:
        outcome, entry = guarded_remove(
            transport, config, namespace, env, stack, guard=guard, dry_run=dry_run, volumes=volumes,
            timeout_s=timeout_s, show=lambda o: show_remove(out, o, namespace, verbose=verbose, stage="plan"),
            note=note)
    show_remove(out, outcome, namespace, verbose=verbose, stage="result", err=err)
    if entry is not None:
        out.print(f"ledger: record #{entry.seq} rm {entry.result}", markup=False, highlight=False)
    if not outcome.ok:
        raise Exit(code=1)


@task(auto_shortflags=False, help={"config_dir": CONFIG_DIR_HELP, 
    "stack": STACK_HELP, "env": ENV_HELP, **{k: MUTATING_HELP[k] for k in ("dry_run", "verbose")},
    "to": "the ledger record (#N in swarm.history) to go back to; default: the converged deploy before the last one",
    "force": "go back to a record that did not converge (failed, rolled back or incomplete) all the same",
    "timeout": f"seconds to wait for the services to converge (default {DEFAULT_TIMEOUT_S:.0f})", **GUARD_HELP})
def rollback(c, stack=None, env=None, to=None, dry_run=False, verbose=False, timeout=None, lock_wait=None,
             force_unlock=False, force=False, config_dir=None):
    """Redeploy an earlier ledger record of ENV exactly (document, config versions, digests)."""
    config = load_config_or_exit(config_dir, uses=[stack] if stack else [])
    stack, env = _stack_and_env(config, stack, env)
    namespace = naming.namespace(env, stack)
    timeout_s = seconds_or_exit(timeout, DEFAULT_TIMEOUT_S)
    target_seq = None
    if to is not None:
        if not str(to).lstrip("#").isdigit():
            raise Exit(f"error: --to must be a ledger record number (see swarm.history), not {to!r}", code=1)
        target_seq = int(str(to).lstrip("#"))
    guard = guard_for(f"swarm.rollback --stack {stack} --env {env}", lock_wait, force_unlock, resolve=False,
                      restore=False)
    with user_errors(), common.transport_for(config, verbose) as transport:
        manager, res = on_a_manager(transport, config, ledger.read_argv(namespace))
        _, entries = ledger.parse_read(res.stdout)
        target = rollback_target(entries, target_seq)
        if target.result != ledger.CONVERGED and not force:
            raise Exit(f"error: record #{target.seq} is a {target.kind} that did not converge ({target.result}"
                       f"{': ' + target.reason if target.reason else ''}); going back to it would deploy what "
                       "failed: run with --force to do it all the same (nothing was done)", code=1)
        if target.result != ledger.CONVERGED:
            note(f"warning: record #{target.seq} did not converge ({target.result}): going back to it (--force)")
        check_restorable(transport, manager, target)
        stored = stored_rendered(target)
        out.print(f"rollback {namespace} to record #{target.seq} (hash {target.hash}, deployed "
                  f"{time.strftime('%Y-%m-%d %H:%M:%S', time.gmtime(target.started))} UTC by {target.who})",
                  markup=False, highlight=False)
        result = guarded_deploy(transport, config, lambda digests: stored, guard=guard, dry_run=dry_run,
                                kind="rollback", timeout_s=timeout_s,
                                show=lambda o, r: show_deploy(out, o, r, verbose=verbose, stage="plan"),
                                report=show_progress(out), note=note)
    show_guarded(result, verbose)
    if not result.outcome.ok:
        raise Exit(code=1)


@task(auto_shortflags=False, help={"config_dir": CONFIG_DIR_HELP, "stack": STACK_HELP, "env": ENV_HELP,
                                   "json": "print one JSON document instead of a table",
                                   "verbose": MUTATING_HELP["verbose"]})
def history(c, stack=None, env=None, json=False, verbose=False, config_dir=None):
    """The ledger of ENV: every deploy, rm and rollback, who, when, hash, digests, result."""
    config = load_config_or_exit(config_dir, uses=[stack] if stack else [])
    stack, env = _stack_and_env(config, stack, env)
    namespace = naming.namespace(env, stack)
    with user_errors(), common.transport_for(config, verbose) as transport:
        _, res = on_a_manager(transport, config, ledger.read_argv(namespace))
        _, entries = ledger.parse_read(res.stdout)
    if json:
        import json as jsonlib
        print(jsonlib.dumps([e.to_dict() for e in entries], indent=2))
    else:
        show_history(out, namespace, entries)


@task(name="lock", auto_shortflags=False, help={"config_dir": CONFIG_DIR_HELP, 
    "stack": STACK_HELP, "env": ENV_HELP, "verbose": MUTATING_HELP["verbose"],
    "ttl": "seconds the lock holds (default 3600); swarm.unlock frees it earlier",
    "reason": "why, shown to whoever finds the environment locked"})
def lock_(c, stack=None, env=None, ttl=None, reason=None, verbose=False, config_dir=None):
    """Lock ENV of STACK for people: deploys, rm and rollbacks wait or fail until it is unlocked or expires."""
    config = load_config_or_exit(config_dir, uses=[stack] if stack else [])
    stack, env = _stack_and_env(config, stack, env)
    namespace = naming.namespace(env, stack)
    ttl_s = int(seconds_or_exit(ttl, 3600, flag="--ttl"))
    if reason is not None:
        bad = control_characters(reason)
        if bad:
            raise Exit(f"error: --reason holds control characters ({' '.join(bad)}): give one line of text", code=1)
        if len(reason) > MAX_TEXT:
            raise Exit(f"error: --reason is {len(reason)} characters; at most {MAX_TEXT}", code=1)
    what = f"swarm.lock{': ' + reason if reason else ''}"
    with user_errors(), common.transport_for(config, verbose) as transport:
        manager, _ = on_a_manager(transport, config, lock_mod.read_argv(namespace))
        held = lock_mod.Lock(transport, manager, namespace, what, ttl_s=ttl_s, wait_s=0, report=note).acquire()
    out.print(f"locked {namespace}: {held.describe()}, until {time.strftime('%H:%M:%S', time.gmtime(held.expires))} "
              "UTC (swarm.unlock --force frees it)", markup=False, highlight=False)


@task(auto_shortflags=False, help={"config_dir": CONFIG_DIR_HELP, "stack": STACK_HELP, "env": ENV_HELP, "verbose": MUTATING_HELP["verbose"],
                                   "force": "remove the lock whoever holds it (say so to them)"})
def unlock(c, stack=None, env=None, force=False, verbose=False, config_dir=None):
    """Remove ENV's lock (--force: whoever holds it); without --force, only show who holds it."""
    config = load_config_or_exit(config_dir, uses=[stack] if stack else [])
    stack, env = _stack_and_env(config, stack, env)
    namespace = naming.namespace(env, stack)
    with user_errors(), common.transport_for(config, verbose) as transport:
        manager, res = on_a_manager(transport, config, lock_mod.read_argv(namespace))
        now, gens = lock_mod.parse_read(res.stdout)
        decision = lock_mod.decide(gens, now)
        if not gens:
            out.print(f"{namespace}: not locked (no changes)", markup=False)
            return
        if not force:
            state = "expired" if decision.free else "held"
            raise Exit(f"{namespace}: lock {state} by {gens[-1].describe(now)}; run with --force to remove it",
                       code=1)
        transport.run(manager, lock_mod.remove_argv([g.name for g in gens]), mutating=True)
    out.print(f"{namespace}: lock removed (was {gens[-1].describe(now)})", markup=False, highlight=False)


@task(auto_shortflags=False, help={"config_dir": CONFIG_DIR_HELP, "json": "print one JSON document instead of a table",
                                   "verbose": MUTATING_HELP["verbose"]})
def envs(c, json=False, verbose=False, config_dir=None):
    """List the environments on the swarm: stacks, services (running/desired), deployed hash."""
    config = load_config_or_exit(config_dir, uses=[])
    with user_errors(), common.transport_for(config, verbose) as transport:
        environments = read_environments(transport, config)
    if json:
        import json as jsonlib
        print(jsonlib.dumps([e.to_dict() for e in environments], indent=2))
    else:
        show_environments(out, environments)


def seconds_or_exit(value, default: float, *, minimum: float = 1, flag: str = "--timeout") -> float:
    if value is None:
        return default
    try:
        seconds = float(value)
    except ValueError:
        seconds = -1
    if not minimum <= seconds <= 86400:
        raise Exit(f"error: {flag} must be a number of seconds ({minimum:g} to 86400), not {value!r}", code=1)
    return seconds


TASKS = (render_, diff, deploy, rm, envs, rollback, history, lock_, unlock)
