"""sync-all --prune: the plan counts the prune stage, the run is ok only when the prune
is, and the plan prints the prune's actions (or, without --prune, the swarm plan's
"not in config" warnings)."""

from __future__ import annotations

from rich.console import Console

from phoenix_tasks.core.plan import Action, Blocked, Outcome, Plan
from phoenix_tasks.show.sync import show_sync_plan
from phoenix_tasks.stack.deploy import DeployOutcome
from phoenix_tasks.cluster.maintenance import NodeRef
from phoenix_tasks.sync.sync_all import SyncPlan, SyncResult

REF = NodeRef("175axxtoqiggoeek7e8h9hhcw", "cpuworker2")
REMOVE = Action(kind="remove", where=REF, target=REF, summary="not in config: remove its entry (the node is down)",
                argv=("docker", "node", "rm", "--", REF.id))


def converged_plan(**kw) -> SyncPlan:
    return SyncPlan(vms=[], swarm=Outcome(Plan(), dry_run=True), portainer=DeployOutcome(Plan(), dry_run=True), **kw)


def test_a_prune_with_something_to_do_is_not_empty():
    assert converged_plan().empty
    assert converged_plan(prune=Plan()).empty
    assert not converged_plan(prune=Plan(actions=[REMOVE])).empty


def test_the_run_is_ok_only_when_the_prune_is():
    ok = SyncResult(converged_plan(), dry_run=True, prune=Outcome(Plan(), applied=[REMOVE]))
    assert ok.ok
    blocked = SyncResult(converged_plan(), dry_run=True,
                         prune=Outcome(Plan(), blocked=[Blocked(REF, "not in config, and still up (ready)")]))
    assert not blocked.ok
    assert not SyncResult(converged_plan(), dry_run=True, prune=Outcome(Plan(), failed=[(REF, "timed out")])).ok


def test_the_plan_prints_the_prune_stage():
    console = Console(record=True, width=200, markup=False)
    plan = SyncPlan(vms=[], swarm=Outcome(Plan(), dry_run=True), prune=Plan(actions=[REMOVE]),
                    notes={"portainer": "(not read in this test)"})
    show_sync_plan(console, plan, verbose=True)
    text = console.export_text()
    assert "prune: 1 change" in text
    assert "node cpuworker2 (175axxtoqigg)  remove   not in config: remove its entry (the node is down)" in text
    assert "$ docker node rm -- 175axxtoqiggoeek7e8h9hhcw" in text
