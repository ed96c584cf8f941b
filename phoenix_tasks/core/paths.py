"""Where configuration is read from: the checkout, or PHOENIX_CONFIG_DIR / PHOENIX_STACKS_DIR."""

from __future__ import annotations

import os
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
PACKAGE_DIR = Path(__file__).resolve().parents[1]
# Run from a checkout (tasks.py beside the package), or installed (pip/pipx): then the
# schemas and bin/phoenix ship inside the package (`_schemas`, `_bin`: pyproject.toml),
# and the configuration has no checkout to default to: ./etc and ./stacks of the
# working directory, unless PHOENIX_CONFIG_DIR / PHOENIX_STACKS_DIR say otherwise.
IN_CHECKOUT = (REPO_ROOT / "tasks.py").is_file() and (REPO_ROOT / "schemas" / "phoenix_stack.schema.json").is_file()
SCHEMA_DIR = REPO_ROOT / "schemas" if IN_CHECKOUT else PACKAGE_DIR / "_schemas"

CONFIG_DIR_ENV = "PHOENIX_CONFIG_DIR"
STACKS_DIR_ENV = "PHOENIX_STACKS_DIR"

VM_CONFIG_FILE = "phoenix_vm_configs.json"
HYPERVISOR_CONFIG_FILE = "phoenix_hypervisor_config.json"
STACK_MANIFEST_FILE = "phoenix.json"
STACK_COMPOSE_FILE = "docker-compose.yml"


def config_dir(explicit: str | Path | None = None, default: str = "etc") -> Path:
    """The configuration directory a task reads, decided here and nowhere else:
    `explicit` (the task's --config-dir), then PHOENIX_CONFIG_DIR, then `default` below
    default_home() (the checkout, or installed the working directory): "etc", or
    "etc/lab" for the lab.* tasks.  Unset and empty count alike here; config.validate
    refuses a set-but-empty PHOENIX_CONFIG_DIR when no --config-dir is given."""
    if explicit:
        return Path(explicit).expanduser().absolute()
    env = os.environ.get(CONFIG_DIR_ENV)
    return Path(env).expanduser().absolute() if env else default_home() / default


def stacks_dir(explicit: str | Path | None = None) -> Path:
    if explicit:
        return Path(explicit).expanduser().absolute()
    env = os.environ.get(STACKS_DIR_ENV)
    return Path(env).expanduser().absolute() if env else default_home() / "stacks"


def default_home() -> Path:
    """Where etc/ and stacks/ are by default: the checkout, or (installed) the working directory."""
    return REPO_ROOT if IN_CHECKOUT else Path.cwd()


def display(path: Path) -> str:
    """A path as messages show it: relative to the working directory when below it."""
    try:
        return str(path.relative_to(Path.cwd()))
    except ValueError:
        return str(path)
