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


def shell_command(argv: Argv) -> str:
    """The command line sent to the remote shell: every argument quoted once."""
    return shlex.join(a.reveal() if isinstance(a, Secret) else str(a) for a in argv)


def display_command(argv: Argv) -> str:
    """The command as people and logs see it: secrets masked."""
    return shlex.join(MASK if isinstance(a, Secret) else str(a) for a in argv)
