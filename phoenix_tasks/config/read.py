"""Stage 1 of validation: read every config file and check it against its schema.

What passed is kept raw (parsed JSON and YAML) in `Raw`; what did not is a problem.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..core import paths
from ..docker.naming import STACK_NAME
from . import compose_schema
from .documents import HYPERVISOR_SCHEMA, STACK_SCHEMA, VM_SCHEMA, check_schema, read_compose, read_json
from ..core.safe_read import pointer
from .problems import Problem


@dataclass
class Raw:
    """The directories read, and the parsed documents that passed their schema (None where they did not)."""

    config_dir: Path
    stacks_dir: Path
    hypervisor: dict | None = None
    vms: dict | None = None
    manifests: dict[str, dict] = field(default_factory=dict)
    composes: dict[str, dict] = field(default_factory=dict)
    stack_dirs: dict[str, Path] = field(default_factory=dict)
    # Stack directories that exist but are incomplete (already reported once).
    incomplete_stacks: set[str] = field(default_factory=set)

    @property
    def hv_file(self) -> Path:
        return self.config_dir / paths.HYPERVISOR_CONFIG_FILE

    @property
    def vm_file(self) -> Path:
        return self.config_dir / paths.VM_CONFIG_FILE

    def effective_vms(self) -> list[tuple[int, dict]]:
        """Each VM entry with vm_defaults merged in (network/user config key by key)."""
        doc = self.vms or {}
        defaults = doc.get("vm_defaults", {})
        out = []
        for i, vm in enumerate(doc.get("vms", [])):
            skip = ("network_config", "user_config") + (("clone_from_vmid",) if vm.get("is_template") else ())
            merged = {**{k: v for k, v in defaults.items() if k not in skip}, **vm}
            merged["network_config"] = {**defaults.get("network_config", {}), **vm.get("network_config", {})}
            merged["user_config"] = {**defaults.get("user_config", {}), **vm.get("user_config", {})}
            out.append((i, merged))
        return out


def load_files(config_dir: Path, stacks_dir: Path, problems: list[Problem]) -> Raw:
    """Read the config and stack files; add what is wrong with them to `problems`."""
    raw = Raw(config_dir, stacks_dir)
    if not config_dir.is_dir():
        problems.append(Problem(config_dir, "", "configuration directory not found (set PHOENIX_CONFIG_DIR)"))
    else:
        raw.hypervisor = _load(raw.hv_file, HYPERVISOR_SCHEMA, problems)
        raw.vms = _load(raw.vm_file, VM_SCHEMA, problems)
    if not stacks_dir.is_dir():
        problems.append(Problem(stacks_dir, "", "stacks directory not found (set PHOENIX_STACKS_DIR)"))
        return raw
    for d in sorted(p for p in stacks_dir.iterdir() if p.is_dir() and not p.name.startswith(".")):
        if not STACK_NAME.fullmatch(d.name):
            problems.append(Problem(d, "", f"stack directory name {d.name!r} is not valid (lower-case letters, digits and '_', starting with a letter, at most 40 characters)"))
            continue
        manifest, compose_file = d / paths.STACK_MANIFEST_FILE, d / paths.STACK_COMPOSE_FILE
        # Missing means no entry at all: a FIFO, a directory or a device in its place is
        # there, and the reader says what it is instead of reading it.
        missing = [f.name for f in (manifest, compose_file) if not (f.exists() or f.is_symlink())]
        if missing:
            problems.append(Problem(d, "", f"stack {d.name!r} has no {' and no '.join(missing)} (a stack needs both)"))
            raw.incomplete_stacks.add(d.name)
            continue
        raw.stack_dirs[d.name] = d
        m = _load(manifest, STACK_SCHEMA, problems)
        c = read_compose(compose_file, problems)
        if m is not None:
            raw.manifests[d.name] = m
        spec_problems = compose_schema.check_spec(compose_file, c) if c is not None else []
        problems.extend(spec_problems)  # what Docker's Compose would refuse, first
        if c is not None and not spec_problems and _compose_shape(compose_file, c, problems):
            raw.composes[d.name] = c
    return raw


def _load(path: Path, schema: str, problems: list[Problem]) -> Any | None:
    doc = read_json(path, problems)
    if doc is None:
        return None
    found = check_schema(doc, schema, path)
    problems.extend(found)
    return None if found else doc


def _compose_shape(path: Path, doc: Any, problems: list[Problem]) -> bool:
    if not isinstance(doc, dict) or not isinstance(doc.get("services"), dict) or not doc["services"]:
        problems.append(Problem(path, "/services", "a compose file needs a 'services' mapping with at least one service"))
        return False
    ok = True
    for name, svc in doc["services"].items():
        if not isinstance(svc, dict):
            problems.append(Problem(path, pointer("services", name), "a service must be a mapping"))
            ok = False
        elif not isinstance(svc.get("deploy"), dict):
            problems.append(Problem(path, pointer("services", name), "missing 'deploy' key: every service says how the swarm runs it (replicas, placement)"))
            ok = False
        elif not re.fullmatch(r"^[a-z][a-z0-9_-]{0,39}$", str(name)):
            problems.append(Problem(path, pointer("services", name), f"service name {name!r} is not valid (lower-case letters, digits, '_' and '-', starting with a letter)"))
            ok = False
    return ok
