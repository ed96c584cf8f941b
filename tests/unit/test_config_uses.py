"""A command blocks only on problems in what it uses (issue 21, item 7): one invalid,
unrelated stack in stacks/ is a warning for `swarm.rm|rollback|render...` of another
stack and for `swarm.status`, and still an error for `inv validate` and for commands
on that stack."""

from __future__ import annotations

import os
import subprocess

from phoenix_tasks.config import validate

from test_config_corpus import INV, NO_NET, REPO, apply_patch, base_tree

BROKEN = {"file": "stacks/qdrant_service/docker-compose.yml", "op": "replace_text",
          "old": "      replicas: 1\n", "new": "      replicas: 99999999999999999\n"}


def broken_tree(tmp_path):
    root = base_tree(tmp_path / "tree")
    apply_patch(root, tmp_path, BROKEN)
    return root


def test_validate_refuses_the_broken_stack(tmp_path):
    root = broken_tree(tmp_path)
    config, problems = validate(root / "etc", root / "stacks")
    assert config is None
    assert [p.pointer for p in problems if p.severity == "error"] == ["/services/qdrant/deploy/replicas"]


def test_a_command_on_another_stack_gets_a_warning_and_a_config_without_it(tmp_path):
    root = broken_tree(tmp_path)
    config, problems = validate(root / "etc", root / "stacks", uses=["thinkheads_ai_app"])
    assert config is not None
    assert "qdrant_service" not in config.stacks and "thinkheads_ai_app" in config.stacks
    (warning,) = [p for p in problems if p.pointer == "/services/qdrant/deploy/replicas"]
    assert warning.severity == "warning"
    assert "stack 'qdrant_service' is left out: this command does not use it" in warning.message
    # A command that uses no stack (swarm.status) is not blocked either.
    assert validate(root / "etc", root / "stacks", uses=[])[0] is not None


def test_a_command_on_the_broken_stack_is_refused(tmp_path):
    root = broken_tree(tmp_path)
    config, problems = validate(root / "etc", root / "stacks", uses=["qdrant_service"])
    assert config is None


def test_an_error_outside_the_stacks_still_blocks_everything(tmp_path):
    root = broken_tree(tmp_path)
    apply_patch(root, tmp_path, {"file": "etc/phoenix_vm_configs.json", "op": "set", "pointer": "/vms/0/cores",
                                 "value": "two"})
    assert validate(root / "etc", root / "stacks", uses=["thinkheads_ai_app"])[0] is None


def _task(root, *argv):
    env = {k: v for k, v in os.environ.items() if not k.startswith("PHOENIX_")}
    env.update(PHOENIX_CONFIG_DIR=str(root / "etc"), PHOENIX_STACKS_DIR=str(root / "stacks"), COLUMNS="400")
    return subprocess.run([*NO_NET, str(INV), "--search-root", str(REPO), *argv], cwd=root, env=env,
                          capture_output=True, text=True, timeout=60)


def test_render_of_another_stack_runs_with_a_warning(tmp_path):
    root = broken_tree(tmp_path)
    res = _task(root, "swarm.render", "--stack", "thinkheads_ai_app", "--env", "dev1")
    assert res.returncode == 0, res.stderr
    assert "services:" in res.stdout
    assert "warning: replicas 99999999999999999 is out of range" in res.stderr
    res = _task(root, "swarm.render", "--stack", "qdrant_service", "--env", "dev1")
    assert res.returncode == 1
    assert "replicas 99999999999999999 is out of range: 0 to 100" in res.stderr
