"""The guide's commands, read without a lab: every one is a verb bin/phoenix knows,
routed to a task (the lab test runs them for real: tests/lab/test_workflow_guide.py)."""

import os
import subprocess

import pytest

from conftest import REPO
from guide_commands import GUIDE, guide_commands


def test_the_extractor_reads_bash_blocks_only_and_expected_exits():
    text = "\n".join([
        "```bash", "phoenix validate", "phoenix swarm deploy x --env Dev1  # exits 1", "```",
        "```text", "phoenix swarm deploy <stack> --env <env>", "```",
        "phoenix lab down (prose, not a block)",
        "```bash", "export PHOENIX_CONFIG_DIR=etc/lab", "phoenix --dry-run sync all", "```",
    ])
    found = [(c.line, c.argv, c.exits) for c in guide_commands(text)]
    assert found == [(2, ("validate",), 0), (3, ("swarm", "deploy", "x", "--env", "Dev1"), 1),
                     (11, ("--dry-run", "sync", "all"), 0)]


@pytest.mark.parametrize("text, complaint", [
    ("```bash\nphoenix validate  # really\n```", "a comment after a command must be '# exits N'"),
    ("```bash\nphoenix validate\n", "ends inside a fenced block"),
])
def test_a_malformed_guide_is_an_error(text, complaint):
    with pytest.raises(ValueError, match=complaint):
        guide_commands(text)


def test_the_guide_covers_the_workflow():
    commands = [str(c) for c in guide_commands(GUIDE.read_text())]
    for expected in ("phoenix sync all", "phoenix swarm deploy thinkheads_ai_app --env dev1",
                     "phoenix swarm rm thinkheads_ai_app --env dev1", "phoenix swarm status",
                     "phoenix portainer status"):
        assert expected in commands
    assert commands.index("phoenix swarm deploy thinkheads_ai_app --env dev1") < \
        commands.index("phoenix swarm rm thinkheads_ai_app --env dev1")


def test_every_guide_command_is_routed_to_a_task(tmp_path):
    stub = tmp_path / "inv"
    stub.write_text("#!/bin/sh\necho \"$@\"\n")
    stub.chmod(0o755)
    for command in guide_commands(GUIDE.read_text()):
        r = subprocess.run([str(REPO / "bin" / "phoenix"), *command.argv], capture_output=True, text=True,
                           env={**os.environ, "PHOENIX_INV": str(stub)}, timeout=30)
        assert r.returncode == 0, f"{command} (guide line {command.line}): {r.stderr}"
        assert r.stdout.startswith(f"--search-root {REPO} "), command
