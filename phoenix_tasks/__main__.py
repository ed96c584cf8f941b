"""`python -m phoenix_tasks ARGS` (installed: `phoenix-inv ARGS`): Invoke's `inv` on
Phoenix's collection, with usage errors exiting 2.

bin/phoenix runs the tasks through this, so that every usage error (an unknown flag,
a missing value) exits 2 as the wrapper's own usage errors do; Invoke's `inv` exits 1
for them, the same status as a failed task.  Everything else is Invoke's program.
Installed (no checkout), the collection is the package's own
(phoenix_tasks/collection.py, which tasks.py re-exports), so it works from any
directory.
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


def main(argv: list[str] | None = None) -> None:
    """In a checkout: Invoke's program as `inv` (tasks.py, found by --search-root or from
    the working directory).  Installed: the program on the package's collection; the
    `--search-root DIR` bin/phoenix passes has nothing to find then, and Invoke would
    refuse the flag with a collection given: it is dropped."""
    from .core.paths import IN_CHECKOUT
    argv = list(sys.argv if argv is None else argv)
    if IN_CHECKOUT:
        program.run(argv)
        return
    if "--search-root" in argv[1:2]:
        del argv[1:3]
    PhoenixProgram(name="Phoenix", binary="inv", version=__version__, namespace=_load()).run(argv)


def _load():
    from .collection import ns
    return ns


program = PhoenixProgram(name="Phoenix", binary="inv", version=__version__)

if __name__ == "__main__":
    main()
