"""`swarm.diff --exit-code` and `--json`, over recorded service reads (no VM): 0 when
nothing would change, CHANGES_EXIT (4) when something would, 1 for an error."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from invoke import MockContext, Result
from invoke.exceptions import Exit

from phoenix_tasks.stack import commands
from phoenix_tasks.stack.diff_report import CHANGES_EXIT
from phoenix_tasks.tasks import common
from phoenix_tasks.tasks import stacks as stack_tasks
from phoenix_tasks.core.transport import Transport, shell_command

from swarm_recorded import lab_config

REPO = Path(__file__).resolve().parents[2]
RECORDED = (REPO / "tests" / "data" / "stack" / "services_probe_rollback.txt").read_text()
NS = "rb_probe_rollback"


@pytest.fixture
def diff(tmp_path, monkeypatch):
    """diff(answer, **flags) -> (exit code, stdout): swarm.diff of probe_rollback as rb,
    the manager answering the service read with `answer` ((stdout, exit) or None: no answer)."""
    stacks = tmp_path / "stacks"
    shutil.copytree(REPO / "stacks", stacks)
    shutil.copytree(REPO / "tests" / "data" / "lab_stacks" / "probe_rollback", stacks / "probe_rollback")
    monkeypatch.setenv("PHOENIX_STACKS_DIR", str(stacks))
    monkeypatch.setenv("PHOENIX_CONFIG_DIR", str(lab_config(tmp_path).config_dir))

    def go(answer, capsys, **flags):
        runs = {} if answer is None else {shell_command(commands.stack_services(NS)): Result(stdout=answer[0],
                                                                                          exited=answer[1])}
        monkeypatch.setattr(common, "transport_for", lambda cfg, verbose: Transport(
            cfg.hypervisor.vm_access, connect=lambda vm, access: MockContext(run=runs, repeat=True)))
        code = 0
        try:
            stack_tasks.diff(MockContext(), stack="probe_rollback", env="rb", **flags)
        except Exit as exc:
            code = exc.code
        captured = capsys.readouterr()
        return code, captured.out, captured.err

    return go


def test_no_changes_exits_0(diff, capsys):
    code, out, _ = diff((RECORDED, 0), capsys, exit_code=True)
    assert code == 0 and "rb_probe_rollback: no changes" in out


def test_changes_exit_with_the_documented_code(diff, capsys):
    code, out, _ = diff(("[]\n--- phoenix ---\n", 0), capsys, exit_code=True)
    assert code == CHANGES_EXIT == 4
    assert "rb_probe_rollback: 1 service(s) differ" in out and "add rb_probe_rollback_web" in out


def test_without_the_flag_changes_still_exit_0(diff, capsys):
    code, _, _ = diff(("[]\n--- phoenix ---\n", 0), capsys)
    assert code == 0


def test_an_error_is_1_not_the_changes_code(diff, capsys):
    code, _, err = diff(("", 1), capsys, exit_code=True)
    assert code == 1 and "error:" in err


def test_json_is_one_document_with_changed(diff, capsys):
    code, out, _ = diff(("[]\n--- phoenix ---\n", 0), capsys, exit_code=True, json=True)
    doc = json.loads(out)
    assert code == CHANGES_EXIT
    assert set(doc) == {"namespace", "read_from", "hash", "changed", "services"}
    assert doc["changed"] is True and doc["namespace"] == NS and doc["read_from"] == "portainer"
    [svc] = doc["services"]
    assert svc["name"] == "rb_probe_rollback_web" and svc["kind"] == "add"
    assert svc["fields"]["image"]["before"] is None

    code, out, _ = diff((RECORDED, 0), capsys, exit_code=True, json=True)
    assert code == 0 and json.loads(out)["changed"] is False and json.loads(out)["services"] == []
