"""bin/phoenix: the node maintenance verbs (swarm drain|undrain <vmid>, swarm prune) and
sync all --prune, routed to their tasks (the stub of test_phoenix_cli.py)."""

from __future__ import annotations

import pytest

from test_phoenix_cli import phoenix, routed, stub  # noqa: F401 - stub is a fixture


@pytest.mark.parametrize("args, task_argv", [
    (["swarm", "drain", "1003"], ["swarm.drain", "--vmid", "1003"]),
    (["swarm", "drain", "--vmid", "1003"], ["swarm.drain", "--vmid", "1003"]),
    (["--dry-run", "swarm", "drain", "1003", "--force"], ["swarm.drain", "--vmid", "1003", "--dry-run", "--force"]),
    (["swarm", "drain", "1003", "--no-wait", "-v"], ["swarm.drain", "--vmid", "1003", "--verbose", "--no-wait"]),
    (["swarm", "drain", "1003", "--timeout", "-v"], ["swarm.drain", "--vmid", "1003", "--timeout", "-v"]),
    (["swarm", "undrain", "1003", "--dry-run"], ["swarm.undrain", "--vmid", "1003", "--dry-run"]),
    (["swarm", "prune"], ["swarm.prune"]),
    (["swarm", "prune", "--dry-run", "--force"], ["swarm.prune", "--dry-run", "--force"]),
    (["sync", "all", "--prune"], ["sync-all", "--prune"]),
    (["--dry-run", "sync", "all", "--prune"], ["sync-all", "--dry-run", "--prune"]),
])
def test_maintenance_verbs_become_tasks(args, task_argv, stub):  # noqa: F811
    r = phoenix(*args, inv=stub)
    assert r.returncode == 0, r.stderr
    assert routed(r) == task_argv


@pytest.mark.parametrize("args, complaint", [
    (["swarm", "drain", "1003", "1004"], "phoenix: unexpected argument '1004' for 'swarm drain' (one verb per call; see: phoenix help)"),
    (["swarm", "drain", "1003", "--vmid", "1004"], "phoenix: 'swarm drain': the vmid is given twice (as <vmid> and --vmid); nothing was done"),
    (["swarm", "prune", "1003"], "phoenix: unexpected argument '1003' for 'swarm prune' (one verb per call; see: phoenix help)"),
])
def test_stray_words_are_refused(args, complaint, stub):  # noqa: F811
    r = phoenix(*args, inv=stub)
    assert (r.returncode, r.stdout) == (2, "")
    assert r.stderr.splitlines() == [complaint]


def test_a_hostile_vmid_stays_one_argument(stub, tmp_path):  # noqa: F811
    canary = tmp_path / "canary"
    hostile = f"1003; touch {canary}"
    assert routed(phoenix("swarm", "drain", hostile, inv=stub)) == ["swarm.drain", "--vmid", hostile]
    assert not canary.exists()


def test_usage_lists_them(stub):  # noqa: F811
    text = phoenix("help", inv=stub).stdout
    for verb in ("swarm drain <vmid>", "swarm undrain <vmid>", "swarm prune [--force]"):
        assert f"\n  {verb} " in text
    assert "[--prune]" in text
