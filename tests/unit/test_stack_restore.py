"""The automatic restore of a failed deploy (phoenix_tasks.stack.transaction): when it runs,
and which ledger record it goes back to, decided from a recorded-format ledger read.
The restore itself (redeploy, wait, two records) is proven on the lab
(tests/lab/test_deploy_restore_lab.py)."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import pytest
from invoke import MockContext, Result

from phoenix_tasks.config import load_config
from phoenix_tasks.core.plan import Plan
from phoenix_tasks.stack import ledger
from phoenix_tasks.stack.deploy import DeployOutcome
from phoenix_tasks.stack.digests import Resolution
from phoenix_tasks.stack.transaction import Guard, Guarded, gate_lines, restore, should_restore
from phoenix_tasks.docker.render import render
from phoenix_tasks.stack.wait import Verdict
from phoenix_tasks.core.transport import Transport, shell_command

REPO = Path(__file__).resolve().parents[2]
CONFIG = load_config(REPO / "etc" / "lab", REPO / "stacks")
MANAGER = CONFIG.managers[0]
RENDERED = render(CONFIG.stacks["thinkheads_ai_app"], "dev1")
NS = RENDERED.namespace
API = f"{NS}_api"


def outcome(state: str) -> DeployOutcome:
    return DeployOutcome(Plan(), verdicts={API: Verdict(API, state, "0/1 running", "task x failed")})


@pytest.mark.parametrize("state, restore_flag, dry_run, expect", [
    ("failed", True, False, True),
    ("failed", False, False, False),  # --no-restore
    ("failed", True, True, False),  # a dry run changes nothing
    ("converged", True, False, False),
    ("pending", True, False, False),
])
def test_should_restore_only_a_wait_that_failed(state, restore_flag, dry_run, expect):
    assert should_restore(Guard("x", restore=restore_flag), outcome(state), dry_run) is expect


def test_should_restore_not_when_nothing_was_waited_for():
    blocked_by_gate = DeployOutcome(Plan())
    assert should_restore(Guard("x"), blocked_by_gate, False) is False
    assert should_restore(Guard("x"), None, False) is False


def test_gate_lines_unreachable_blocks_only_with_require_digests():
    r = Resolution(blocked=["image a:1: registry docker.io answered: manifest unknown"],
                   unreachable=["image r.lan/b:2: registry r.lan not reached (no such host)"])
    assert gate_lines(r, False) == r.blocked
    assert gate_lines(r, True) == [*r.blocked, "image r.lan/b:2: registry r.lan not reached (no such host): "
                                               "--require-digests refuses to deploy it by tag"]


def entry(seq: int, result: str, hash: str, document: str | None = "services: {x: {image: a}}\n") -> ledger.Entry:
    return ledger.Entry(namespace=NS, seq=seq, kind="deploy", env="dev1", stack="thinkheads_ai_app", hash=hash,
                        who="alice@laptop", command="swarm.deploy", started=1_700_000_000 + seq, document=document,
                        result=result)


def ledger_stdout(entries: list[ledger.Entry]) -> str:
    """What ledger.read_argv prints: the clock, then `docker config inspect` of entries and results."""
    items = []
    for e in entries:
        for labels, data in (({ledger.ENTRY: NS, ledger.L_SEQ: str(e.seq)}, ledger.entry_data(e)),
                             ({ledger.RESULT_OF: NS, ledger.L_SEQ: str(e.seq)}, ledger.result_data(e))):
            if e.result == ledger.INCOMPLETE and ledger.RESULT_OF in labels:
                continue
            items.append({"Spec": {"Labels": labels, "Data": base64.b64encode(data.encode()).decode()}})
    return "1700000100\n" + ledger.SEPARATOR + "\n" + json.dumps(items)


def restore_of(entries: list[ledger.Entry], failed_seq: int | None) -> Guarded:
    runs = {shell_command(ledger.read_argv(NS)): Result(stdout=ledger_stdout(entries))}
    transport = Transport(CONFIG.hypervisor.vm_access, connect=lambda host, access: MockContext(run=runs))
    result = Guarded(RENDERED, entry=next((e for e in entries if e.seq == failed_seq), None))
    restore(transport, CONFIG, MANAGER, result, guard=Guard("swarm.deploy"), lock=None, timeout_s=1,
            show=lambda o, r: None, report=lambda v: None, note=lambda line: None)
    return result


def test_a_first_deploy_that_failed_has_nothing_to_restore():
    result = restore_of([entry(1, ledger.FAILED, RENDERED.hash)], failed_seq=1)
    assert result.restored is None
    assert result.restore_note == (f"nothing to restore: no deploy of {NS} has converged before (its first "
                                   "deploy failed); what failed stays as it is")


def test_the_same_document_as_the_last_converged_is_not_restored_again():
    # a rerun that waited for a service crashing since: it is what converged last time
    result = restore_of([entry(1, ledger.CONVERGED, RENDERED.hash)], failed_seq=None)
    assert result.restored is None
    assert result.restore_note == (f"nothing to restore: the last deploy of {NS} that converged (record #1) "
                                   "is this same document")
