"""The swarm's init-only settings: the overlay address pool (`swarm.default_addr_pool`,
`subnet_size`) is given to `swarm init` only (`init_argv`).  A swarm that exists keeps
its pool; a difference from the config is a plan warning (`pool_drift`), never an
action (changing it needs a new swarm)."""

from __future__ import annotations

from typing import Sequence

from ..core.model import SwarmSettings
from . import commands
from .facts import ClusterFacts

DOCKER_DEFAULT_POOL = ("10.0.0.0/8",)
DOCKER_DEFAULT_SUBNET_SIZE = 24


# -- address pool (init-only) -----------------------------------------------------------

def init_argv(settings: SwarmSettings, advertise_addr: str) -> tuple[str, ...]:
    """`docker swarm init` with the configured pool and subnet size, if any."""
    return tuple(commands.swarm_init(advertise_addr, [str(p) for p in settings.default_addr_pool],
                                     settings.subnet_size))


def describe_pool(pool: Sequence[object], size: int | None) -> str:
    if not pool:
        return f"{DOCKER_DEFAULT_POOL[0]} (docker's default) in /{size or DOCKER_DEFAULT_SUBNET_SIZE}s"
    return f"{', '.join(map(str, pool))} in /{size or DOCKER_DEFAULT_SUBNET_SIZE}s"


def init_summary(settings: SwarmSettings) -> str:
    """What an init adds to its one-line summary: the pool, when one is configured."""
    if not settings.default_addr_pool:
        return ""
    return f", overlay address pool {describe_pool(settings.default_addr_pool, settings.subnet_size)}"


def pool_drift(settings: SwarmSettings, facts: ClusterFacts) -> str | None:
    """The warning when the swarm's pool is not the configured one (None: same, or
    nothing configured, or no manager read).  Init-only: never an action."""
    if not settings.default_addr_pool:
        return None
    actual = facts.swarm_settings
    if actual is None or actual.default_addr_pool is None:
        return None
    have = tuple(actual.default_addr_pool) or DOCKER_DEFAULT_POOL
    have_size = actual.subnet_size or DOCKER_DEFAULT_SUBNET_SIZE
    want = tuple(str(p) for p in settings.default_addr_pool)
    want_size = settings.subnet_size or DOCKER_DEFAULT_SUBNET_SIZE
    if (have, have_size) == (want, want_size):
        return None
    return (f"default_addr_pool differs: the swarm has {describe_pool(actual.default_addr_pool, have_size)}, "
            f"the config says {describe_pool(want, want_size)}; changing it needs a new swarm "
            f"(not done by Phoenix)")


