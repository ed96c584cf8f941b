"""Text read from the cluster, made safe to print (issue 21, item 7).

A lock's reason, a ledger record's who/command/reason are labels and data anyone with
access to the swarm can write: an ESC or a newline in them would reach the next
operator's terminal raw, and 120 KB of them would fill it.  `clean` keeps one line of
printable text, at most `limit` characters.
"""

from __future__ import annotations

from typing import Any

MAX_TEXT = 200  # characters of one field shown from the cluster


def clean(text: Any, limit: int = MAX_TEXT) -> str:
    """`text` with every control or other non-printable character replaced by a space,
    cut to `limit` characters (saying how much was left out)."""
    s = "".join(c if c.isprintable() else " " for c in str(text))
    if len(s) > limit:
        return s[:limit] + f"... ({len(s) - limit} more characters)"
    return s


def control_characters(text: str) -> list[str]:
    """The non-printable characters of `text`, as `\\x1b`, `\\n`..."""
    return sorted({repr(c)[1:-1] for c in text if not c.isprintable()})
