"""What Phoenix reads from a stack's docker-compose.yml (it never rewrites it)."""

from __future__ import annotations

import re
from typing import Any, Iterator

# ${VAR}, ${VAR:-default}, ${VAR-default}, ${VAR:?err}, ${VAR?err}, and $VAR; "$$" escapes.
_VAR = re.compile(r"\$(?:\{(?P<braced>[A-Za-z_][A-Za-z0-9_]*)(?P<mod>:?[-?+][^}]*)?\}|(?P<plain>[A-Za-z_][A-Za-z0-9_]*))")

# Variables Phoenix provides to every deploy; a stack may use them without declaring them.
BUILTIN_VARIABLES = ("PHOENIX_ENV", "PHOENIX_STACK")


def variables_needed(text: str) -> list[str]:
    """Variables the compose text needs a value for (those with a default are optional)."""
    needed: list[str] = []
    for m in _VAR.finditer(text.replace("$$", "")):
        name = m["braced"] or m["plain"]
        mod = m["mod"] or ""
        if mod.startswith((":-", "-", ":+", "+")):
            continue
        if name not in needed and name not in BUILTIN_VARIABLES:
            needed.append(name)
    return needed


def variables_in(doc: Any) -> list[str]:
    """Variables a parsed compose document needs, from its values only.

    docker compose interpolates the values of the parsed file, not its text: a
    ``$VAR`` in a YAML comment is not a variable.
    """
    needed: list[str] = []
    for text in _strings(doc):
        for name in variables_needed(text):
            if name not in needed:
                needed.append(name)
    return needed


def _strings(doc: Any) -> Iterator[str]:
    if isinstance(doc, str):
        yield doc
    elif isinstance(doc, dict):
        for value in doc.values():
            yield from _strings(value)
    elif isinstance(doc, list):
        for value in doc:
            yield from _strings(value)


def services(doc: Any) -> dict[str, Any]:
    if isinstance(doc, dict) and isinstance(doc.get("services"), dict):
        return doc["services"]
    return {}


def placement_constraints(service: Any) -> Iterator[tuple[int, str]]:
    """(index, text) of the service's deploy.placement.constraints."""
    try:
        items = service["deploy"]["placement"]["constraints"] or []
    except (KeyError, TypeError):
        return
    if isinstance(items, list):
        for i, item in enumerate(items):
            if isinstance(item, str):
                yield i, item


def images(doc: Any) -> dict[str, str]:
    """service name -> image reference."""
    return {
        name: svc["image"]
        for name, svc in services(doc).items()
        if isinstance(svc, dict) and isinstance(svc.get("image"), str)
    }
