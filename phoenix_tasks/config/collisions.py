"""Stacks whose swarm objects can collide (issue 21, item 5).

Every object a stack makes in environment ENV is named `ENV_STACK_<name>` (services,
networks, volumes; configs and secrets `ENV_STACK_<key>_<hash8>`).  An environment
name has no `_`, so two environments never collide; two stacks can, in every
environment, exactly when one's name followed by `_` begins the other's:
`thinkheads_ai` with service `app_api` and `thinkheads_ai_app` with service `api`
both make `dev1_thinkheads_ai_app_api`.  Even without such a pair today, the shorter
stack's namespace (`dev1_thinkheads_ai`) is a prefix of every object of the longer
one, and a name filter (`docker service ls --filter name=...`) or a later service
would mix them up; so such a pair is refused outright, naming any collision it
already has.
"""

from __future__ import annotations

from typing import Any

from . import compose
from .problems import Problem
from .read import Raw

SECTIONS = ("networks", "volumes", "configs", "secrets")


def object_names(doc: Any) -> dict[str, str]:
    """`<name>` -> what it is (`service api`), of everything a stack's namespace holds."""
    names = {name: f"service {name!r}" for name in compose.services(doc)}
    if isinstance(doc, dict):
        for section in SECTIONS:
            for key in doc.get(section) or {}:
                names.setdefault(str(key), f"{section[:-1]} {key!r}")
    return names


def check_stack_collisions(raw: Raw, problems: list[Problem]) -> None:
    stacks = sorted(set(raw.stack_dirs) | raw.incomplete_stacks)
    for short in stacks:
        for long in stacks:
            if long == short or not long.startswith(short + "_"):
                continue
            rest = long[len(short) + 1:]  # thinkheads_ai_app = thinkheads_ai + _ + app
            clash = ""
            mine, theirs = object_names(raw.composes.get(short)), object_names(raw.composes.get(long))
            for name, what in mine.items():
                if name.startswith(rest + "_") and name[len(rest) + 1:] in theirs:
                    other = name[len(rest) + 1:]
                    clash = (f": {what} of {short!r} and {theirs[other]} of {long!r} are both "
                             f"<env>_{long}_{other}")
                    break
            problems.append(Problem(
                (raw.stacks_dir / long), "",
                f"stack name {long!r} begins with stack {short!r} and '_': in every environment, "
                f"namespace <env>_{short} is a prefix of <env>_{long}'s objects, so their services, "
                f"networks, configs and secrets can collide{clash}; rename one of them "
                f"(a stack's name must not begin with another's name and '_')"))

