"""`phoenix` when installed (pip, pipx): the same verb CLI as the checkout's bin/phoenix.

The verbs are bin/phoenix's own (shipped in the package as `_bin/phoenix`, run by
bash); the tasks run through `phoenix-inv`, the Invoke program on the package's
collection, from the same environment.  In a checkout, bin/phoenix is run directly.
"""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

from .core import paths


def script() -> Path:
    if paths.IN_CHECKOUT:
        return paths.REPO_ROOT / "bin" / "phoenix"
    return paths.PACKAGE_DIR / "_bin" / "phoenix"


def inv_program() -> str:
    """`phoenix-inv` next to this interpreter (a venv's or pipx's bin), else on PATH."""
    beside = Path(sys.executable).parent / "phoenix-inv"
    if beside.exists():
        return str(beside)
    return shutil.which("phoenix-inv") or "phoenix-inv"


def main() -> None:
    bash = shutil.which("bash")
    if bash is None:
        print("phoenix: bash is needed to run the phoenix command", file=sys.stderr)
        sys.exit(1)
    env = dict(os.environ)
    env.setdefault("PHOENIX_INV", inv_program())
    os.execve(bash, [bash, str(script()), *sys.argv[1:]], env)


if __name__ == "__main__":
    main()
