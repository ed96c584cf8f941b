"""Where configuration is read from: the checkout, or PHOENIX_CONFIG_DIR / PHOENIX_STACKS_DIR."""

from __future__ import annotations

import os
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
SCHEMA_DIR = REPO_ROOT / "schemas"

CONFIG_DIR_ENV = "PHOENIX_CONFIG_DIR"
STACKS_DIR_ENV = "PHOENIX_STACKS_DIR"

VM_CONFIG_FILE = "phoenix_vm_configs.json"
HYPERVISOR_CONFIG_FILE = "phoenix_hypervisor_config.json"
STACK_MANIFEST_FILE = "phoenix.json"
STACK_COMPOSE_FILE = "docker-compose.yml"


def config_dir(explicit: str | Path | None = None) -> Path:
    if explicit:
        return Path(explicit).expanduser().absolute()
    env = os.environ.get(CONFIG_DIR_ENV)
    return Path(env).expanduser().absolute() if env else REPO_ROOT / "etc"


def stacks_dir(explicit: str | Path | None = None) -> Path:
    if explicit:
        return Path(explicit).expanduser().absolute()
    env = os.environ.get(STACKS_DIR_ENV)
    return Path(env).expanduser().absolute() if env else REPO_ROOT / "stacks"


def display(path: Path) -> str:
    """A path as messages show it: relative to the working directory when below it."""
    try:
        return str(path.relative_to(Path.cwd()))
    except ValueError:
        return str(path)
