"""What every task shares: validated config or a clean exit, and user errors without tracebacks."""

from __future__ import annotations

import sys
from contextlib import contextmanager
from typing import Iterator

from invoke.exceptions import Exit

from ..config.problems import ConfigInvalid, errors
from ..core.errors import PhoenixError
from ..core.model import Config
from ..core.transport import Transport

# Wide when not on a terminal, so that tables in logs and CI are not cut.  Markup is
# off: what comes from config, files, the environment or the swarm (a node label
# `zone=[/x]`, a path with `[/]`) is text, never style; style is given as style=.
class _Console:
    """A rich Console made on first use (rich costs start-up time: `inv --list` prints
    none of it)."""

    def __init__(self, **settings):
        self._settings, self._console = settings, None

    def __getattr__(self, name: str):
        if self._console is None:
            from rich.console import Console
            settings = dict(self._settings)
            if settings.pop("wide_off_terminal", False):
                settings["width"] = None if sys.stdout.isatty() else 200
            self._console = Console(**settings)
        return getattr(self._console, name)


out = _Console(highlight=False, markup=False, wide_off_terminal=True)
err = _Console(stderr=True, highlight=False, markup=False, soft_wrap=True)


MUTATING_HELP = {
    "dry_run": "read the real state and print the plan; change nothing",
    "verbose": "echo every remote command (secrets shown as ***)",
    "force_rejoin": "take over a VM that is in another swarm (it leaves that swarm first)",
}
VMID_HELP = "only this VM (by vmid); default: every swarm VM in the config"
# Every task takes --config-dir; which directory wins is decided in paths.config_dir only.
CONFIG_DIR_HELP = "configuration directory (default: $PHOENIX_CONFIG_DIR, else etc/)"
# The two tasks that read no configuration (completion; lab.config, which writes one to
# --out) take the flag too, so that every task accepts the same --config-dir.
UNREAD_CONFIG_DIR_HELP = "accepted on every task; this one reads no configuration"


def transport_for(config: Config, verbose: bool) -> Transport:
    """The run's one transport to the VMs; --verbose echoes every command (secrets masked)."""
    echo = (lambda line: err.print(line, markup=False, highlight=False, style="dim")) if verbose else None
    return Transport(config.hypervisor.vm_access, echo=echo)


def print_problems(problems) -> None:
    for p in problems:
        style = "yellow" if p.severity == "warning" else "red"
        err.print(p.render(), style=style, markup=False)


def load_config_or_exit(config_dir=None, uses=None) -> Config:
    """The validated config; on any error, print every problem and exit 1 (no connection made).

    `config_dir`: the task's --config-dir (None: PHOENIX_CONFIG_DIR, else the default;
    paths.config_dir decides).

    `uses`: the stacks the command works on; errors in other stacks are then warnings
    (None: every stack counts, for commands that deploy them all)."""
    from ..config import validate
    config, problems = validate(config_dir, uses=uses)
    print_problems([p for p in problems if p.severity == "warning"] if config else problems)
    if config is None:
        n = len(errors(problems))
        err.print(f"configuration is invalid ({n} error{'s' if n != 1 else ''}): nothing was done", style="red")
        raise Exit(code=1)
    return config


def read_portainer_password(config: Config):
    """Portainer's admin password (portainer.read_password), its warnings printed."""
    from ..portainer import service as portainer
    password = portainer.read_password(config)
    for warning in password.warnings if password else ():
        err.print(f"warning: {warning}", style="yellow", markup=False, highlight=False)
    return password


@contextmanager
def user_errors() -> Iterator[None]:
    """Turn a PhoenixError into one line on stderr and a non-zero exit."""
    try:
        yield
    except ConfigInvalid as exc:
        print_problems(exc.problems)
        raise Exit(code=1) from None
    except PhoenixError as exc:
        err.print(f"error: {exc}", style="red", markup=False)
        raise Exit(code=exc.exit_code) from None
    except KeyboardInterrupt:
        err.print("interrupted", style="red")
        raise Exit(code=130) from None




def __getattr__(name: str):
    if name == "load_config":  # on first use (see config/__init__.py)
        from ..config import load_config
        return load_config
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = ["CONFIG_DIR_HELP", "UNREAD_CONFIG_DIR_HELP", "MUTATING_HELP", "VMID_HELP", "err", "load_config", "load_config_or_exit", "out", "print_problems",
           "read_portainer_password", "transport_for", "user_errors"]
