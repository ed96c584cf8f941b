"""Compose variable interpolation, as Compose defines it, and the type casts after it.

`${VAR}` and `$VAR`; `${VAR:-default}` (unset or empty), `${VAR-default}` (unset);
`${VAR:?message}` / `${VAR?message}` (an error when unset or empty / unset);
`${VAR:+other}` / `${VAR+other}` (other when set and non-empty / set); `$$` is a
literal `$`.  Values are interpolated, keys are not (as Compose does).  Unlike
Compose, a variable with no value and no default is an error, not an empty string:
a deploy never runs with a silently blank setting.  Pure: no I/O.
"""

from __future__ import annotations

import re
from typing import Any, Callable, Mapping

_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_OPS = (":-", ":?", ":+", "-", "?", "+")
MAX_NESTING = 10  # ${A:-${B:-${C...}}}: deeper than this is refused, not recursed into


class InterpolationError(ValueError):
    """One value that cannot be interpolated; `.variable` names the culprit if any."""

    def __init__(self, message: str, variable: str | None = None):
        super().__init__(message)
        self.variable = variable


def _closing(text: str, start: int) -> int:
    """The index of the `}` that closes a `${` whose body starts at `start`, counting
    nested `${...}` (as Compose does for `${A:-${B}}`); -1 when there is none."""
    depth, i = 0, start
    while i < len(text):
        if text.startswith("$$", i):
            i += 2
            continue
        if text.startswith("${", i):
            depth += 1
            i += 2
            continue
        if text[i] == "}":
            if depth == 0:
                return i
            depth -= 1
        i += 1
    return -1


def _shown(text: str, limit: int = 80) -> str:
    """`text` quoted for a message, cut to `limit` characters."""
    return repr(text) if len(text) <= limit else repr(text[:limit]) + f"... ({len(text)} characters)"


def interpolate_text(text: str, variables: Mapping[str, str], _depth: int = 0) -> str:
    """`text` with its variables replaced; a default, an alternative or an error message
    may itself hold variables (`${A:-${B}}`, `${A:-$B}`), interpolated only when used."""
    if _depth > MAX_NESTING:
        raise InterpolationError(f"variables nested more than {MAX_NESTING} deep in {_shown(text)}")
    invalid = f"invalid variable reference in {_shown(text)} (a literal $ is written $$)"
    out: list[str] = []
    i = 0
    while i < len(text):
        j = text.find("$", i)
        if j < 0:
            out.append(text[i:])
            break
        out.append(text[i:j])
        if text.startswith("$$", j):
            out.append("$")
            i = j + 2
            continue
        if text.startswith("${", j):
            end = _closing(text, j + 2)
            m = _NAME.match(text, j + 2)
            if end < 0 or not m:
                raise InterpolationError(invalid)
            name, rest = m[0], text[m.end():end]
            op = next((o for o in _OPS if rest.startswith(o)), "")
            if rest and not op:
                raise InterpolationError(invalid)
            out.append(_substitute(name, op, rest[len(op):], variables, _depth))
            i = end + 1
            continue
        m = _NAME.match(text, j + 1)
        if not m:
            raise InterpolationError(invalid)
        out.append(_substitute(m[0], "", "", variables, _depth))
        i = m.end()
    return "".join(out)


def _substitute(name: str, op: str, arg: str, variables: Mapping[str, str], depth: int) -> str:
    value = variables.get(name)
    empty = not value

    def inner() -> str:
        return interpolate_text(arg, variables, depth + 1)

    if op == ":-":
        return inner() if empty else value
    if op == "-":
        return inner() if value is None else value
    if op in (":?", "?"):
        if value is None or (op == ":?" and empty):
            raise InterpolationError(f"${{{name}}}: {inner() if arg else 'required'}", name)
        return value
    if op == ":+":
        return "" if empty else inner()
    if op == "+":
        return "" if value is None else inner()
    if value is None:
        raise InterpolationError(f"no value for ${{{name}}}", name)
    return value


