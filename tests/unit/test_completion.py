"""`phoenix completion bash`, driven in a real bash as bash's completion does: COMP_WORDS
and COMP_CWORD set, the completion function called, COMPREPLY read.  The verbs and
flags come from the task collection; stacks and environments from PHOENIX_STACKS_DIR."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

from phoenix_tasks.collection import ns
from phoenix_tasks.completion import verbs_of

REPO = Path(__file__).resolve().parents[2]
PHOENIX = REPO / "bin" / "phoenix"


@pytest.fixture(scope="module")
def script() -> str:
    res = subprocess.run([str(PHOENIX), "completion", "bash"], capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr
    assert res.stdout.rstrip().endswith("complete -F _phoenix phoenix")
    return res.stdout


@pytest.fixture(scope="module")
def stacks(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("stacks")
    for name, envs in (("app", ["default", "dev1", "prod"]), ("analytics", ["default"]), ("other", ["staging"])):
        (out / name).mkdir()
        (out / name / "phoenix.json").write_text(json.dumps(
            {"description": name, "environments": {e: {"variables": {}} for e in envs}}))
    (out / "not_a_stack").mkdir()  # no phoenix.json
    (out / "app" / "docker-compose.yml").write_text(
        "version: '3.8'\nservices:\n    api:\n        image: a:1\n        deploy: {}\n"
        "    # a comment\n    worker:\n        image: w:1\nnetworks:\n    backend: {}\n")
    return out


def complete(script: str, stacks: Path, line: str) -> list[str]:
    """COMPREPLY for the command line `line` (the cursor at its end)."""
    words = line.split(" ")
    driver = (script + "\nCOMP_WORDS=(" + " ".join(f"'{w}'" for w in words) + ")\n"
              f"COMP_CWORD={len(words) - 1}\n_phoenix\nprintf '%s\\n' \"${{COMPREPLY[@]}}\"\n")
    res = subprocess.run(["bash", "--norc", "--noprofile", "-c", driver], capture_output=True, text=True,
                         timeout=30, env={"PATH": "/usr/bin:/bin", "PHOENIX_STACKS_DIR": str(stacks)})
    assert res.returncode == 0 and res.stderr == "", res.stderr
    return sorted(w for w in res.stdout.split("\n") if w)


@pytest.mark.parametrize("line, expected", [
    ("phoenix ", ["--dry-run", "-v", "completion", "help", "lab", "portainer", "swarm", "sync", "validate", "vm"]),
    ("phoenix sw", ["swarm"]),
    ("phoenix swarm l", ["label", "lock", "logs"]),
    ("phoenix --dry-run swarm de", ["deploy"]),
    ("phoenix sync ", ["all"]),
    ("phoenix swarm logs ", ["analytics", "app", "other"]),
    ("phoenix swarm deploy a", ["analytics", "app"]),
    ("phoenix swarm logs app --env ", ["dev1", "prod"]),
    ("phoenix swarm logs other --env ", ["staging"]),
    ("phoenix swarm deploy --stack app --env d", ["dev1"]),
    ("phoenix -v swarm diff app --env dev1 --ex", ["--exit-code"]),
    ("phoenix swarm logs app --env dev1 --f", ["--follow"]),
    ("phoenix swarm logs app --tail ", []),
    ("phoenix swarm ps app --env dev1 --", ["--all", "--config-dir", "--env", "--json", "--stack", "--verbose"]),
    ("phoenix swarm ps --stack ", ["analytics", "app", "other"]),
    ("phoenix completion ", ["bash"]),
    ("phoenix swarm logs app --env dev1 ", ["api", "worker"]),
    ("phoenix swarm logs app w", ["worker"]),
    ("phoenix swarm logs app api ", []),
    ("phoenix validate ", []),
])
def test_completion(script, stacks, line, expected):
    assert complete(script, stacks, line) == expected


def test_verbs_and_flags_follow_the_collection():
    verbs = {(v.verb, v.action): v for v in verbs_of(ns)}
    assert ("sync", "all") in verbs and ("validate", "") in verbs
    logs = verbs[("swarm", "logs")]
    assert {"--follow", "--tail", "--since", "--service"} <= set(logs.flags)
    assert {"--tail", "--since", "--service", "--env", "--stack"} <= set(logs.value_flags)
    assert "--follow" not in logs.value_flags and logs.positional == "--stack"
    assert verbs[("vm", "create")].positional == "--vmid"


def test_the_installed_default_is_the_working_directorys_stacks(script):
    assert f"_phoenix_default_stacks={REPO / 'stacks'}" in script  # a checkout: its own stacks/
