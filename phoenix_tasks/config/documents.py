"""Reading config files and checking them against their JSON Schema.

The files are read by `safe_read` (regular files only, 1 MiB, UTF-8, strict JSON and
YAML); here its flaws become Problems, and documents are checked against their
schema with a strict "integer" (22.0 is not one).
"""

from __future__ import annotations

import json
import re
from functools import lru_cache
from pathlib import Path
from typing import Any

from jsonschema import Draft202012Validator, FormatChecker, ValidationError, validators

from ..core.paths import SCHEMA_DIR
from ..core.safe_read import pointer
from .problems import Problem
from ..core.safe_read import Flaw, Unreadable, parse_json, parse_yaml, read_text

VM_SCHEMA = "phoenix_vm_configs.schema.json"
HYPERVISOR_SCHEMA = "phoenix_hypervisor_config.schema.json"
STACK_SCHEMA = "phoenix_stack.schema.json"


def _problems(path: Path, flaws: list[Flaw], problems: list[Problem]) -> None:
    problems.extend(Problem(path, f.pointer, f.message) for f in flaws)


def _read(path: Path, problems: list[Problem]) -> str | None:
    try:
        return read_text(path)
    except Unreadable as exc:
        problems.append(Problem(path, "", str(exc)))
        return None


def read_json(path: Path, problems: list[Problem]) -> dict | None:
    """The parsed document (a JSON object), or None after recording why it cannot be used.

    A key given twice is recorded, and the document is still returned (the schema
    checks it as well); every other flaw makes it unusable (see `safe_read`).
    """
    text = _read(path, problems)
    if text is None:
        return None
    parsed = parse_json(text)
    _problems(path, parsed.flaws, problems)
    return parsed.doc if parsed.usable else None


# Said where the top level of a compose file is not a mapping (an empty file too).
COMPOSE_NEEDS_SERVICES = "a compose file needs a 'services' mapping with at least one service"


def read_compose(path: Path, problems: list[Problem]) -> dict | None:
    """A stack's docker-compose.yml as a mapping, or None after recording why not."""
    text = _read(path, problems)
    if text is None:
        return None
    parsed = parse_yaml(text)
    _problems(path, parsed.flaws, problems)
    if not parsed.usable:
        return None
    if not isinstance(parsed.doc, dict):
        problems.append(Problem(path, "/services", COMPOSE_NEEDS_SERVICES))
        return None
    return parsed.doc


def _fullmatch_pattern(validator: Any, patrn: str, instance: Any, schema: dict) -> Any:
    """The `pattern` keyword, matched against the whole string (see `_validator`).

    Same error as jsonschema's own `pattern`, so `_messages` phrases it the same way.
    """
    if validator.is_type(instance, "string") and not re.fullmatch(patrn, instance):
        yield ValidationError(f"{instance!r} does not match {patrn!r}")


_PhoenixValidator = validators.extend(Draft202012Validator, {"pattern": _fullmatch_pattern})


def _is_integer(_checker: Any, instance: Any) -> bool:
    """Strict: 22 is an integer, 22.0 is not (jsonschema alone counts 22.0), True is not."""
    return isinstance(instance, int) and not isinstance(instance, bool)


# ...and "integer" means a Python int, which is what safe_read.parse_json makes of 22.
_PhoenixValidator = validators.extend(
    _PhoenixValidator, type_checker=_PhoenixValidator.TYPE_CHECKER.redefine("integer", _is_integer)
)


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

    The schemas ship with Phoenix and are checked against the 2020-12 metaschema by
    tests/unit/test_schemas.py, not on every load: that check cost a quarter of
    `inv validate`'s CPU time (issue 13).
    """
    schema = json.loads((SCHEMA_DIR / schema_name).read_text(encoding="utf-8"))
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
    if error.validator == "dependentRequired":
        return [(pointer(*error.absolute_path, field), f"{field!r} needs {', '.join(map(repr, needs))} too")
                for field, needs in error.validator_value.items()
                if field in error.instance and any(n not in error.instance for n in needs)]
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
