"""Secrets (join tokens, passwords): a value that prints as *** everywhere."""

from __future__ import annotations

MASK = "***"


class Secret:
    """Wraps a secret string. `str`, `repr` and f-strings give ``***``; only
    `reveal()` gives the value, and only the transport boundary calls it."""

    __slots__ = ("_value",)

    def __init__(self, value: str):
        if isinstance(value, Secret):
            value = value.reveal()
        self._value = value

    def reveal(self) -> str:
        return self._value

    def __str__(self) -> str:
        return MASK

    __repr__ = __str__

    def __format__(self, spec: str) -> str:
        return MASK

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(("Secret", self._value))

    def __bool__(self) -> bool:
        return bool(self._value)

    def __reduce__(self):  # never pickled, never written to a file by accident
        raise TypeError("a Secret cannot be pickled")


def scrub(text: str, secrets) -> str:
    """`text` with every secret's value replaced by ***."""
    for s in secrets:
        value = s.reveal() if isinstance(s, Secret) else s
        if value:
            text = text.replace(value, MASK)
    return text
