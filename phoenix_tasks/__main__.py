"""`python -m phoenix_tasks ARGS`: Invoke's `inv` with usage errors exiting 2.

bin/phoenix runs the tasks through this, so that every usage error (an unknown flag,
a missing value) exits 2 as the wrapper's own usage errors do; Invoke's `inv` exits 1
for them, the same status as a failed task.  Everything else is Invoke's program.
"""

from __future__ import annotations

import sys

from invoke import Program
from invoke.exceptions import ParseError

from . import __version__

USAGE_EXIT = 2


class PhoenixProgram(Program):
    def parse_core(self, argv):
        try:
            super().parse_core(argv)
        except ParseError as exc:
            print(exc, file=sys.stderr)
            sys.exit(USAGE_EXIT)

    def parse_tasks(self):
        try:
            super().parse_tasks()
        except ParseError as exc:
            print(exc, file=sys.stderr)
            sys.exit(USAGE_EXIT)


program = PhoenixProgram(name="Phoenix", binary="inv", version=__version__)

if __name__ == "__main__":
    program.run()
