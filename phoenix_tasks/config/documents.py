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


def read_json(path: Path, problems: list[Problem]) -> Any | None:
    """The parsed document, or None after recording why it could not be read."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        problems.append(Problem(path, "", "file not found"))
        return None
    except (OSError, UnicodeDecodeError) as exc:
        problems.append(Problem(path, "", f"cannot read file: {exc}"))
        return None
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        problems.append(
            Problem(path, "", f"invalid JSON at line {exc.lineno}, column {exc.colno}: {exc.msg}")
        )
        return None


def read_yaml(path: Path, problems: list[Problem]) -> Any | None:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        problems.append(Problem(path, "", "file not found"))
        return None
    except (OSError, UnicodeDecodeError) as exc:
        problems.append(Problem(path, "", f"cannot read file: {exc}"))
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


def _message(error: Any) -> tuple[str, str]:
    """(pointer, message) for one jsonschema error, phrased for a person."""
    where = pointer(*error.absolute_path)
    if error.validator == "additionalProperties" and isinstance(error.instance, dict):
        allowed = set(error.schema.get("properties", {}))
        extra = sorted(k for k in error.instance if k not in allowed)
        if extra and error.schema.get("additionalProperties") is False:
            known = ", ".join(sorted(allowed)) or "none"
            return pointer(*error.absolute_path, extra[0]), f"unknown field {extra[0]!r} (known fields: {known})"
    if error.validator == "required":
        missing = error.message.split("'")[1] if "'" in error.message else error.message
        return where, f"missing required field {missing!r}"
    if error.validator == "pattern":
        description = error.schema.get("description")
        hint = f" ({description})" if description else ""
        return where, f"{error.instance!r} is not valid{hint}"
    if error.validator == "propertyNames":
        return where, f"invalid key {error.instance!r}: {error.message}"
    return where, error.message


def check_schema(doc: Any, schema_name: str, path: Path) -> list[Problem]:
    found = []
    for error in _validator(schema_name).iter_errors(doc):
        where, message = _message(error)
        found.append(Problem(path, where, message))
    return sorted(set(found))
