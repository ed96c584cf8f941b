"""`inv swarm.render|diff|deploy|rm|envs`: stacks per environment (`<env>_<stack>`).

Every name and the whole render are checked before any connection: an unknown stack,
an unknown environment without `default`, an unresolved variable are one line each
and exit 1 with nothing contacted."""

from __future__ import annotations

import os
import sys

from invoke import task
from invoke.exceptions import Exit

from .. import portainer
from ..model import Config
from ..stack import naming
from ..stack.deploy import DEFAULT_TIMEOUT_S, deploy as deploy_stack
from ..stack.deploy import read_stack
from ..stack.diff import compare, describe, desired_services
from ..stack.envs import read_environments
from ..stack.remove import DEFAULT_TIMEOUT_S as RM_TIMEOUT_S
from ..stack.remove import remove
from ..stack.render import Rendered, RenderError, render
from ..show import show_deploy, show_environments, show_progress, show_remove
from . import common
from .common import MUTATING_HELP, err, load_config_or_exit, out, user_errors

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


def rendered_or_exit(config: Config, stack: str | None, env: str | None) -> Rendered:
    """Names checked and the stack rendered, or one message and exit 1 (no connection)."""
    stack, env = _stack_and_env(config, stack, env)
    settings = config.hypervisor.portainer
    if (stack, env) == (settings.stack, settings.env):
        # Portainer's own environment is rendered as portainer.deploy renders it (pinned
        # images, its node, the admin password secret): one document, whichever task.
        with user_errors():
            return portainer.render_portainer(config, portainer.read_password(config, os.environ))
    try:
        return render(config.stacks[stack], env)
    except RenderError as exc:
        err.print(f"error: {exc}", style="red", markup=False)
        raise Exit(code=1) from None


@task(name="render", auto_shortflags=False, help={"stack": STACK_HELP, "env": ENV_HELP})
def render_(c, stack=None, env=None):
    """Print the compose document a deploy of STACK as ENV sends (no connection)."""
    config = load_config_or_exit()
    rendered = rendered_or_exit(config, stack, env)
    for w in rendered.warnings:
        err.print(f"warning: {w}", style="yellow", markup=False)
    for obj in rendered.objects:
        err.print(f"# {obj.kind} {obj.name}: created from {obj.key} before the deploy", markup=False)
    sys.stdout.write(rendered.text)


@task(auto_shortflags=False, help={"stack": STACK_HELP, "env": ENV_HELP, "verbose": MUTATING_HELP["verbose"]})
def diff(c, stack=None, env=None, verbose=False):
    """Show every field that a deploy of STACK as ENV would change, service by service."""
    config = load_config_or_exit()
    rendered = rendered_or_exit(config, stack, env)
    with user_errors(), common.transport_for(config, verbose) as transport:
        manager, read = read_stack(transport, config, rendered.namespace)
    changes = compare(desired_services(rendered), read.services)
    if not changes:
        out.print(f"{rendered.namespace}: no changes (hash {rendered.hash}, read from {manager.name})", markup=False)
        return
    out.print(f"{rendered.namespace}: {len(changes)} service(s) differ (read from {manager.name})", markup=False)
    for change in changes:
        out.print(f"{change.kind} {change.name}", markup=False, highlight=False)
        for line in describe(change):
            out.print(line, markup=False, highlight=False)


@task(auto_shortflags=False, help={
    "stack": STACK_HELP, "env": ENV_HELP, **{k: MUTATING_HELP[k] for k in ("dry_run", "verbose")},
    "timeout": f"seconds to wait for the services to converge (default {DEFAULT_TIMEOUT_S:.0f})"})
def deploy(c, stack=None, env=None, dry_run=False, verbose=False, timeout=None):
    """Deploy STACK as environment ENV (<env>_<stack>): plan, show, deploy, wait for the truth."""
    config = load_config_or_exit()
    rendered = rendered_or_exit(config, stack, env)
    timeout_s = seconds_or_exit(timeout, DEFAULT_TIMEOUT_S)
    progress = show_progress(out)
    with user_errors(), common.transport_for(config, verbose) as transport:
        outcome = deploy_stack(transport, config, rendered, dry_run=dry_run, timeout_s=timeout_s,
                               show=lambda o: show_deploy(out, o, rendered, verbose=verbose, stage="plan"),
                               report=progress)
    show_deploy(out, outcome, rendered, verbose=verbose, stage="result", err=err)
    if not outcome.ok:
        raise Exit(code=1)


@task(auto_shortflags=False, help={
    "stack": STACK_HELP, "env": ENV_HELP, **{k: MUTATING_HELP[k] for k in ("dry_run", "verbose")},
    "volumes": "also remove the environment's volumes, on every swarm VM (their data is lost)",
    "timeout": f"seconds to wait until everything is gone (default {RM_TIMEOUT_S:.0f})"})
def rm(c, stack=None, env=None, dry_run=False, verbose=False, volumes=False, timeout=None):
    """Remove environment ENV of STACK (<env>_<stack>) and wait until it is gone; volumes are kept."""
    config = load_config_or_exit()
    stack, env = _stack_and_env(config, stack, env)
    namespace = naming.namespace(env, stack)
    timeout_s = seconds_or_exit(timeout, RM_TIMEOUT_S)
    with user_errors(), common.transport_for(config, verbose) as transport:
        outcome = remove(transport, config, namespace, dry_run=dry_run, volumes=volumes, timeout_s=timeout_s,
                         show=lambda o: show_remove(out, o, namespace, verbose=verbose, stage="plan"))
    show_remove(out, outcome, namespace, verbose=verbose, stage="result", err=err)
    if not outcome.ok:
        raise Exit(code=1)


@task(auto_shortflags=False, help={"json": "print one JSON document instead of a table",
                                   "verbose": MUTATING_HELP["verbose"]})
def envs(c, json=False, verbose=False):
    """List the environments on the swarm: stacks, services (running/desired), deployed hash."""
    config = load_config_or_exit()
    with user_errors(), common.transport_for(config, verbose) as transport:
        environments = read_environments(transport, config)
    if json:
        import json as jsonlib
        print(jsonlib.dumps([e.to_dict() for e in environments], indent=2))
    else:
        show_environments(out, environments)


def seconds_or_exit(value, default: float) -> float:
    if value is None:
        return default
    try:
        seconds = float(value)
    except ValueError:
        seconds = -1
    if not 1 <= seconds <= 86400:
        raise Exit(f"error: --timeout must be a number of seconds (1 to 86400), not {value!r}", code=1)
    return seconds


TASKS = (render_, diff, deploy, rm, envs)
