"""bin/phoenix: verbs routed to Invoke tasks, usage, exit status, --dry-run anywhere;
and `inv --list`: every task shows a one-line help.

Routing is tested through PHOENIX_INV, pointed at a stub that prints its argv one per
line and exits with $STUB_EXIT; validation runs through the real inv."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from test_config_corpus import INV, REPO, apply_patch, base_tree

PHOENIX = REPO / "bin" / "phoenix"
STUB = "#!/usr/bin/env bash\nprintf '%s\\n' \"$@\"\nexit \"${STUB_EXIT:-0}\"\n"


@pytest.fixture
def stub(tmp_path) -> Path:
    path = tmp_path / "fake-inv"
    path.write_text(STUB)
    path.chmod(0o755)
    return path


def phoenix(*args: str, inv: Path | None = None, cwd: Path | None = None, env: dict | None = None,
            exe: Path = PHOENIX) -> subprocess.CompletedProcess[str]:
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("PHOENIX_")}
    if inv is not None:
        full_env["PHOENIX_INV"] = str(inv)
    full_env.update(env or {})
    return subprocess.run([str(exe), *args], cwd=cwd or "/", env=full_env,
                          capture_output=True, text=True, timeout=60)


def routed(result: subprocess.CompletedProcess[str]) -> list[str]:
    """The task argv the stub received, without the leading --search-root ROOT."""
    argv = result.stdout.splitlines()
    assert argv[:2] == ["--search-root", str(REPO)], result
    return argv[2:]


# -- usage -------------------------------------------------------------------------

@pytest.mark.parametrize("args", [["help"], ["-h"], ["--help"], []])
def test_help_prints_usage_and_exits_0(args, stub):
    r = phoenix(*args, inv=stub)
    assert r.returncode == 0
    assert r.stdout.startswith("usage: phoenix [--dry-run] [-v] <verb> [target] [flags]")
    assert "swarm deploy <stack> --env <env>" in r.stdout
    assert "\n--search-root\n" not in r.stdout  # the stub was not called


@pytest.mark.parametrize("args, complaint", [
    (["frobnicate"], "phoenix: unknown verb 'frobnicate'"),
    (["swarm", "explode"], "phoenix: unknown swarm action 'explode'"),
    (["swarm"], "phoenix: unknown swarm action ''"),
    (["sync", "some"], "phoenix: unknown sync target 'some' (only: sync all)"),
    (["lab", "melt"], "phoenix: unknown lab action 'melt'"),
])
def test_unknown_verb_prints_usage_and_exits_2(args, complaint, stub):
    r = phoenix(*args, inv=stub)
    assert r.returncode == 2
    assert r.stdout == ""  # the stub was not called
    assert r.stderr.splitlines()[0] == complaint
    assert "usage: phoenix" in r.stderr


# -- routing -------------------------------------------------------------------------

@pytest.mark.parametrize("args, task_argv", [
    (["validate"], ["validate"]),
    (["sync", "all"], ["sync-all"]),
    (["swarm", "init"], ["swarm.init"]),
    (["swarm", "join", "--vmid", "1002"], ["swarm.join", "--vmid", "1002"]),
    (["swarm", "label"], ["swarm.label"]),
    (["swarm", "tokens", "--reveal"], ["swarm.tokens", "--reveal"]),
    (["swarm", "status", "--json"], ["swarm.status", "--json"]),
    (["swarm", "deploy", "thinkheads_ai_app", "--env", "dev1"], ["swarm.deploy", "--stack", "thinkheads_ai_app", "--env", "dev1"]),
    (["swarm", "rm", "qdrant_service", "--env", "dev2"], ["swarm.rm", "--stack", "qdrant_service", "--env", "dev2"]),
    (["swarm", "deploy", "--stack", "qdrant_service", "--env", "dev1"], ["swarm.deploy", "--stack", "qdrant_service", "--env", "dev1"]),
    (["lab", "up"], ["lab.up"]),
    (["lab", "config", "--nodes", "3", "--out", "/tmp/x"], ["lab.config", "--nodes", "3", "--out", "/tmp/x"]),
])
def test_verbs_become_tasks(args, task_argv, stub):
    r = phoenix(*args, inv=stub)
    assert r.returncode == 0, r.stderr
    assert routed(r) == task_argv


DEPLOY = ["swarm.deploy", "--stack", "thinkheads_ai_app", "--dry-run", "--env", "dev1"]


@pytest.mark.parametrize("args", [
    ["--dry-run", "swarm", "deploy", "thinkheads_ai_app", "--env", "dev1"],
    ["swarm", "--dry-run", "deploy", "thinkheads_ai_app", "--env", "dev1"],
    ["swarm", "deploy", "--dry-run", "thinkheads_ai_app", "--env", "dev1"],
    ["swarm", "deploy", "thinkheads_ai_app", "--dry-run", "--env", "dev1"],
    ["swarm", "deploy", "thinkheads_ai_app", "--env", "dev1", "--dry-run"],
])
def test_dry_run_passes_through_from_anywhere_on_the_line(args, stub):
    assert routed(phoenix(*args, inv=stub)) == DEPLOY


@pytest.mark.parametrize("args, task_argv", [
    (["sync", "all", "--dry-run"], ["sync-all", "--dry-run"]),
    (["--dry-run", "sync", "all"], ["sync-all", "--dry-run"]),
    (["swarm", "init", "--dry-run"], ["swarm.init", "--dry-run"]),
    (["-v", "swarm", "join", "--dry-run"], ["swarm.join", "--dry-run", "--verbose"]),
    (["swarm", "rm", "qdrant_service", "--env", "dev2", "--dry-run"], ["swarm.rm", "--stack", "qdrant_service", "--dry-run", "--env", "dev2"]),
    (["--dry-run", "validate"], ["validate"]),  # validate changes nothing: no flag to pass
])
def test_global_flags_reach_the_tasks_that_take_them(args, task_argv, stub):
    assert routed(phoenix(*args, inv=stub)) == task_argv


def test_arguments_are_passed_as_data_never_through_a_shell(stub, tmp_path):
    canary = tmp_path / "canary"
    hostile = f"dev1; rm -rf / $(touch {canary}) `touch {canary}`"
    r = phoenix("swarm", "deploy", hostile, "--env", "dev1; rm -rf /", inv=stub)
    assert routed(r) == ["swarm.deploy", "--stack", hostile, "--env", "dev1; rm -rf /"]
    assert not canary.exists()


@pytest.mark.parametrize("status", [0, 1, 3])
def test_the_tasks_exit_status_is_returned(status, stub):
    r = phoenix("swarm", "status", inv=stub, env={"STUB_EXIT": str(status)})
    assert r.returncode == status


def test_works_through_a_symlink_from_elsewhere(stub, tmp_path):
    link = tmp_path / "bin" / "phoenix"
    link.parent.mkdir()
    link.symlink_to(PHOENIX)
    r = phoenix("validate", inv=stub, cwd=tmp_path, exe=link)
    assert routed(r) == ["validate"]


# -- the real task -------------------------------------------------------------------

def test_validate_from_another_directory(tmp_path):
    r = phoenix("validate", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith("configuration valid: 3 VMs (2 in the swarm), 3 stacks")


def test_validate_returns_1_on_a_broken_copy(tmp_path):
    root = base_tree(tmp_path / "tree")
    apply_patch(root, root, {"file": "etc/phoenix_vm_configs.json", "op": "set", "pointer": "/vms/2/name", "value": "Drphoenix"})
    r = phoenix("validate", cwd=root, env={"PHOENIX_CONFIG_DIR": str(root / "etc"), "PHOENIX_STACKS_DIR": str(root / "stacks")})
    assert r.returncode == 1
    assert r.stderr.startswith("etc/phoenix_vm_configs.json: /vms/2/name: 'Drphoenix' is not valid")


# -- inv --list ----------------------------------------------------------------------

def _tasks(collection: dict, prefix: str = "") -> list[tuple[str, str]]:
    found = [(prefix + t["name"], t["help"] or "") for t in collection["tasks"]]
    for sub in collection["collections"]:
        found += _tasks(sub, prefix + sub["name"] + ".")
    return found


def test_inv_list_shows_every_task_with_one_line_help():
    listing = subprocess.run([str(INV), "--search-root", str(REPO), "--list", "--list-format=json"],
                             capture_output=True, text=True, timeout=60, check=True)
    tasks = _tasks(json.loads(listing.stdout))
    assert "validate" in dict(tasks)
    for name, help_line in tasks:
        assert help_line.strip(), f"task {name!r} has no help line (its docstring's first line)"
        assert "\n" not in help_line.strip(), name
    flat = subprocess.run([str(INV), "--search-root", str(REPO), "--list"],
                          capture_output=True, text=True, timeout=60, check=True, env={**os.environ, "COLUMNS": "300"})
    shown = {line.split()[0]: line for line in flat.stdout.splitlines() if line.startswith("  ") and line.strip()}
    for name, help_line in tasks:
        assert name in shown, f"{name} missing from inv --list"
        assert help_line.split()[0] in shown[name], f"{name}'s help is not on its line"
