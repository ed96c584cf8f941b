"""Reading config files and checking them against their JSON Schema."""

from __future__ import annotations

import json
import re
from functools import lru_cache
from pathlib import Path
from typing import Any

import yaml
from jsonschema import Draft202012Validator, FormatChecker, ValidationError, validators

from ..paths import SCHEMA_DIR
from .problems import Problem, pointer

VM_SCHEMA = "phoenix_vm_configs.schema.json"
HYPERVISOR_SCHEMA = "phoenix_hypervisor_config.schema.json"
STACK_SCHEMA = "phoenix_stack.schema.json"


def _read_text(path: Path, problems: list[Problem]) -> str | None:
    try:
        return path.read_text(encoding="utf-8")
    except FileNotFoundError:
        problems.append(Problem(path, "", "file not found"))
    except (OSError, UnicodeDecodeError) as exc:
        problems.append(Problem(path, "", f"cannot read file: {exc}"))
    return None


def read_json(path: Path, problems: list[Problem]) -> Any | None:
    """The parsed document, or None after recording why it could not be read."""
    text = _read_text(path, problems)
    if text is None:
        return None
    try:
        doc = json.loads(text, object_pairs_hook=_object)
    except json.JSONDecodeError as exc:
        problems.append(
            Problem(path, "", f"invalid JSON at line {exc.lineno}, column {exc.colno}: {exc.msg}")
        )
        return None
    for where in _duplicate_keys(doc):
        problems.append(
            Problem(path, pointer(*where), f"key {where[-1]!r} appears more than once in this object (JSON keeps only the last value)")
        )
    return doc


class _Object(dict):
    """A JSON object that remembers the keys it held more than once."""

    duplicates: tuple[str, ...] = ()


def _object(pairs: list[tuple[str, Any]]) -> _Object:
    obj = _Object()
    duplicates: list[str] = []
    for key, value in pairs:
        if key in obj and key not in duplicates:
            duplicates.append(key)
        obj[key] = value
    if duplicates:
        obj.duplicates = tuple(duplicates)
    return obj


def _duplicate_keys(doc: Any, path: tuple = ()) -> list[tuple]:
    """Paths of the keys given twice in one object (json.loads silently keeps the last)."""
    found: list[tuple] = []
    if isinstance(doc, dict):
        found.extend(path + (key,) for key in getattr(doc, "duplicates", ()))
        for key, value in doc.items():
            found.extend(_duplicate_keys(value, path + (key,)))
    elif isinstance(doc, list):
        for i, value in enumerate(doc):
            found.extend(_duplicate_keys(value, path + (i,)))
    return found


def read_yaml(path: Path, problems: list[Problem]) -> Any | None:
    text = _read_text(path, problems)
    if text is None:
        return None
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        what = getattr(exc, "problem", None) or str(exc)
        problems.append(Problem(path, "", f"invalid YAML{where}: {what}"))
        return None


def _fullmatch_pattern(validator: Any, patrn: str, instance: Any, schema: dict) -> Any:
    """The `pattern` keyword, matched against the whole string (see `_validator`).

    Same error as jsonschema's own `pattern`, so `_messages` phrases it the same way.
    """
    if validator.is_type(instance, "string") and not re.fullmatch(patrn, instance):
        yield ValidationError(f"{instance!r} does not match {patrn!r}")


_PhoenixValidator = validators.extend(Draft202012Validator, {"pattern": _fullmatch_pattern})


@lru_cache(maxsize=None)
def _validator(schema_name: str) -> Any:
    """A 2020-12 validator for one of Phoenix's schemas, whose `pattern` is a full match.

    jsonschema applies `pattern` with Python's `re.search`, where `$` also matches just
    before a final newline: "portainer\\n" would pass `^[a-z0-9-]+$`, and an IP
    "10.0.0.101/24\\n" would pass the schema only to crash `ipaddress` later.  Editors
    validate the same schemas with ECMA-262 regexes, where `$` (no `m` flag) matches
    only at the very end, so they already refuse it: Python is the odd one out.

    Hence a validator extension rather than edited patterns.  Python's `\\Z` does not
    exist in ECMA-262, so rewriting `$` as `\\Z` would break the schemas for editors; a
    portable spelling (`(?![\\s\\S])` after every `$`) is noise each pattern must
    remember, and one forgotten or new pattern (in `$defs`, in `propertyNames`) would
    reopen the hole.  Applying every `pattern` with `re.fullmatch` covers all of them,
    now and later, with the schemas unchanged: fullmatch must consume the whole string,
    and though `$` may still match before a final "\\n", nothing consumes that "\\n".
    All of Phoenix's patterns are anchored `^...$` (a test checks it), and for those a
    full match is exactly ECMA-262's meaning, so Phoenix and the editors agree.  The
    keyword keeps its name, so errors still say `validator == "pattern"`.
    """
    schema = json.loads((SCHEMA_DIR / schema_name).read_text(encoding="utf-8"))
    _PhoenixValidator.check_schema(schema)
    return _PhoenixValidator(schema, format_checker=FormatChecker())


def _messages(error: Any) -> list[tuple[str, str]]:
    """(pointer, message) pairs for one jsonschema error, phrased for a person.

    One error can name several problems (an object with two unknown fields): each
    gets its own line, so that every problem is reported, not only the first.
    """
    where = pointer(*error.absolute_path)
    if error.validator == "additionalProperties" and isinstance(error.instance, dict):
        allowed = set(error.schema.get("properties", {}))
        extra = sorted(k for k in error.instance if k not in allowed)
        if extra and error.schema.get("additionalProperties") is False:
            known = ", ".join(sorted(allowed)) or "none"
            return [(pointer(*error.absolute_path, k), f"unknown field {k!r} (known fields: {known})") for k in extra]
    if error.validator == "required":
        missing = error.message.split("'")[1] if "'" in error.message else error.message
        return [(where, f"missing required field {missing!r}")]
    if "propertyNames" in error.absolute_schema_path:
        # The error is about a key, not a value: point at that key's entry.
        description = error.schema.get("description")
        hint = f" ({description})" if description else f": {error.message}"
        return [(pointer(*error.absolute_path, error.instance), f"key {error.instance!r} is not valid{hint}")]
    if error.validator == "pattern":
        description = error.schema.get("description")
        hint = f" ({description})" if description else ""
        return [(where, f"{error.instance!r} is not valid{hint}")]
    return [(where, error.message)]


def check_schema(doc: Any, schema_name: str, path: Path) -> list[Problem]:
    found = []
    for error in _validator(schema_name).iter_errors(doc):
        for where, message in _messages(error):
            found.append(Problem(path, where, message))
    return sorted(set(found))
