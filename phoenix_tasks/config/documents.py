"""Reading config files and checking them against their JSON Schema."""

from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path
from typing import Any

import yaml
from jsonschema import Draft202012Validator, FormatChecker

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


@lru_cache(maxsize=None)
def _validator(schema_name: str) -> Draft202012Validator:
    schema = json.loads((SCHEMA_DIR / schema_name).read_text(encoding="utf-8"))
    Draft202012Validator.check_schema(schema)
    return Draft202012Validator(schema, format_checker=FormatChecker())


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
