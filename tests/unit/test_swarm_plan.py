"""Classification and plans from recorded facts: every classification, every action."""

import json

import pytest

from phoenix_tasks.swarm.facts import NO_ENGINE, parse_info
from phoenix_tasks.swarm.plan import (
    FOREIGN, MEMBER, NO_SWARM, WRONG_ROLE, Options, classify, label_diff, plan_phases,
)

from swarm_recorded import (
    CONVERGED, CPU_ID, FRESH, GPU_ID, MANAGER_ID, facts, infos, lab_config, nodes, recorded,
)


@pytest.fixture
def config(tmp_path):
    return lab_config(tmp_path)


def kinds(plan):
    return [(a.kind, a.target.name) for a in plan.actions]


def test_parse_info_of_each_recorded_state(config):
    vm = config.swarm_vms[0]
    manager = parse_info(vm, json.dumps(recorded("info_manager.json")))
    assert (manager.state, manager.node_id, manager.is_manager, manager.cluster_id, manager.node_addr) == (
        "active", MANAGER_ID, True, "39m0w5zin78xr7r4mjgjxcapl", "198.18.90.11")
    worker = parse_info(vm, json.dumps(recorded("info_worker_gpu.json")))
    assert (worker.state, worker.node_id, worker.is_manager, worker.cluster_id) == ("active", GPU_ID, False, None)
    assert worker.remote_managers == ((MANAGER_ID, "198.18.90.11:2377"),)
    inactive = parse_info(vm, json.dumps(recorded("info_inactive.json")))
    assert (inactive.state, inactive.node_id) == ("inactive", None)
    no_engine = parse_info(vm, json.dumps(recorded("info_no_engine.json")))
    assert no_engine.state == NO_ENGINE
    assert parse_info(vm, "not json").state == NO_ENGINE


def test_converged_cluster_plans_nothing(config):
    f = facts(config, infos(CONVERGED))
    classes = classify(config, f)
    assert {c.vm.name: c.kind for c in classes.values()} == {
        "portainer": MEMBER, "drphoenix": MEMBER, "cpuworker": MEMBER}
    plan = plan_phases(config, f, Options())
    assert plan.empty and not plan.blocked


def test_fresh_machines_get_init_join_and_labels(config):
    f = facts(config, infos(FRESH))
    assert {c.kind for c in classify(config, f).values()} == {NO_SWARM}
    plan = plan_phases(config, f, Options())
    assert kinds(plan) == [("init", "portainer"), ("join", "drphoenix"), ("join", "cpuworker"),
                           ("labels", "portainer"), ("labels", "drphoenix"), ("labels", "cpuworker")]
    init = plan.actions[0]
    assert init.argv == ("docker", "swarm", "init", "--advertise-addr", "198.18.90.11")
    joins = [a for a in plan.actions if a.kind == "join"]
    assert all(a.argv is None and a.target.swarm_role == "worker" for a in joins)  # token fetched at apply
    assert "198.18.90.11:2377" in joins[0].summary
    assert not plan.blocked


def test_a_worker_that_left_rejoins(config):
    f = facts(config, infos(CONVERGED, cpuworker="info_inactive.json"))
    plan = plan_phases(config, f, Options())
    assert kinds(plan) == [("join", "cpuworker"), ("labels", "cpuworker")]
    assert plan.actions[0].where.name == "cpuworker"


def test_foreign_swarm_is_refused_and_untouched(config):
    f = facts(config, infos(CONVERGED, cpuworker="info_foreign_manager.json"))
    assert classify(config, f)[1003].kind == FOREIGN
    plan = plan_phases(config, f, Options())
    assert plan.empty
    [blocked] = plan.blocked
    assert blocked.subject.name == "cpuworker"
    assert "another swarm" in blocked.reason and "--force-rejoin" in blocked.reason
    assert "docker swarm leave --force" in blocked.reason


def test_foreign_swarm_with_force_rejoin_leaves_then_joins(config):
    f = facts(config, infos(CONVERGED, cpuworker="info_foreign_manager.json"))
    plan = plan_phases(config, f, Options(force_rejoin=True))
    assert kinds(plan) == [("leave", "cpuworker"), ("join", "cpuworker"), ("labels", "cpuworker")]
    assert plan.actions[0].argv == ("docker", "swarm", "leave", "--force")


def test_worker_of_another_swarm_is_foreign(config):
    # Active worker whose node ID our manager does not list.
    doc = [n for n in nodes() if n["ID"] != CPU_ID]
    f = facts(config, infos(CONVERGED), doc)
    assert classify(config, f)[1003].kind == FOREIGN


@pytest.mark.parametrize("state, words", [
    ("pending", "pending"), ("locked", "unlock"), ("error", "state error")])
def test_pending_locked_error_are_blocked(config, state, words):
    doc = recorded("info_worker_cpu.json")
    doc["Swarm"]["LocalNodeState"] = state
    f = facts(config, infos(CONVERGED, cpuworker=doc))
    plan = plan_phases(config, f, Options())
    assert plan.empty
    [blocked] = plan.blocked
    assert blocked.subject.name == "cpuworker" and words in blocked.reason


def test_unreachable_worker_is_reported_others_still_planned(config):
    f = facts(config, infos(CONVERGED, cpuworker="unreachable",
                            drphoenix="info_inactive.json"))
    plan = plan_phases(config, f, Options())
    assert kinds(plan) == [("join", "drphoenix"), ("labels", "drphoenix")]
    [blocked] = plan.blocked
    assert blocked.subject.name == "cpuworker" and "unreachable" in blocked.reason


