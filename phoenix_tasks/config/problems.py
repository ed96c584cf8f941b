"""A problem found in the configuration: file, JSON pointer, message, severity."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal, Sequence

from ..core.errors import PhoenixError
from ..core.paths import display

Severity = Literal["error", "warning"]



@dataclass(frozen=True, order=True)
class Problem:
    file: Path
    pointer: str
    message: str
    severity: Severity = "error"

    def render(self) -> str:
        """One line: a control character in a path, key or value is shown escaped."""
        mark = "warning: " if self.severity == "warning" else ""
        return printable(f"{display(self.file)}: {self.pointer or '/'}: {mark}{self.message}")


def printable(text: str) -> str:
    """`text` with every non-printable character escaped (`\\n`, `\\x1b`): a problem
    is one line on a terminal whatever a file's name or content holds."""
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)


def errors(problems: Sequence[Problem]) -> list[Problem]:
    return [p for p in problems if p.severity == "error"]


class ConfigInvalid(PhoenixError):
    """Validation failed; `.problems` holds every problem found, not only the first."""

    def __init__(self, problems: Sequence[Problem]):
        self.problems = list(problems)
        n = len(errors(self.problems))
        super().__init__(f"configuration is invalid: {n} error{'s' if n != 1 else ''}")
