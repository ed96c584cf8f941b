"""Tasks that reach no VM (`inv --list`, `inv validate`, `inv --help TASK`) do not load
Fabric, paramiko, the docker SDK or rich tables: half of a converged run's time was
Python start-up and imports (issue 13).  Each runs in a fresh interpreter, which then
reports the modules it loaded."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
HEAVY = ("fabric", "paramiko", "docker", "rich.table")

PROBE = """
import json, runpy, sys
sys.argv = ["invoke"] + sys.argv[1:]
try:
    runpy.run_module("invoke", run_name="__main__", alter_sys=True)
except SystemExit as exc:
    code = exc.code
else:
    code = 0
sys.stderr.write("\\nMODULES " + json.dumps(sorted(sys.modules)) + " EXIT " + json.dumps(code) + "\\n")
"""


def loaded(*args: str, config_dir: Path | None = None) -> tuple[set[str], str]:
    env = {"PATH": "/usr/bin:/bin"}
    if config_dir is not None:
        env["PHOENIX_CONFIG_DIR"] = str(config_dir)
    res = subprocess.run([sys.executable, "-c", PROBE, "--search-root", str(REPO), *args],
                         capture_output=True, text=True, timeout=60, env=env, cwd=REPO)
    line = res.stderr.rsplit("MODULES ", 1)[1]
    modules, code = line.split(" EXIT ")
    assert json.loads(code) in (0, None), res.stdout + res.stderr
    return set(json.loads(modules)), res.stdout


def heavy_in(modules: set[str]) -> list[str]:
    return sorted(m for m in modules if any(m == h or m.startswith(h + ".") for h in HEAVY))


@pytest.mark.parametrize("args", [("--list",), ("--help", "sync-all"), ("--help", "swarm.deploy")])
def test_listing_and_help_load_no_ssh_docker_or_table_module(args):
    modules, out = loaded(*args)
    assert "phoenix_tasks.tasks.sync" in modules  # the tasks were really loaded
    assert heavy_in(modules) == []


@pytest.mark.parametrize("args", [("--list",), ("--help", "sync-all"), ("--help", "swarm.deploy")])
def test_listing_and_help_load_neither_the_config_checks_nor_rich(args):
    """Listing tasks reads no config: jsonschema, the loader and rich (its console is made
    on the first print) stay out (issue 24: about half of `inv --list`'s imports)."""
    modules, _ = loaded(*args)
    assert "phoenix_tasks.tasks.sync" in modules
    assert sorted(m for m in modules if m.split(".")[0] in ("jsonschema", "rich")
                  or m == "phoenix_tasks.config.loader") == []


def test_validate_loads_no_ssh_docker_or_table_module():
    modules, out = loaded("validate", config_dir=REPO / "etc" / "lab")
    assert "configuration valid" in out
    assert heavy_in(modules) == []
    # The lab's machinery (namespaces, daemons, the registry mirror) is loaded by the
    # lab tasks when they run, not by every command.
    assert "phoenix_tasks.lab.control" not in modules and "phoenix_tasks.lab.mirror" not in modules


def test_schemas_are_not_checked_against_the_metaschema_on_every_load(monkeypatch):
    """tests/unit/test_schemas.py checks them once; a load only validates documents."""
    from phoenix_tasks.config import documents
    documents._validator.cache_clear()
    called = []
    monkeypatch.setattr(documents._PhoenixValidator, "check_schema", classmethod(lambda cls, schema: called.append(1)))
    documents._validator("phoenix_hypervisor_config.schema.json")
    documents._validator.cache_clear()
    assert called == []


def test_the_transport_still_loads_fabric_when_it_connects(tmp_path):
    from phoenix_tasks.core.model import Host, VMAccess
    from phoenix_tasks.core.transport import fabric_connection
    acc = VMAccess(user="root", port=22, private_key_file=tmp_path / "id", host_key_policy="accept-new",
                   known_hosts_file=tmp_path / "known_hosts", connect_timeout_s=1.0, command_timeout_s=1.0)
    conn = fabric_connection(Host("vm1", "127.0.0.1"), acc)
    assert type(conn).__module__.startswith("fabric")