def test_no_engine_is_reported(config):
    f = facts(config, infos(CONVERGED, drphoenix="info_no_engine.json"))
    plan = plan_phases(config, f, Options())
    [blocked] = plan.blocked
    assert blocked.subject.name == "drphoenix" and "no docker engine" in blocked.reason


def test_init_waits_when_a_manager_is_unknown(tmp_path):
    def two_managers(doc):
        doc["vms"][2]["swarm_role"] = "manager"
    config = lab_config(tmp_path, two_managers)
    f = facts(config, infos(FRESH, drphoenix="unreachable"))
    plan = plan_phases(config, f, Options(), ["init"])
    assert plan.empty
    assert any("cannot be while a configured manager's state is unknown" in b.reason for b in plan.blocked)


def test_join_without_a_swarm_says_run_init_first(config):
    f = facts(config, infos(FRESH))
    plan = plan_phases(config, f, Options(), ["join"])
    assert plan.empty
    assert {b.subject.name for b in plan.blocked} == {"drphoenix", "cpuworker"}
    assert all("swarm.init" in b.reason for b in plan.blocked)


def test_label_drift_merge_and_replace(config):
    def drift(by_name):
        by_name["drphoenix"]["Spec"]["Labels"] = {"gpu": "false", "zone": "compute", "handmade": "x"}
    f = facts(config, infos(CONVERGED), nodes(drift))
    merge = plan_phases(config, f, Options(label_policy="merge"), ["labels"])
    assert [a.argv for a in merge.actions] == [
        ("docker", "node", "update", "--label-add", "gpu=true", "--", GPU_ID)]
    assert "gpu=true (was false)" in merge.actions[0].summary
    replace = plan_phases(config, f, Options(label_policy="replace"), ["labels"])
    assert [a.argv for a in replace.actions] == [
        ("docker", "node", "update", "--label-add", "gpu=true", "--label-rm", "handmade", "--", GPU_ID)]
    assert all(a.where.name == "portainer" for a in replace.actions)


def test_label_diff():
    assert label_diff({"a": "1", "b": "2"}, {"a": "1", "c": "3"}, "merge") == ({"c": "3"}, [])
    assert label_diff({"a": "1", "b": "2"}, {"a": "1", "c": "3"}, "replace") == ({"c": "3"}, ["b"])
    assert label_diff({"a": "1"}, {"a": "1"}, "replace") == ({}, [])


def test_role_change_promotes(tmp_path):
    def cpu_manager(doc):
        doc["vms"][3]["swarm_role"] = "manager"
    config = lab_config(tmp_path, cpu_manager)
    f = facts(config, infos(CONVERGED))
    assert classify(config, f)[1003].kind == WRONG_ROLE
    plan = plan_phases(config, f, Options(), ["join"])
    assert [(a.kind, a.target.name, a.where.name, a.argv) for a in plan.actions] == [
        ("promote", "cpuworker", "portainer", ("docker", "node", "promote", "--", CPU_ID))]


def test_role_change_demotes(config):
    def cpu_is_manager(by_name):
        by_name["cpuworker"]["Spec"]["Role"] = "manager"
        by_name["cpuworker"]["ManagerStatus"] = {"Reachability": "reachable"}  # as a real manager has
    f = facts(config, infos(CONVERGED), nodes(cpu_is_manager))
    plan = plan_phases(config, f, Options(), ["join"])
    assert [(a.kind, a.target.name, a.argv) for a in plan.actions] == [
        ("demote", "cpuworker", ("docker", "node", "demote", "--", CPU_ID))]


def test_never_demotes_the_last_manager(tmp_path):
    # Config swaps roles, but the VM to be promoted is unreachable: portainer stays manager.
    def swap(doc):
        doc["vms"][1]["swarm_role"] = "worker"
        doc["vms"][3]["swarm_role"] = "manager"
    config = lab_config(tmp_path, swap)
    f = facts(config, infos(CONVERGED, cpuworker="unreachable"))
    plan = plan_phases(config, f, Options(), ["join"])
    assert not [a for a in plan.actions if a.kind == "demote"]
    assert any(b.subject.name == "portainer" and "last manager" in b.reason for b in plan.blocked)


def test_role_swap_promotes_before_demoting(tmp_path):
    def swap(doc):
        doc["vms"][1]["swarm_role"] = "worker"
        doc["vms"][3]["swarm_role"] = "manager"
    config = lab_config(tmp_path, swap)
    f = facts(config, infos(CONVERGED))
    plan = plan_phases(config, f, Options(), ["join"])
    assert [(a.kind, a.target.name) for a in plan.actions] == [("promote", "cpuworker"), ("demote", "portainer")]


def test_vmid_scope(config):
    f = facts(config, infos(FRESH))
    plan = plan_phases(config, f, Options(vmids=frozenset([1003])), ["init", "join", "labels"])
    assert kinds(plan) == [("init", "portainer"), ("join", "cpuworker"), ("labels", "cpuworker")]


def test_parse_services_groups_by_longest_stack_prefix():
    from phoenix_tasks.cluster.status import parse_services
    from swarm_recorded import DATA
    stacks = parse_services((DATA / "services_two_stacks.txt").read_text())
    got = {s.name: [(x.name, x.running, x.desired) for x in s.services] for s in stacks}
    assert got == {
        "dev1_qdrant": [("dev1_qdrant_inference", 0, 1), ("dev1_qdrant_qdrant", 1, 2)],
        "dev1_qdrant_service": [("dev1_qdrant_service_inference", 1, 1), ("dev1_qdrant_service_qdrant", 2, 2)],
    }
