"""`inv swarm.logs|ps`: what an environment's services print, and where their tasks are.

Reads only: names are checked before any connection (an unknown stack, an environment
the stack does not declare, a service it does not have: one line, exit 1)."""

from __future__ import annotations

import json as jsonlib
import sys

from invoke import task
from invoke.exceptions import Exit

from ..show.stacks import show_tasks
from ..stack import logs as logs_mod
from ..docker import naming
from ..stack import ps as ps_mod
from ..stack.facts import on_a_manager
from . import common
from .common import CONFIG_DIR_HELP, MUTATING_HELP, load_config_or_exit, out, user_errors
from .stacks import ENV_HELP, STACK_HELP, _stack_and_env


def _declared_env_or_exit(config, stack: str, env: str) -> None:
    environments = config.stacks[stack].environments
    if env not in environments and "default" not in environments:
        raise Exit(f"error: stack {stack!r} declares no environment {env!r} and no 'default' "
                   f"(environments: {', '.join(sorted(environments))})", code=1)


def _service_or_exit(config, stack: str, service: str | None) -> str | None:
    if service is None:
        return None
    known = sorted(config.stacks[stack].services)
    if service not in known:
        raise Exit(f"error: stack {stack!r} has no service {service!r} (services: {', '.join(known)})", code=1)
    return service


def _write(line: str) -> None:
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


def _reader_gone() -> None:
    """`phoenix swarm logs ... | head`: the reader closed the pipe; end quietly."""
    import os
    os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())


@task(auto_shortflags=False, help={"config_dir": CONFIG_DIR_HELP, 
    "stack": STACK_HELP, "env": ENV_HELP,
    "service": "only this service of the stack (e.g. api); default: every service, interleaved by time",
    "follow": "keep printing new lines until Ctrl-C",
    "tail": "only the last N lines of each service (default: all)",
    "since": "only lines since a time: a duration (10m, 1h30m) or a timestamp (2026-12-08T04:00:00Z)",
    "timestamps": "print docker's timestamp before each line",
    "verbose": MUTATING_HELP["verbose"]})
def logs(c, stack=None, env=None, service=None, follow=False, tail=None, since=None, timestamps=False,
         verbose=False, config_dir=None):
    """The logs of ENV's services (from a manager), prefixed with service, task and node."""
    config = load_config_or_exit(config_dir)
    stack, env = _stack_and_env(config, stack, env)
    _declared_env_or_exit(config, stack, env)
    service = _service_or_exit(config, stack, service)
    with user_errors():
        tail, since = logs_mod.check_tail(tail), logs_mod.check_since(since)
    namespace = naming.namespace(env, stack)
    with user_errors(), common.transport_for(config, verbose) as transport:
        manager, res = on_a_manager(transport, config, logs_mod.service_names(namespace))
        running = res.stdout.split()
        if not running:
            raise Exit(f"error: environment {env!r} of stack {stack!r} is not on the swarm "
                       f"(no service of {namespace}; `phoenix swarm envs` lists what is)", code=1)
        names = [naming.service_name(env, stack, service)] if service else running
        if service and names[0] not in running:
            raise Exit(f"error: {names[0]} is not on the swarm (services of {namespace}: "
                       f"{', '.join(running)})", code=1)
        if follow:
            try:
                codes = logs_mod.follow(transport, manager, names, lambda line: _write(line.text(timestamps)),
                                        tail=tail, since=since)
            except KeyboardInterrupt:
                return  # Ctrl-C is how a follow ends: the streams' channels are closed
            except BrokenPipeError:
                return _reader_gone()
            failed = [s for s, code in codes.items() if code not in (0, None)]
            if failed:
                raise Exit(f"error: the logs of {', '.join(failed)} ended with an error", code=1)
            return
        outputs = []
        for name in names:
            r = transport.run(manager, logs_mod.service_logs(name, tail=tail, since=since), mutating=False)
            outputs.append(r.stdout + r.stderr)
    try:
        for line in logs_mod.merge(outputs):
            _write(line.text(timestamps))
    except BrokenPipeError:
        _reader_gone()


@task(auto_shortflags=False, help={"config_dir": CONFIG_DIR_HELP, 
    "stack": STACK_HELP, "env": ENV_HELP,
    "all": "every task swarm still keeps (its task history), not only the current and the last failed ones",
    "json": "print one JSON document instead of a table",
    "verbose": MUTATING_HELP["verbose"]})
def ps(c, stack=None, env=None, all=False, json=False, verbose=False, config_dir=None):  # noqa: A002 - the flag is --all
    """Every task of ENV: service, slot, node, desired and current state, age, error, image digest."""
    config = load_config_or_exit(config_dir)
    stack, env = _stack_and_env(config, stack, env)
    _declared_env_or_exit(config, stack, env)
    namespace = naming.namespace(env, stack)
    with user_errors(), common.transport_for(config, verbose) as transport:
        manager, res = on_a_manager(transport, config, ps_mod.read_argv(namespace))
        read = ps_mod.parse_read(res.stdout)
    tasks = read.tasks if all else ps_mod.current_and_last_failed(read.tasks)
    if json:
        print(jsonlib.dumps(ps_mod.to_json(namespace, manager.name, read.now, tasks), indent=2))
    else:
        show_tasks(out, namespace, manager.name, read.now, tasks)


TASKS = (logs, ps)

__all__ = ["TASKS", "logs", "ps"]
