"""`inv portainer.deploy|status`: Portainer alone, through the same deploy path as any
stack (design in phoenix_tasks/portainer.py).  The password file is read, and the
stack rendered, before any connection."""

from __future__ import annotations

import json as jsonlib
import os

from invoke import Collection, task
from invoke.exceptions import Exit

from .. import portainer
from ..model import Config
from ..show import show_deploy, show_portainer, show_progress
from ..stack.deploy import DEFAULT_TIMEOUT_S
from ..stack.deploy import deploy as deploy_stack
from ..stack.render import Rendered
from . import common
from .common import MUTATING_HELP, err, load_config_or_exit, out, user_errors
from .stacks import seconds_or_exit


def rendered_or_exit(config: Config) -> tuple[Rendered, portainer.Password | None, int]:
    """Password read, stack rendered, port known: or one message and exit 1 (no connection)."""
    with user_errors():
        password = portainer.read_password(config, os.environ)
        rendered = portainer.render_portainer(config, password)
        return rendered, password, portainer.published_port(rendered)


@task(auto_shortflags=False, help={
    **{k: MUTATING_HELP[k] for k in ("dry_run", "verbose")},
    "timeout": f"seconds to wait for Portainer's services to converge (default {DEFAULT_TIMEOUT_S:.0f})"})
def deploy(c, dry_run=False, verbose=False, timeout=None):
    """Deploy Portainer (portainer.stack as portainer.env), wait for it, check that it answers."""
    config = load_config_or_exit()
    rendered, password, port = rendered_or_exit(config)
    timeout_s = seconds_or_exit(timeout, DEFAULT_TIMEOUT_S)
    with user_errors(), common.transport_for(config, verbose) as transport:
        outcome = deploy_stack(transport, config, rendered, dry_run=dry_run, timeout_s=timeout_s,
                               show=lambda o: show_deploy(out, o, rendered, verbose=verbose, stage="plan"),
                               report=show_progress(out))
        show_deploy(out, outcome, rendered, verbose=verbose, stage="result", err=err)
        if dry_run or not outcome.ok:
            raise Exit(code=0 if outcome.ok else 1)
        status = portainer.read_status(transport, config, port)
    show_portainer(out, status, password)
    if not status.answers:
        raise Exit(code=1)


@task(auto_shortflags=False, help={"json": "print one JSON document instead of text",
                                   "verbose": MUTATING_HELP["verbose"]})
def status(c, json=False, verbose=False):
    """Is Portainer deployed, on which node, and does its server answer (HTTPS, from a manager)?"""
    config = load_config_or_exit()
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
