"""How stacks, environments and swarm services are named when a stack is deployed.

A stack deployed as environment ENV is the swarm stack ``ENV_STACK`` (its namespace),
so every service, network and config it makes starts with ``ENV_``.  Pure: no I/O.
"""

from __future__ import annotations

import re

STACK_NAME = re.compile(r"^[a-z][a-z0-9_]{0,39}$")
ENV_NAME = re.compile(r"^[a-z][a-z0-9-]{0,23}$")
MAX_SERVICE_NAME = 63  # swarm service names are DNS labels


def namespace(env: str, stack: str) -> str:
    """The swarm stack name of `stack` deployed as environment `env`."""
    return f"{env}_{stack}"


def service_name(env: str, stack: str, service: str) -> str:
    """The swarm service name of a stack's service in an environment."""
    return f"{namespace(env, stack)}_{service}"


def max_env_length(stack: str, services: list[str]) -> int:
    """The longest environment name that keeps every service name within the limit."""
    longest = max((len(s) for s in services), default=0)
    return MAX_SERVICE_NAME - len(stack) - longest - 2


def check_env_name(env: str) -> str | None:
    """Why `env` is not a valid environment name, or None when it is."""
    if ENV_NAME.fullmatch(env):
        return None
    return f"environment name {env!r} is not valid (lower-case letters, digits and '-', starting with a letter, at most 24 characters)"


def check_stack_name(stack: str) -> str | None:
    """Why `stack` is not a valid stack name, or None when it is."""
    if STACK_NAME.fullmatch(stack):
        return None
    return f"stack name {stack!r} is not valid (lower-case letters, digits and '_', starting with a letter, at most 40 characters)"
