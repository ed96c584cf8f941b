"""Compose files checked as Docker checks them, before Phoenix's own checks.

Two schemas, vendored in `schemas/compose/` (versions and sources: its README.md):

- the Compose specification's own JSON Schema (compose-spec/compose-spec,
  `schema/compose-spec.json`), on the file as written: values may still hold `${VAR}`
  there (the specification allows strings where numbers go, for interpolation);
- the swarm-mode subset `docker stack deploy` accepts: the docker CLI's
  `config_schema_v3.<minor>.json` for the file's `version` (no version, or "3": the
  CLI's default, 3.13), on the file interpolated with each environment's variables
  and with the CLI's type casts (`deploy.replicas: "${N}"` becomes a number), which is
  what the CLI validates.  A key the swarm subset does not know (`build`, `pull_policy`,
  a top-level volume with `image:`) is refused here instead of by `docker stack deploy`.

Each problem is `FILE: /json/pointer: message`, the pointer into the compose file.
The validators are built once per process (`lru_cache`): `validate` starts fast.
"""

from __future__ import annotations

import json
import re
from functools import lru_cache
from pathlib import Path
from typing import Any, Iterable, Mapping

from jsonschema import Draft4Validator, Draft7Validator, FormatChecker
from jsonschema.exceptions import best_match

from ..core.paths import SCHEMA_DIR
from .documents import _messages
from ..core.safe_read import pointer
from .problems import Problem

COMPOSE_SCHEMA_DIR = Path("compose")
SPEC_SCHEMA = COMPOSE_SCHEMA_DIR / "compose-spec.json"
DOCKER_CLI_DIR = COMPOSE_SCHEMA_DIR / "docker-cli"
DEFAULT_VERSION = "3.13"  # docker/cli cli/compose/schema: `defaultVersion`

_GO_DURATION = re.compile(r"[+-]?(?:0|(?:\d+(?:\.\d*)?|\.\d+)(?:ns|us|µs|ms|s|m|h))+")
_PORT_SPEC = re.compile(r"(?:(?:\[?[0-9A-Fa-f:.]+\]?):)?(?:\d+(?:-\d+)?:)?\d+(?:-\d+)?(?:/(?:tcp|udp|sctp))?")


def _formats() -> FormatChecker:
    """The formats the docker CLI adds to its schema check (`duration`, `ports`)."""
    checker = FormatChecker(formats=())

    @checker.checks("duration")
    def duration(value: Any) -> bool:
        return not isinstance(value, str) or bool(_GO_DURATION.fullmatch(value))

    @checker.checks("ports")
    def ports(value: Any) -> bool:
        if isinstance(value, bool):
            return False
        if isinstance(value, (int, float)):
            value = str(int(value))
        return not isinstance(value, str) or bool(_PORT_SPEC.fullmatch(value))

    return checker


@lru_cache(maxsize=None)
def _validator(relative: str):
    path = SCHEMA_DIR / relative
    schema = json.loads(path.read_text(encoding="utf-8"))
    # compose-spec says draft-07 as "https://json-schema.org/draft-07/schema" (no "#"),
    # which jsonschema does not recognise: the draft is taken from the name.
    cls = Draft4Validator if "draft-04" in schema.get("$schema", "") else Draft7Validator
    return cls(schema, format_checker=_formats())


def swarm_schema_for(version: Any) -> str | None:
    """The docker CLI schema file for a compose `version` (None: the CLI has none)."""
    text = DEFAULT_VERSION if version is None or str(version) in ("", "3") else str(version)
    relative = DOCKER_CLI_DIR / f"config_schema_v{text}.json"
    return str(relative) if (SCHEMA_DIR / relative).is_file() else None


_UNKNOWN = re.compile(r"unknown field (?P<key>'.*') \(known fields: (?P<known>.*)\)$")
MAX_KNOWN_LISTED = 12


def _shorter(message: str) -> str:
    """A service knows some 80 fields: name the closest few instead of all of them."""
    m = _UNKNOWN.match(message)
    if not m:
        return message
    known = m["known"].split(", ")
    if len(known) <= MAX_KNOWN_LISTED:
        return message
    import difflib
    close = difflib.get_close_matches(m["key"].strip("'"), known, n=3, cutoff=0.6)
    hint = f" (did you mean {' or '.join(map(repr, close))}?)" if close else ""
    return f"unknown field {m['key']}{hint}"


def _problems(path: Path, errors: Iterable[Any], why: str = "") -> list[Problem]:
    found = []
    for error in errors:
        leaf = best_match([error]) if error.context else error
        for where, message in _messages(leaf):
            found.append(Problem(path, where, _shorter(message) + why))
    return sorted(set(found))


def check_spec(path: Path, doc: Any) -> list[Problem]:
    """The file as written, against the Compose specification."""
    return _problems(path, _validator(str(SPEC_SCHEMA)).iter_errors(doc))


def check_swarm(path: Path, doc: Any, environments: Mapping[str, Mapping[str, str]]) -> list[Problem]:
    """The file interpolated for each environment, against the schema `docker stack deploy`
    uses for its version.  An environment whose interpolation fails is left to the
    variable checks (they name the missing value)."""
    from ..docker.interpolate import cast_types, interpolate  # pure functions, no I/O

    version = doc.get("version") if isinstance(doc, dict) else None
    relative = swarm_schema_for(version)
    if relative is None:
        known = sorted(p.stem.removeprefix("config_schema_v") for p in (SCHEMA_DIR / DOCKER_CLI_DIR).glob("*.json"))
        return [Problem(path, "/version", f"docker stack deploy knows no compose file version {version!r} "
                                          f"(it knows {', '.join(known)})")]
    validator = _validator(relative)
    found: set[Problem] = set()
    seen: set[str] = set()  # environments that interpolate to the same document are checked once
    for env, variables in environments.items():
        interpolated, errors = interpolate(doc, variables)
        if errors:
            continue
        cast, cast_errors = cast_types(interpolated)
        for where, message in cast_errors:  # docker's cast fails: it refuses the file
            found.add(Problem(path, pointer(*where), f"{message} in environment {env!r} (docker stack deploy "
                                                      f"refuses it)"))
        if cast_errors:
            continue
        key = json.dumps(cast, sort_keys=True, default=str)
        if key in seen:
            continue
        seen.add(key)
        label = Path(relative).stem.removeprefix("config_schema_")
        found.update(_problems(path, validator.iter_errors(cast), f" (docker stack deploy refuses it: compose file format {label})"))
    return sorted(found)


def check_compose(path: Path, doc: Any, environments: Mapping[str, Mapping[str, str]]) -> list[Problem]:
    """The specification first; the swarm subset when the file meets it."""
    return check_spec(path, doc) or check_swarm(path, doc, environments)
