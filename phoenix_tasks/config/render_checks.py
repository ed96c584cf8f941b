"""Checks that need a stack rendered: `inv validate` renders every stack for every
environment it declares (and Portainer's stack for its environment), without
connecting, so that it refuses what a deploy would refuse (issue 21, item 6).

A render reads the config and secret files the compose file names (regular files
inside the stack directory, 1 MiB at most: a FIFO, a symlink out or to /dev/zero is
refused), interpolates and casts the values, and applies docker/refusals.py (bounds,
options swarm lacks, image references, references into other environments).  Each
problem names the compose file, its JSON pointer, and the environments it is found in.
"""

from __future__ import annotations

from pathlib import Path

from ..core import paths
from . import compose
from .build import build_stack
from ..core.safe_read import pointer
from ..docker.render import RenderError, render
from .problems import Problem
from .read import Raw


def environments_to_render(raw: Raw, name: str) -> list[str]:
    """The environments a stack declares, and Portainer's for its stack."""
    envs = list(raw.manifests[name].get("environments", {}))
    hv = raw.hypervisor
    if hv is not None and hv["portainer"]["stack"] == name and hv["portainer"]["env"] not in envs:
        envs.append(hv["portainer"]["env"])
    return envs


def check_stack_renders(raw: Raw, problems: list[Problem]) -> None:
    # Places the compose schemas (checked before, as docker refuses first) refused already.
    refused = {(p.file, p.pointer) for p in problems if p.severity == "error"}
    for name in raw.manifests:
        if name not in raw.composes:
            continue
        stack = build_stack(raw, name)
        # Variables with no value are reported against phoenix.json (checks._check_variables).
        reported = set(compose.variables_in(raw.composes[name]))
        found: dict[tuple[Path, str, str, str], list[str]] = {}
        for env in environments_to_render(raw, name):
            try:
                rendered = render(stack, env)
            except RenderError as exc:
                for path, message in exc.items or [((), str(exc))]:
                    if any(f"${{{v}}}" in message for v in set(exc.variables) & reported):
                        continue
                    found.setdefault((stack.compose_file, compose_pointer(path), _local(message, path), "error"),
                                     []).append(env)
                continue
            for warning in rendered.warnings:
                if warning.startswith(paths.STACK_COMPOSE_FILE + " /"):
                    where, _, message = warning[len(paths.STACK_COMPOSE_FILE) + 1:].partition(": ")
                    found.setdefault((stack.compose_file, where, message, "warning"), []).append(env)
        for (file, where, message, severity), envs in found.items():
            if severity == "error" and (file, where) in refused:
                continue  # docker's own schema named this place already: one line a problem
            label = "environment" if len(envs) == 1 else "environments"
            problems.append(Problem(file, where, f"{message} ({label} {', '.join(map(repr, envs))})", severity))


def compose_pointer(path: tuple) -> str:
    return pointer(*path)


def _local(message: str, path: tuple) -> str:
    """A render message without the file and pointer the Problem gives already."""
    prefix = f"{paths.STACK_COMPOSE_FILE} {compose_pointer(path)}: "
    return message[len(prefix):] if message.startswith(prefix) else message
