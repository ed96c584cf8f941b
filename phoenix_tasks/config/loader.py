"""Load every config file, validate it (schemas, then checks across files), build the model.

The entry point of the three stages: `read` (files and schemas), `checks` (across
files), `build` (the typed model).  `validate()` reports every problem it can find,
not only the first; `load_config()` returns the typed `Config` or raises
`ConfigInvalid`.  Nothing here opens a connection.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Collection

from ..core import paths
from ..core.model import Config
from .build import build
from .checks import check_all
from .problems import ConfigInvalid, Problem, errors
from .read import Raw, load_files


def validate(config_dir: Path | str | None = None, stacks_dir: Path | str | None = None,
             uses: Collection[str] | None = None) -> tuple[Config | None, list[Problem]]:
    """Every problem in the configuration, and the Config when there is no error.

    `uses`: the stacks a command works on (None: all of them, as `inv validate`).  An
    error in another stack's own files is then a warning, and that stack is left out
    of the Config: one broken, unrelated stack does not block `swarm.rm` of another."""
    for name, explicit in ((paths.CONFIG_DIR_ENV, config_dir), (paths.STACKS_DIR_ENV, stacks_dir)):
        if explicit is None and os.environ.get(name) == "":
            # Unset means "the checkout's default"; set but empty is a mistake, not etc/.
            return None, [Problem(Path(name), "", f"the environment variable {name} is set but empty; "
                                  f"unset it to use the default, or name a directory")]
    found: list[Problem] = []
    raw = load_files(paths.config_dir(config_dir), paths.stacks_dir(stacks_dir), found)
    check_all(raw, found)
    if uses is not None:
        found = set_aside_unused_stacks(raw, found, set(uses))
    problems = sorted(set(found), key=lambda p: (str(p.file), p.pointer, p.message))
    if errors(problems):
        return None, problems
    return build(raw), problems


def stack_of(raw: Raw, problem: Problem) -> str | None:
    """The stack whose directory (or a file in it) a problem is about, or None."""
    try:
        parts = problem.file.relative_to(raw.stacks_dir).parts
    except ValueError:
        return None
    return parts[0] if parts else None


def set_aside_unused_stacks(raw: Raw, problems: list[Problem], uses: set[str]) -> list[Problem]:
    """Errors of stacks not in `uses` as warnings; those stacks left out of `raw`."""
    broken = {stack_of(raw, p) for p in errors(problems)} - {None} - uses
    out = []
    for p in problems:
        if p.severity == "error" and stack_of(raw, p) in broken:
            p = Problem(p.file, p.pointer, f"{p.message} (stack {stack_of(raw, p)!r} is left out: "
                        "this command does not use it)", "warning")
        out.append(p)
    for name in broken:
        raw.manifests.pop(name, None)
        raw.composes.pop(name, None)
    return out


def load_config(config_dir: Path | str | None = None, stacks_dir: Path | str | None = None) -> Config:
    """The validated, typed configuration; raises ConfigInvalid listing every problem."""
    config, problems = validate(config_dir, stacks_dir)
    if config is None:
        raise ConfigInvalid(problems)
    return config
