"""Load every config file, validate it (schemas, then checks across files), build the model.

The entry point of the three stages: `read` (files and schemas), `checks` (across
files), `build` (the typed model).  `validate()` reports every problem it can find,
not only the first; `load_config()` returns the typed `Config` or raises
`ConfigInvalid`.  Nothing here opens a connection.
"""

from __future__ import annotations

import os
from pathlib import Path

from .. import paths
from ..model import Config
from .build import build
from .checks import check_all
from .problems import ConfigInvalid, Problem, errors
from .read import load_files


def validate(config_dir: Path | str | None = None, stacks_dir: Path | str | None = None) -> tuple[Config | None, list[Problem]]:
    """Every problem in the configuration, and the Config when there is no error."""
    for name, explicit in ((paths.CONFIG_DIR_ENV, config_dir), (paths.STACKS_DIR_ENV, stacks_dir)):
        if explicit is None and os.environ.get(name) == "":
            # Unset means "the checkout's default"; set but empty is a mistake, not etc/.
            return None, [Problem(Path(name), "", f"the environment variable {name} is set but empty; "
                                  f"unset it to use the default, or name a directory")]
    found: list[Problem] = []
    raw = load_files(paths.config_dir(config_dir), paths.stacks_dir(stacks_dir), found)
    check_all(raw, found)
    problems = sorted(set(found), key=lambda p: (str(p.file), p.pointer, p.message))
    if errors(problems):
        return None, problems
    return build(raw), problems


def load_config(config_dir: Path | str | None = None, stacks_dir: Path | str | None = None) -> Config:
    """The validated, typed configuration; raises ConfigInvalid listing every problem."""
    config, problems = validate(config_dir, stacks_dir)
    if config is None:
        raise ConfigInvalid(problems)
    return config
