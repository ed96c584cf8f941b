"""bin/phoenix routes the daily verbs: swarm logs (a second word is the service), swarm
ps, swarm diff --exit-code, vm status --json, completion bash (through a stub inv that
echoes its argv; the real program's answers are tested with the tasks)."""

from __future__ import annotations

import pytest

from test_phoenix_cli import phoenix, routed, stub  # noqa: F401 - stub is a fixture


@pytest.mark.parametrize("args, expected", [
    (["swarm", "logs", "app", "--env", "dev1"], ["swarm.logs", "--stack", "app", "--env", "dev1"]),
    (["swarm", "logs", "app", "--env", "dev1", "api"],
     ["swarm.logs", "--stack", "app", "--service", "api", "--env", "dev1"]),
    (["swarm", "logs", "app", "api", "--env", "dev1", "--follow", "--tail", "20", "--since", "10m"],
     ["swarm.logs", "--stack", "app", "--service", "api", "--env", "dev1", "--follow", "--tail", "20",
      "--since", "10m"]),
    (["-v", "swarm", "logs", "app", "--env", "dev1"], ["swarm.logs", "--stack", "app", "--verbose", "--env", "dev1"]),
    (["swarm", "ps", "app", "--env", "dev1", "--json"], ["swarm.ps", "--stack", "app", "--env", "dev1", "--json"]),
    (["swarm", "diff", "app", "--env", "dev1", "--exit-code"],
     ["swarm.diff", "--stack", "app", "--env", "dev1", "--exit-code"]),
    (["vm", "status", "--json"], ["vm.status", "--json"]),
    (["completion", "bash"], ["completion", "--shell", "bash"]),
])
def test_daily_verbs_are_routed(args, expected, stub):  # noqa: F811
    assert routed(phoenix(*args, inv=stub)) == expected


@pytest.mark.parametrize("args, complaint", [
    (["swarm", "logs", "app", "api", "more", "--env", "dev1"], "phoenix: unexpected argument 'more' for 'swarm logs'"),
    (["swarm", "ps", "app", "api", "--env", "dev1"], "phoenix: unexpected argument 'api' for 'swarm ps'"),
    (["--dry-run", "swarm", "logs", "app", "--env", "dev1"], "phoenix: 'swarm logs' has no --dry-run"),
])
def test_daily_verbs_refuse_extra_words_and_a_dry_run(args, complaint, stub):  # noqa: F811
    r = phoenix(*args, inv=stub)
    assert r.returncode == 2 and r.stderr.startswith(complaint) and r.stdout == ""
