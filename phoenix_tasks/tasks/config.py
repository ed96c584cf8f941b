"""`inv validate`: check every config file and stack before anything runs."""

from __future__ import annotations

from invoke import task
from invoke.exceptions import Exit

from ..config.problems import errors
from ..core.paths import display
from .common import CONFIG_DIR_HELP, out, print_problems


@task(help={"config_dir": CONFIG_DIR_HELP})
def validate(c, config_dir=None):
    """Check etc/ and stacks/ against the schemas and each other; list every problem."""
    from ..config import validate as validate_config
    config, problems = validate_config(config_dir)
    print_problems(problems)
    if config is None:
        n = len(errors(problems))
        raise Exit(f"{n} error{'s' if n != 1 else ''}; nothing else was checked against a VM", code=1)
    warnings = len(problems)
    out.print(
        f"configuration valid: {len(config.vms)} VMs ({len(config.swarm_vms)} in the swarm), "
        f"{len(config.stacks)} stacks, from {display(config.config_dir)} and {display(config.stacks_dir)}"
        + (f"; {warnings} warning{'s' if warnings != 1 else ''}" if warnings else "")
    )
