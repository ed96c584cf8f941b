"""`inv portainer.deploy|status`: Portainer alone, through the same deploy path as any
stack (design in phoenix_tasks/portainer/service.py).  The password file is read, and the
stack rendered, before any connection."""

from __future__ import annotations

import json as jsonlib
import os

from invoke import Collection, task
from invoke.exceptions import Exit

from ..portainer import service as portainer
from ..core.model import Config
from ..show.portainer import show_portainer
from ..show.stacks import show_deploy, show_progress
from ..stack import registries
from ..stack.deploy import DEFAULT_TIMEOUT_S
from ..stack.transaction import guarded_deploy
from ..docker.render import Rendered
from . import common
from .common import CONFIG_DIR_HELP, MUTATING_HELP, load_config_or_exit, out, user_errors
from .stacks import GUARD_HELP, guard_for, note, seconds_or_exit, show_guarded


def rendered_or_exit(config: Config) -> tuple[Rendered, portainer.Password | None, int]:
    """Password read, stack rendered, port known: or one message and exit 1 (no connection)."""
    with user_errors():
        password = common.read_portainer_password(config)
        rendered = portainer.render_portainer(config, password)
        return rendered, password, portainer.published_port(rendered)


def carry_data_if_moved(transport, config: Config, dry_run: bool) -> None:
    """A role change moved the server's node: its data first, as sync-all does
    (portainer/data.py); DataMoveFailed (exit 1, nothing deployed) when it cannot."""
    from ..portainer import data as portainer_data
    from ..stack.deploy import read_stack
    manager, read = read_stack(transport, config, portainer.namespace(config))
    move = portainer_data.plan_move(config, read, portainer.server_service(config), portainer.namespace(config))
    if move is not None:
        out.print(f"portainer data: {move.summary()}", markup=False, highlight=False)
        if not dry_run:
            portainer_data.carry(transport, move, manager, report=lambda line: out.print(line, markup=False))


@task(auto_shortflags=False, help={"config_dir": CONFIG_DIR_HELP, 
    **{k: MUTATING_HELP[k] for k in ("dry_run", "verbose")},
    "timeout": f"seconds to wait for Portainer's services to converge (default {DEFAULT_TIMEOUT_S:.0f})",
    "no_resolve": "deploy images by tag as pinned (do not resolve them to digests on the manager)", **GUARD_HELP})
def deploy(c, dry_run=False, verbose=False, timeout=None, no_resolve=False, lock_wait=None, force_unlock=False, config_dir=None):
    """Deploy Portainer (portainer.stack as portainer.env), wait for it, check that it answers."""
    config = load_config_or_exit(config_dir)
    rendered, password, port = rendered_or_exit(config)
    timeout_s = seconds_or_exit(timeout, DEFAULT_TIMEOUT_S)
    with user_errors():  # the private registries' passwords, read before any connection
        credentials = registries.read_credentials(config, os.environ)
    guard = guard_for("portainer.deploy", lock_wait, force_unlock, resolve=not no_resolve, credentials=credentials)
    with user_errors(), common.transport_for(config, verbose) as transport:
        carry_data_if_moved(transport, config, dry_run)
        result = guarded_deploy(transport, config, lambda digests: portainer.render_portainer(config, password, digests),
                                guard=guard, dry_run=dry_run, timeout_s=timeout_s,
                                show=lambda o, r: show_deploy(out, o, r, verbose=verbose, stage="plan"),
                                report=show_progress(out), note=note)
        show_guarded(result, verbose)
        if dry_run or not result.outcome.ok:
            raise Exit(code=0 if result.outcome.ok else 1)
        status = portainer.read_status(transport, config, port)
    show_portainer(out, status, password)
    if not status.answers:
        raise Exit(code=1)


@task(auto_shortflags=False, help={"config_dir": CONFIG_DIR_HELP, "json": "print one JSON document instead of text",
                                   "verbose": MUTATING_HELP["verbose"]})
def status(c, json=False, verbose=False, config_dir=None):
    """Is Portainer deployed, on which node, and does its server answer (HTTPS, from a manager)?"""
    config = load_config_or_exit(config_dir)
    rendered, password, port = rendered_or_exit(config)
    with user_errors(), common.transport_for(config, verbose) as transport:
        result = portainer.read_status(transport, config, port)
    if json:
        print(jsonlib.dumps(result.to_dict(), indent=2))
    else:
        show_portainer(out, result, password)
    if not result.answers:
        raise Exit(code=1)


ns = Collection("portainer")
ns.add_task(deploy)
ns.add_task(status)