def interpolate(doc: Any, variables: Mapping[str, str], path: tuple = ()) -> tuple[Any, list[tuple[tuple, InterpolationError]]]:
    """A copy of `doc` with every string value interpolated, and the errors by path
    (every one of them, not only the first)."""
    errors: list[tuple[tuple, InterpolationError]] = []

    def walk(node: Any, where: tuple) -> Any:
        if isinstance(node, str):
            try:
                return interpolate_text(node, variables)
            except InterpolationError as exc:
                errors.append((where, exc))
                return node
        if isinstance(node, dict):
            return {k: walk(v, where + (k,)) for k, v in node.items()}
        if isinstance(node, list):
            return [walk(v, where + (i,)) for i, v in enumerate(node)]
        return node

    return walk(doc, path), errors


def escape_dollars(doc: Any) -> Any:
    """Every `$` in string values written `$$`, so that the docker CLI's own
    interpolation of the rendered document gives back exactly our values."""
    if isinstance(doc, str):
        return doc.replace("$", "$$")
    if isinstance(doc, dict):
        return {k: escape_dollars(v) for k, v in doc.items()}
    if isinstance(doc, list):
        return [escape_dollars(v) for v in doc]
    return doc


# -- type casts after interpolation (the table docker/cli's compose loader uses) ----

def _to_int(value: str) -> int:
    if not re.fullmatch(r"[+-]?\d+", value.strip()):
        raise ValueError("is not a whole number")
    return int(value)


def _to_float(value: str) -> float:
    try:
        return float(value)
    except ValueError:
        raise ValueError("is not a number") from None


def _to_bool(value: str) -> bool:
    lowered = value.strip().lower()
    if lowered in ("y", "yes", "true", "on"):
        return True
    if lowered in ("n", "no", "false", "off"):
        return False
    raise ValueError("is not true or false")


_ANY = "*"
CASTS: tuple[tuple[tuple[str, ...], Callable[[str], Any]], ...] = tuple(
    (tuple(pattern.split(".")), fn) for pattern, fn in (
        ("services.*.configs.*.mode", _to_int),
        ("services.*.secrets.*.mode", _to_int),
        ("services.*.healthcheck.retries", _to_int),
        ("services.*.healthcheck.disable", _to_bool),
        ("services.*.deploy.replicas", _to_int),
        ("services.*.deploy.update_config.parallelism", _to_int),
        ("services.*.deploy.update_config.max_failure_ratio", _to_float),
        ("services.*.deploy.rollback_config.parallelism", _to_int),
        ("services.*.deploy.rollback_config.max_failure_ratio", _to_float),
        ("services.*.deploy.restart_policy.max_attempts", _to_int),
        ("services.*.ports.*.target", _to_int),
        ("services.*.ports.*.published", _to_int),
        ("services.*.ulimits.*", _to_int),
        ("services.*.ulimits.*.hard", _to_int),
        ("services.*.ulimits.*.soft", _to_int),
        ("services.*.privileged", _to_bool),
        ("services.*.read_only", _to_bool),
        ("services.*.stdin_open", _to_bool),
        ("services.*.tty", _to_bool),
        ("services.*.volumes.*.read_only", _to_bool),
        ("services.*.volumes.*.volume.nocopy", _to_bool),
        ("networks.*.external", _to_bool),
        ("networks.*.internal", _to_bool),
        ("networks.*.attachable", _to_bool),
        ("volumes.*.external", _to_bool),
        ("secrets.*.external", _to_bool),
        ("configs.*.external", _to_bool),
    )
)


def _matches(pattern: tuple[str, ...], path: tuple) -> bool:
    return len(pattern) == len(path) and all(p == _ANY or p == str(k) for p, k in zip(pattern, path))


def cast_types(doc: Any) -> tuple[Any, list[tuple[tuple, str]]]:
    """Strings at typed paths (replicas, ports, booleans...) turned into their type,
    as the docker CLI does after interpolation; errors by path."""
    errors: list[tuple[tuple, str]] = []

    def walk(node: Any, path: tuple) -> Any:
        if isinstance(node, dict):
            return {k: walk(v, path + (k,)) for k, v in node.items()}
        if isinstance(node, list):
            return [walk(v, path + (i,)) for i, v in enumerate(node)]
        if isinstance(node, str):
            for pattern, fn in CASTS:
                if _matches(pattern, path):
                    try:
                        return fn(node)
                    except ValueError as exc:
                        errors.append((path, f"{node!r} {exc}"))
                        return node
        return node

    return walk(doc, ()), errors
