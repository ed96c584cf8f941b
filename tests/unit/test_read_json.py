"""`--json` of the read commands that had none: `vm status` (here, on a lab config whose
lab is not up: every VM missing).  ps and diff: test_stack_logs_ps.py, test_stack_diff_exit.py."""

from __future__ import annotations

import json

from invoke import MockContext
from invoke.exceptions import Exit

from phoenix_tasks.tasks import vm as vm_tasks

from swarm_recorded import lab_config


def test_vm_status_json_is_one_document_and_keeps_the_exit_status(tmp_path, monkeypatch, capsys):
    config = lab_config(tmp_path)
    monkeypatch.setenv("PHOENIX_CONFIG_DIR", str(config.config_dir))
    code = 0
    try:
        vm_tasks.status(MockContext(), json=True)
    except Exit as exc:
        code = exc.code
    doc = json.loads(capsys.readouterr().out)
    assert code == 1  # the VMs are not up: as without --json
    assert set(doc) == {"provider", "vms", "down"} and doc["provider"] == "lab" and doc["down"] is True
    rows = {row["name"]: row for row in doc["vms"]}
    assert set(rows["portainer"]) == {"name", "vmid", "template", "exists", "running", "state", "detail"}
    assert rows["portainer"]["state"] == "missing" and rows["portainer"]["exists"] is False
    assert [row["template"] for row in doc["vms"]].count(True) == 1
