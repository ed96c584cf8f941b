"""`swarm.diff --json` and `--exit-code`: the diff as one stable document, and the exit
status a script reads ("would a deploy change anything?")."""

from __future__ import annotations

from typing import Any, Sequence

# `--exit-code`: 0 when nothing would change, CHANGES_EXIT when something would.  Not
# git's 1 nor terraform's 2: Phoenix already says 1 for an error and 2 for a usage
# error (3: not built yet), and a CI job must tell "changes" from "failed" (README,
# "Exit status").
CHANGES_EXIT = 4


def _value(value: Any) -> Any:
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, (tuple, list)):
        return [_value(v) for v in value]
    return str(value)


def to_json(namespace: str, manager: str, rendered_hash: str, changes: Sequence) -> dict[str, Any]:
    """{namespace, read_from, hash, changed, services: [{name, kind, fields: {f: {before, after}},
    other_settings}]}: `changed` is what --exit-code answers."""
    return {
        "namespace": namespace, "read_from": manager, "hash": rendered_hash, "changed": bool(changes),
        "services": [{"name": c.name, "kind": c.kind,
                      "fields": {f: {"before": _value(b), "after": _value(a)} for f, (b, a) in c.fields.items()},
                      "other_settings": c.other_settings} for c in changes],
    }
