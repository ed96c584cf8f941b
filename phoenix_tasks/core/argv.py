"""Commands as data: an argv is a sequence of strings and `Secret`s.

Pure command builders return argv lists and import only this module; the transport
turns an argv into the one line a remote shell runs (`shell_command`, the single
quoting boundary) and into the line people and logs see (`display_command`, secrets
masked).  Nothing here talks to a VM.
"""

from __future__ import annotations

import shlex
from typing import Sequence

from .secrets import MASK, Secret

Arg = str | Secret
Argv = Sequence[Arg]


class Script(str):
    """A fixed shell script (no data from config in it), run as `sh -c SCRIPT`, with a
    short name that people and logs see instead of its text (an error message that
    quotes twenty lines of shell says less than "docker info + node list")."""

    name: str

    def __new__(cls, text: str, name: str) -> "Script":
        obj = super().__new__(cls, text)
        obj.name = name
        return obj


def shell_command(argv: Argv) -> str:
    """The command line sent to the remote shell: every argument quoted once."""
    return shlex.join(a.reveal() if isinstance(a, Secret) else str(a) for a in argv)


def display_command(argv: Argv) -> str:
    """The command as people and logs see it: secrets masked, a `Script` by its name."""
    if len(argv) >= 3 and list(argv[:2]) == ["sh", "-c"] and isinstance(argv[2], Script):
        # The script by its name, then its arguments ($1...; $0 is only a name).
        return f"sh -c <{argv[2].name}>" + "".join(" " + _shown(a) for a in argv[4:])
    return " ".join(_shown(a) for a in argv)


def _shown(arg) -> str:
    return shlex.quote(MASK if isinstance(arg, Secret) else str(arg))
