"""The `phoenix ...` commands of docs/swarm_workflow_guide.md, in order.

A command is a line that starts with `phoenix ` inside a fenced block whose info
string is `bash`; blocks marked `text` (syntax, output) are not commands.  A trailing
`# exits N` says the command is expected to exit N (default 0)."""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass
from pathlib import Path

GUIDE = Path(__file__).resolve().parent.parent / "docs" / "swarm_workflow_guide.md"


@dataclass(frozen=True)
class GuideCommand:
    line: int  # 1-based line in the guide
    argv: tuple[str, ...]  # after `phoenix`
    exits: int

    def __str__(self) -> str:
        return "phoenix " + shlex.join(self.argv)


def guide_commands(text: str) -> list[GuideCommand]:
    commands, fence = [], None
    for number, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if line.startswith("```"):
            fence = None if fence is not None else (line[3:].strip() or "plain")
            continue
        if fence != "bash" or not line.startswith("phoenix "):
            continue
        command, _, comment = line.partition("#")
        m = re.fullmatch(r"\s*exits (\d+)\s*", comment) if comment else None
        if comment and not m:
            raise ValueError(f"guide line {number}: a comment after a command must be '# exits N'")
        commands.append(GuideCommand(number, tuple(shlex.split(command)[1:]), int(m[1]) if m else 0))
    if fence is not None:
        raise ValueError("the guide ends inside a fenced block")
    return commands
