"""bin/phoenix: verbs routed to Invoke tasks, usage, exit status, global flags (passed to
the tasks that take them, refused by the others, never read from an option's value);
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
    (["portainer", "reset"], "phoenix: unknown portainer action 'reset' (portainer deploy|status)"),
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
    (["swarm", "tokens", "--rotate", "worker"], ["swarm.tokens", "--rotate", "worker"]),
    # --rotate takes a value: a word after it is that value, never a flag or a stack
    (["swarm", "tokens", "--rotate", "-v"], ["swarm.tokens", "--rotate", "-v"]),
    (["swarm", "autolock", "--enable"], ["swarm.autolock", "--enable"]),
    (["swarm", "autolock"], ["swarm.autolock"]),
    (["swarm", "status", "--json"], ["swarm.status", "--json"]),
    (["swarm", "deploy", "thinkheads_ai_app", "--env", "dev1"], ["swarm.deploy", "--stack", "thinkheads_ai_app", "--env", "dev1"]),
    (["swarm", "rm", "qdrant_service", "--env", "dev2"], ["swarm.rm", "--stack", "qdrant_service", "--env", "dev2"]),
    (["swarm", "deploy", "--stack", "qdrant_service", "--env", "dev1"], ["swarm.deploy", "--stack", "qdrant_service", "--env", "dev1"]),
    (["lab", "up"], ["lab.up"]),
    (["lab", "config", "--nodes", "3", "--out", "/tmp/x"], ["lab.config", "--nodes", "3", "--out", "/tmp/x"]),
    (["sync", "all", "--timeout", "60"], ["sync-all", "--timeout", "60"]),
    (["sync", "all", "--ssh-timeout", "5", "-v"], ["sync-all", "--verbose", "--ssh-timeout", "5"]),
    (["vm", "create", "1001", "--ssh-timeout", "5"], ["vm.create", "--vmid", "1001", "--ssh-timeout", "5"]),
    (["portainer", "deploy"], ["portainer.deploy"]),
    (["--dry-run", "portainer", "deploy", "-v"], ["portainer.deploy", "--dry-run", "--verbose"]),
    (["portainer", "status", "--json"], ["portainer.status", "--json"]),
    (["swarm", "history", "x", "--env", "dev1", "--json"], ["swarm.history", "--stack", "x", "--env", "dev1", "--json"]),
    (["--dry-run", "swarm", "rollback", "x", "--env", "dev1", "--to", "3"],
     ["swarm.rollback", "--stack", "x", "--dry-run", "--env", "dev1", "--to", "3"]),
    (["swarm", "deploy", "x", "--env", "dev1", "--lock-wait", "-v"],
     ["swarm.deploy", "--stack", "x", "--env", "dev1", "--lock-wait", "-v"]),
    (["swarm", "unlock", "x", "--env", "dev1", "--force"], ["swarm.unlock", "--stack", "x", "--env", "dev1", "--force"]),
    (["vm", "create", "1002"], ["vm.create", "--vmid", "1002"]),
    (["--dry-run", "vm", "create", "1002", "--apply-drift", "-v"],
     ["vm.create", "--vmid", "1002", "--dry-run", "--verbose", "--apply-drift"]),
    (["vm", "create", "--vmid", "1002"], ["vm.create", "--vmid", "1002"]),
    (["vm", "status"], ["vm.status"]),
    (["vm", "status", "1001"], ["vm.status", "--vmid", "1001"]),
    (["sync", "all", "--apply-drift"], ["sync-all", "--apply-drift"]),
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
    (["swarm", "tokens", "--rotate", "both", "--dry-run"], ["swarm.tokens", "--dry-run", "--rotate", "both"]),
    (["--dry-run", "swarm", "autolock", "--disable", "-v"], ["swarm.autolock", "--dry-run", "--verbose", "--disable"]),
    (["swarm", "rm", "qdrant_service", "--env", "dev2", "--dry-run"], ["swarm.rm", "--stack", "qdrant_service", "--dry-run", "--env", "dev2"]),
    # (["--dry-run", "validate"], ["validate"]) was here: validate has no --dry-run, so it is
    # now refused (test_a_flag_the_task_lacks_is_refused_and_nothing_runs)
])
def test_global_flags_reach_the_tasks_that_take_them(args, task_argv, stub):
    assert routed(phoenix(*args, inv=stub)) == task_argv


def test_arguments_are_passed_as_data_never_through_a_shell(stub, tmp_path):
    canary = tmp_path / "canary"
    hostile = f"dev1; rm -rf / $(touch {canary}) `touch {canary}`"
    r = phoenix("swarm", "deploy", hostile, "--env", "dev1; rm -rf /", inv=stub)
    assert routed(r) == ["swarm.deploy", "--stack", hostile, "--env", "dev1; rm -rf /"]
    assert not canary.exists()


# -- the stack verbs ---------------------------------------------------------------
# <stack> becomes --stack; the global flags follow it, then the rest as given (inv does not
# care about the order of one task's options).

@pytest.mark.parametrize("args, task_argv", [
    (["swarm", "deploy", "thinkheads_ai_app", "--env", "dev1", "--dry-run"],
     ["swarm.deploy", "--stack", "thinkheads_ai_app", "--dry-run", "--env", "dev1"]),
    (["--dry-run", "swarm", "deploy", "thinkheads_ai_app", "--env", "dev1"],
     ["swarm.deploy", "--stack", "thinkheads_ai_app", "--dry-run", "--env", "dev1"]),
    (["swarm", "deploy", "thinkheads_ai_app", "--env", "dev1", "--timeout", "600", "-v"],
     ["swarm.deploy", "--stack", "thinkheads_ai_app", "--verbose", "--env", "dev1", "--timeout", "600"]),
    (["-v", "swarm", "rm", "thinkheads_ai_app", "--env", "dev1", "--volumes"],
     ["swarm.rm", "--stack", "thinkheads_ai_app", "--verbose", "--env", "dev1", "--volumes"]),
    (["swarm", "rm", "thinkheads_ai_app", "--env", "dev1", "--dry-run", "--volumes", "--timeout", "30"],
     ["swarm.rm", "--stack", "thinkheads_ai_app", "--dry-run", "--env", "dev1", "--volumes", "--timeout", "30"]),
    (["swarm", "render", "qdrant_service", "--env", "prod"], ["swarm.render", "--stack", "qdrant_service", "--env", "prod"]),
    (["swarm", "render", "--env", "prod", "--stack", "qdrant_service"], ["swarm.render", "--env", "prod", "--stack", "qdrant_service"]),
    (["swarm", "diff", "qdrant_service", "--env", "prod"], ["swarm.diff", "--stack", "qdrant_service", "--env", "prod"]),
    (["swarm", "diff", "qdrant_service", "--env", "prod", "-v"], ["swarm.diff", "--stack", "qdrant_service", "--verbose", "--env", "prod"]),
    (["swarm", "envs"], ["swarm.envs"]),
    (["swarm", "envs", "--json"], ["swarm.envs", "--json"]),
    (["-v", "swarm", "envs", "--json"], ["swarm.envs", "--verbose", "--json"]),
])
def test_stack_verbs_become_tasks(args, task_argv, stub):
    r = phoenix(*args, inv=stub)
    assert r.returncode == 0, r.stderr
    assert routed(r) == task_argv


@pytest.mark.parametrize("verb", ["render", "diff", "deploy", "rm"])
def test_a_hostile_stack_name_stays_one_argument(verb, stub, tmp_path):
    canary = tmp_path / "canary"
    hostile = f"dev1; rm -rf / $(touch {canary})"
    r = phoenix("swarm", verb, hostile, "--env", "dev1", inv=stub)
    assert routed(r) == [f"swarm.{verb}", "--stack", hostile, "--env", "dev1"]
    assert not canary.exists()


# -- flags the task lacks, option values, stray words ------------------------------

NO_DRY_RUN = "has no --dry-run: it would really run; nothing was done"
CHANGES_NOTHING = "has no --dry-run (it changes nothing: run it without); nothing was done"


@pytest.mark.parametrize("args, complaint", [
    # a dry run must never be dropped and the verb run for real
    (["lab", "down", "--dry-run"], f"phoenix: 'lab down' {NO_DRY_RUN}"),
    (["--dry-run", "lab", "down"], f"phoenix: 'lab down' {NO_DRY_RUN}"),
    (["lab", "--dry-run", "down", "--state-dir", "/tmp/lab"], f"phoenix: 'lab down' {NO_DRY_RUN}"),
    (["lab", "up", "--dry-run"], f"phoenix: 'lab up' {NO_DRY_RUN}"),
    (["lab", "config", "--nodes", "3", "--out", "/tmp/x", "--dry-run"], f"phoenix: 'lab config' {NO_DRY_RUN}"),
    (["lab", "ssh", "--vmid", "1001", "--dry-run", "--cmd", "reboot"], f"phoenix: 'lab ssh' {NO_DRY_RUN}"),
    # verbs that change nothing have no dry run either: refused the same way, said kindly
    (["--dry-run", "validate"], f"phoenix: 'validate' {CHANGES_NOTHING}"),
    (["lab", "status", "--dry-run"], f"phoenix: 'lab status' {CHANGES_NOTHING}"),
    (["--dry-run", "swarm", "status"], f"phoenix: 'swarm status' {CHANGES_NOTHING}"),
    (["swarm", "envs", "--json", "--dry-run"], f"phoenix: 'swarm envs' {CHANGES_NOTHING}"),
    (["swarm", "render", "x", "--env", "e", "--dry-run"], f"phoenix: 'swarm render' {CHANGES_NOTHING}"),
    (["--dry-run", "swarm", "diff", "x", "--env", "e"], f"phoenix: 'swarm diff' {CHANGES_NOTHING}"),
    (["portainer", "status", "--dry-run"], f"phoenix: 'portainer status' {CHANGES_NOTHING}"),
    (["swarm", "history", "x", "--env", "e", "--dry-run"], f"phoenix: 'swarm history' {CHANGES_NOTHING}"),
    (["swarm", "lock", "x", "--env", "e", "--dry-run"], f"phoenix: 'swarm lock' {NO_DRY_RUN}"),
    # -v where the task has no --verbose
    (["-v", "lab", "down"], "phoenix: 'lab down' has no -v/--verbose; nothing was done"),
    (["lab", "status", "--verbose"], "phoenix: 'lab status' has no -v/--verbose; nothing was done"),
    (["lab", "config", "--nodes", "3", "--out", "/tmp/x", "-v"], "phoenix: 'lab config' has no -v/--verbose; nothing was done"),
    (["-v", "lab", "ssh", "--vmid", "1001"], "phoenix: 'lab ssh' has no -v/--verbose; nothing was done"),
    (["validate", "-v"], "phoenix: 'validate' has no -v/--verbose; nothing was done"),
    (["swarm", "render", "x", "--env", "e", "-v"], "phoenix: 'swarm render' has no -v/--verbose; nothing was done"),
    (["vm", "status", "--dry-run"], f"phoenix: 'vm status' {CHANGES_NOTHING}"),
    (["vm", "status", "-v"], "phoenix: 'vm status' has no -v/--verbose; nothing was done"),
])
def test_a_flag_the_task_lacks_is_refused_and_nothing_runs(args, complaint, stub):
    r = phoenix(*args, inv=stub)
    assert r.returncode == 2
    assert r.stdout == ""  # the stub was not called
    assert r.stderr.splitlines() == [complaint]


@pytest.mark.parametrize("args, task_argv", [
    (["lab", "ssh", "--vmid", "1001", "--cmd", "-v"], ["lab.ssh", "--vmid", "1001", "--cmd", "-v"]),
    (["lab", "ssh", "--vmid", "1001", "--cmd", "--dry-run"], ["lab.ssh", "--vmid", "1001", "--cmd", "--dry-run"]),
    (["lab", "ssh", "--vmid", "1001", "--cmd", "ls -v --dry-run"], ["lab.ssh", "--vmid", "1001", "--cmd", "ls -v --dry-run"]),
    (["lab", "ssh", "-v", "1001", "-c", "-v"], ["lab.ssh", "-v", "1001", "-c", "-v"]),  # lab.ssh's own -v is --vmid
    (["lab", "ssh", "--vmid", "1001", "--", "-v", "--dry-run"], ["lab.ssh", "--vmid", "1001", "--", "-v", "--dry-run"]),
    (["lab", "down", "--state-dir", "-v"], ["lab.down", "--state-dir", "-v"]),
    (["lab", "config", "--nodes", "3", "--out", "--dry-run"], ["lab.config", "--nodes", "3", "--out", "--dry-run"]),
    (["swarm", "deploy", "app", "--env", "-v", "--timeout", "--dry-run"], ["swarm.deploy", "--stack", "app", "--env", "-v", "--timeout", "--dry-run"]),
    (["swarm", "join", "--vmid", "--dry-run"], ["swarm.join", "--vmid", "--dry-run"]),
])
def test_an_options_value_is_never_a_global_flag(args, task_argv, stub):
    r = phoenix(*args, inv=stub)
    assert r.returncode == 0, r.stderr
    assert routed(r) == task_argv


@pytest.mark.parametrize("args, complaint", [
    # inv would run a further word as a further task: a dry run followed by a real lab.down
    (["sync", "all", "--dry-run", "lab.down"], "phoenix: unexpected argument 'lab.down' for 'sync all' (one verb per call; see: phoenix help)"),
    (["validate", "lab.down"], "phoenix: unexpected argument 'lab.down' for 'validate' (one verb per call; see: phoenix help)"),
    (["swarm", "deploy", "a", "b", "--env", "e"], "phoenix: unexpected argument 'b' for 'swarm deploy' (one verb per call; see: phoenix help)"),
    (["swarm", "deploy", "a", "--stack", "b", "--env", "e"], "phoenix: 'swarm deploy': the stack is given twice (as <stack> and --stack); nothing was done"),
    (["swarm", "rm", "--stack=b", "a", "--env", "e"], "phoenix: 'swarm rm': the stack is given twice (as <stack> and --stack); nothing was done"),
    (["vm", "create", "1002", "--vmid", "1003"], "phoenix: 'vm create': the vmid is given twice (as <vmid> and --vmid); nothing was done"),
    (["vm", "create", "1002", "1003"], "phoenix: unexpected argument '1003' for 'vm create' (one verb per call; see: phoenix help)"),
    # A stack whose first word is a dash: Invoke would take it as flags (issue 21).
    (["swarm", "rm", "-rf", "--env", "dev1"], "phoenix: '-rf' is not an option of 'swarm rm', nor a <stack> (a stack name starts with a letter); nothing was done"),
    (["swarm", "deploy", "--env", "dev1", "-x"], "phoenix: '-x' is not an option of 'swarm deploy', nor a <stack> (a stack name starts with a letter); nothing was done"),
])
def test_stray_words_are_refused_and_nothing_runs(args, complaint, stub):
    r = phoenix(*args, inv=stub)
    assert r.returncode == 2
    assert r.stdout == ""
    assert r.stderr.splitlines() == [complaint]


def test_usage_lists_the_stack_verbs_aligned(stub):
    text = phoenix("help", inv=stub).stdout
    for verb in ("swarm render <stack> --env <env>", "swarm diff <stack> --env <env>",
                 "swarm deploy <stack> --env <env>", "swarm rm <stack> --env <env>", "swarm envs [--json]"):
        assert f"\n  {verb} " in text
    assert "render/diff never change anything" in text
    block = text.split("verbs:\n", 1)[1].split("\n\n", 1)[0].splitlines()
    assert len(block) > 15
    # every description (and continuation) starts in column 35
    assert all(line[34] == " " and line[35] != " " for line in block), block


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


@pytest.mark.parametrize("args, words", [
    (["swarm", "status", "--bogus"], "No idea what '--bogus' is!"),
    (["swarm", "deploy", "thinkheads_ai_app", "--env"], "needed value"),
    (["lab", "config", "--out"], "needed value"),
])
def test_a_task_usage_error_exits_2_through_the_real_program(args, words):
    """Without PHOENIX_INV: Invoke's program itself, through phoenix_tasks/__main__.py
    (plain `inv` exits 1 for these, like a failed task).  No task runs, so nothing is
    contacted."""
    env = {k: v for k, v in os.environ.items() if k != "PHOENIX_INV"}
    res = subprocess.run([str(PHOENIX), *args], capture_output=True, text=True, env=env, timeout=60)
    assert res.returncode == 2, res.stdout + res.stderr
    assert words in res.stderr
