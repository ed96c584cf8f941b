"""`inv completion` (`phoenix completion bash`): the shell completion script."""

from __future__ import annotations

import sys

from invoke import task
from invoke.exceptions import Exit

from ..core import paths
from .common import UNREAD_CONFIG_DIR_HELP


@task(auto_shortflags=False, help={"shell": "the shell to complete for: bash", "config_dir": UNREAD_CONFIG_DIR_HELP})
def completion(c, shell="bash", config_dir=None):
    """Print a bash completion script for phoenix (verbs, flags, stacks, environments)."""
    if shell != "bash":
        raise Exit(f"error: no completion for {shell!r}; there is one for bash", code=2)
    from ..collection import ns
    from ..completion import bash_script
    default_stacks = str(paths.REPO_ROOT / "stacks") if paths.IN_CHECKOUT else "stacks"
    sys.stdout.write(bash_script(ns, default_stacks))
