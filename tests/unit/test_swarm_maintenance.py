"""Drain, undrain, prune and pinned availability, from recorded facts (tests/data/swarm/maint):
exact argv, the refusals, the drain's wait judged from recorded task lists, and nothing
pruned without the flag."""

import json

import pytest

from phoenix_tasks.core.plan import Blocked
from phoenix_tasks.swarm import commands, unclaimed
from phoenix_tasks.cluster import maintenance
from phoenix_tasks.cluster.maintenance import (
    NodeRef, judge_drain, plan_drain, plan_prune, plan_undrain, stranded_services, wait_drained,
)
from phoenix_tasks.swarm.plan import Options, plan_phases
from phoenix_tasks.core.transport import shell_command

from maint_recorded import CPU, CPU2, CPU_NEW, DRPHOENIX, PORTAINER, config, facts, infos, nodes, progress


@pytest.fixture
def cfg(tmp_path):
    return config(tmp_path)


def hostnames(f):
    return {n.id: n.hostname for n in f.nodes.values()}


def summary(plan):
    return [(a.kind, str(a.subject), a.argv) for a in plan.actions]


# -- commands ---------------------------------------------------------------------------

def test_commands():
    assert commands.node_availability("abc", "drain") == ["docker", "node", "update", "--availability", "drain", "--", "abc"]
    assert commands.node_availability("abc", "active") == ["docker", "node", "update", "--availability", "active", "--", "abc"]
    assert commands.node_availability("abc", "pause") == ["docker", "node", "update", "--availability", "pause", "--", "abc"]
    assert commands.node_rm("abc") == ["docker", "node", "rm", "--", "abc"]
    assert commands.node_rm("abc", force=True) == ["docker", "node", "rm", "--force", "--", "abc"]
    assert commands.tasks() == ["sh", "-c", commands.TASKS_SCRIPT]
    with pytest.raises(ValueError):
        commands.node_availability("abc", "drain; reboot")


def test_a_hostile_node_id_stays_one_argument_after_the_double_dash():
    hostile = "dev1; rm -rf /"
    assert shell_command(commands.node_rm(hostile)) == "docker node rm -- 'dev1; rm -rf /'"
    assert shell_command(commands.node_availability(hostile, "drain")) == \
        "docker node update --availability drain -- 'dev1; rm -rf /'"


# -- drain: what it would strand --------------------------------------------------------------

def test_draining_the_only_gpu_node_is_refused_naming_the_service(cfg):
    f = facts(cfg)
    plan = plan_drain(cfg, f, cfg.vm_by_id(1002), progress("tasks_before_drain.txt"))
    assert plan.actions == []
    [blocked] = plan.blocked
    assert blocked.subject.name == "drphoenix"
    assert blocked.reason == ("draining it leaves services nowhere to run: service gpu: only drphoenix satisfies "
                              "'node.labels.gpu==true'. Run with --force to drain anyway (they stop until a node "
                              "can run them)")
    # The global agent is named, not refused: it keeps running on the other nodes.
    assert plan.warnings == ["global service agent: its task on drphoenix stops and is not rescheduled (global "
                             "services run one task per eligible node); it keeps running on 3 other node(s)"]


def test_force_drains_anyway_and_says_what_stops(cfg):
    plan = plan_drain(cfg, facts(cfg), cfg.vm_by_id(1002), progress("tasks_before_drain.txt"), force=True)
    assert plan.blocked == []
    assert summary(plan) == [("drain", "drphoenix (vmid 1002)",
                              ("docker", "node", "update", "--availability", "drain", "--", DRPHOENIX))]
    assert plan.actions[0].where.name == "portainer"
    assert any(w.startswith("--force: service gpu: only drphoenix satisfies") for w in plan.warnings)


def test_a_worker_whose_services_fit_elsewhere_is_drained(cfg):
    plan = plan_drain(cfg, facts(cfg), cfg.vm_by_id(1003), progress("tasks_before_drain.txt"))
    assert plan.blocked == []
    assert summary(plan) == [("drain", "cpuworker (vmid 1003)",
                              ("docker", "node", "update", "--availability", "drain", "--", CPU))]


def test_a_drained_node_plans_nothing(cfg):
    plan = plan_drain(cfg, facts(cfg, node_list="nodes_drained.json"), cfg.vm_by_id(1003), None)
    assert plan.empty and not plan.blocked


def test_a_manager_drained_stays_a_manager(cfg):
    plan = plan_drain(cfg, facts(cfg), cfg.vm_by_id(1001), progress("tasks_before_drain.txt"))
    assert [a.argv for a in plan.actions] == [("docker", "node", "update", "--availability", "drain", "--", PORTAINER)]
    assert plan.warnings[0] == ("portainer is a manager: drained, it stays a manager (a Raft member: 1 manager, "
                                "reachable; quorum needs 1; tolerates 0 manager failures) and only loses its tasks")


def test_a_node_not_in_the_swarm_is_an_error(cfg):
    f = facts(cfg, infos(cpuworker="unreachable"))
    with pytest.raises(maintenance.MaintenanceError, match=r"cpuworker \(vmid 1003\) is not a node of the swarm \(unreachable"):
        plan_drain(cfg, f, cfg.vm_by_id(1003), None)


def test_a_pinned_availability_is_named(tmp_path):
    def pin(by_name, doc):
        by_name["cpuworker"]["availability"] = "active"
    c = config(tmp_path, edit=pin)
    plan = plan_drain(c, facts(c), c.vm_by_id(1003), progress("tasks_before_drain.txt"))
    assert plan.warnings[0] == ("the config pins availability active for cpuworker: `sync all` and `swarm label` "
                                "set it back")


def test_no_other_active_node_for_a_replicated_service(cfg):
    # Every worker but cpuworker is drained: web (node.role==worker) has nowhere to go.
    def drained(by_key):
        for key, n in by_key.items():
            if key[0] in ("drphoenix", "cpuworker2"):
                n["Spec"]["Availability"] = "drain"
    f = facts(cfg, node_list=nodes(edit=drained))
    stranded, _ = stranded_services(f.nodes[CPU], f.nodes, progress("tasks_before_drain.txt"))
    assert [str(s) for s in stranded] == [
        "service web: the other nodes that satisfy 'node.role==worker' are not ready and active: "
        "cpuworker2 (ready, drain), drphoenix (ready, drain)"]


def test_max_replicas_per_node_the_others_cannot_hold(cfg):
    p = progress("tasks_before_drain.txt")
    web = p.services["web"]
    web.task_template.setdefault("Placement", {})["MaxReplicas"] = 1
    f = facts(cfg)
    only = {k: v for k, v in f.nodes.items() if k != DRPHOENIX}  # cpuworker2 is the one other worker
    stranded, _ = stranded_services(f.nodes[CPU], only, p)
    assert [str(s) for s in stranded] == [
        "service web: at most 1 replica(s) per node: the 1 other node(s) that can run it hold 1 of its 2 "
        "replicas (need 2 nodes)"]


# -- drain: the wait, judged from recorded task lists -------------------------------------------

def test_the_wait_judged_from_recorded_task_lists(cfg):
    f = facts(cfg)
    since = progress("tasks_before_drain.txt").now
    states = {name: judge_drain(CPU, progress(name), hostnames(f), since=since)
              for name in ("tasks_before_drain.txt", "tasks_drain_started.txt", "tasks_drain_starting.txt",
                           "tasks_drained.txt")}
    before = states["tasks_before_drain.txt"]
    assert not before.done and before.moves == ()
    assert [(svc, t.state) for svc, t in before.running] == [("agent", "running"), ("web", "running")]
    started = states["tasks_drain_started.txt"]
    assert not started.done
    assert [m.line() for m in started.moves] == ["agent: global: its task on cpuworker running (not rescheduled)",
                                                 "web.2: cpuworker -> drphoenix (assigned)"]
    assert started.still() == ("still on cpuworker: agent task l4yi2cvtke8f (running), web task kupzckjfxt02 "
                               "(running); not yet running elsewhere: web.2: cpuworker -> drphoenix (assigned)")
    starting = states["tasks_drain_starting.txt"]
    assert not starting.done and starting.running == ()
    assert starting.still() == "not yet running elsewhere: web.2: cpuworker -> drphoenix (starting)"
    drained = states["tasks_drained.txt"]
    assert drained.done
    assert [m.line() for m in drained.moves] == ["agent: global: its task on cpuworker shutdown (not rescheduled)",
                                                 "web.2: cpuworker -> drphoenix (running)"]


def test_without_a_reference_only_live_tasks_count(cfg):
    # A node drained earlier: its old tasks are history, not moves of this run.
    state = judge_drain(CPU, progress("tasks_drained.txt"), hostnames(facts(cfg)), since=None)
    assert state.done and state.moves == ()


def test_a_replacement_with_nowhere_to_go_is_waited_for_unless_skipped(cfg):
    p = progress("tasks_drained.txt")
    repl = next(t for t in p.tasks if t.node_id == DRPHOENIX and t.slot == 2 and t.desired_state == "running")
    pending = repl.__class__(**{**repl.__dict__, "node_id": "", "state": "pending",
                                "error": "no suitable node (scheduling constraints not satisfied on 4 nodes)"})
    p = p.__class__(p.services, tuple(pending if t is repl else t for t in p.tasks), p.now)
    since = progress("tasks_before_drain.txt").now
    state = judge_drain(CPU, p, hostnames(facts(cfg)), since=since)
    assert not state.done
    assert state.still() == ("not yet running elsewhere: web.2: cpuworker -> ? (pending: no suitable node "
                             "(scheduling constraints not satisfied on 4 nodes))")
    assert judge_drain(CPU, p, hostnames(facts(cfg)), since=since, skip=frozenset({"web"})).done


class Clock:
    def __init__(self):
        self.now = 0.0

    def monotonic(self):
        return self.now

    def sleep(self, seconds):
        self.now += seconds


def test_wait_drained_polls_until_done_and_reports_each_move_once(cfg):
    reads = iter(["tasks_drain_started.txt", "tasks_drain_starting.txt", "tasks_drained.txt"])
    lines, clock = [], Clock()
    state = wait_drained(lambda: progress(next(reads)), CPU, hostnames(facts(cfg)),
                         since=progress("tasks_before_drain.txt").now, timeout_s=60,
                         report=maintenance.line_reporter(lines.append), clock=clock.monotonic, sleep=clock.sleep)
    assert state.done and clock.now == 2.0
    assert lines == ["  agent: global: its task on cpuworker running (not rescheduled)",
                     "  web.2: cpuworker -> drphoenix (assigned)",
                     "  agent: global: its task on cpuworker shutdown (not rescheduled)",
                     "  web.2: cpuworker -> drphoenix (starting)",
                     "  web.2: cpuworker -> drphoenix (running)"]


def test_wait_drained_stops_at_the_deadline(cfg):
    clock = Clock()
    state = wait_drained(lambda: progress("tasks_drain_started.txt"), CPU, hostnames(facts(cfg)),
                         since=progress("tasks_before_drain.txt").now, timeout_s=5, clock=clock.monotonic,
                         sleep=clock.sleep)
    assert not state.done and clock.now == 5.0
    assert "still on cpuworker: agent task l4yi2cvtke8f (running)" in state.still()


# -- undrain ------------------------------------------------------------------------------------

def test_undrain(cfg):
    plan = plan_undrain(cfg, facts(cfg, node_list="nodes_drained.json"), cfg.vm_by_id(1003))
    assert summary(plan) == [("undrain", "cpuworker (vmid 1003)",
                              ("docker", "node", "update", "--availability", "active", "--", CPU))]
    assert "do not move back by themselves" in plan.actions[0].summary
    assert plan_undrain(cfg, facts(cfg), cfg.vm_by_id(1003)).empty


# -- prune: nodes no configured VM claims ------------------------------------------------------------

def test_a_node_not_in_config_is_only_a_warning_without_prune(tmp_path):
    three = config(tmp_path, nodes=3)  # cpuworker2 (vmid 1004) taken out of the config
    f = facts(three)
    plan = plan_phases(three, f, Options())
    assert plan.empty and not plan.blocked
    assert plan.warnings == [
        f"not in config: node cpuworker2 {CPU2[:12]} (worker, ready, active) (no configured swarm VM has this "
        "hostname) (run with --prune to drain and remove it: sync all --prune, or swarm prune)"]
    assert plan_phases(three, f, Options(prune=True)).warnings == []


def test_prune_drains_a_node_not_in_config_and_waits_for_it_to_go_down(tmp_path):
    three = config(tmp_path, nodes=3)
    plan = plan_prune(three, facts(three), progress("tasks_before_drain.txt"))
    ref = NodeRef(CPU2, "cpuworker2")
    assert summary(plan) == [("drain", "node cpuworker2 (175axxtoqigg)",
                              ("docker", "node", "update", "--availability", "drain", "--", CPU2))]
    assert plan.actions[0].where.name == "portainer"
    [blocked] = plan.blocked
    assert blocked.subject == ref
    assert blocked.reason.startswith("not in config, and still up (ready): Phoenix does not connect to machines "
                                     "outside the config to make them leave.")
    assert "or prune with --force to remove its entry now" in blocked.reason


def test_prune_with_force_removes_a_node_that_is_still_up(tmp_path):
    three = config(tmp_path, nodes=3)
    plan = plan_prune(three, facts(three), progress("tasks_before_drain.txt"), force=True)
    assert [a.argv for a in plan.actions] == [
        ("docker", "node", "update", "--availability", "drain", "--", CPU2),
        ("docker", "node", "rm", "--force", "--", CPU2)]
    assert plan.blocked == []


def test_prune_removes_a_down_node_not_in_config_without_draining(tmp_path):
    three = config(tmp_path, nodes=3)

    def down(by_key):
        by_key[("cpuworker2", CPU2[:6])]["Status"]["State"] = "down"
    plan = plan_prune(three, facts(three, node_list=nodes(edit=down)))
    assert summary(plan) == [("remove", "node cpuworker2 (175axxtoqigg)", ("docker", "node", "rm", "--", CPU2))]
    assert plan.blocked == []


def test_a_stale_node_left_by_a_rejoin_is_removed_only_with_prune(cfg):
    f = facts(cfg, infos(cpuworker="info_1003_rejoined.json"), "nodes_stale_rejoin.json")
    assert [(u.node.id, u.kind) for u in unclaimed.find(cfg, f)] == [(CPU, unclaimed.STALE)]
    plan = plan_phases(cfg, f, Options(), ["join"])  # (recorded before the rejoined node got its labels)
    assert plan.empty
    assert plan.warnings == [
        f"stale: node cpuworker {CPU[:12]} (worker, down, active) (left behind by a rejoin: cpuworker is now node "
        f"{CPU_NEW[:12]}) (run with --prune to remove it: sync all --prune, or swarm prune)"]
    prune = plan_prune(cfg, f)
    assert summary(prune) == [("remove", f"node cpuworker ({CPU[:12]})", ("docker", "node", "rm", "--", CPU))]
    assert prune.warnings == [] and prune.blocked == []


def test_an_unclaimed_node_with_a_configured_hostname_is_left_alone(cfg):
    # cpuworker's engine cannot be read: its new node is nobody's for sure; the old one is still stale.
    f = facts(cfg, infos(cpuworker="unreachable"), "nodes_stale_rejoin.json")
    found = {u.node.id: u for u in unclaimed.find(cfg, f)}
    assert found[CPU].kind == unclaimed.STALE
    assert found[CPU_NEW].kind == unclaimed.UNDECIDED
    assert found[CPU_NEW].detail == ("hostname of cpuworker (vmid 1003), whose engine could not be read "
                                     "(unreachable): left alone")
    plan = plan_prune(cfg, f)
    assert [a.argv for a in plan.actions] == [("docker", "node", "rm", "--", CPU)]
    assert plan.warnings == [f"unclaimed: node cpuworker {CPU_NEW[:12]} (worker, ready, active): hostname of "
                             "cpuworker (vmid 1003), whose engine could not be read (unreachable): left alone"]


def test_a_down_node_whose_vm_left_is_not_stale_until_it_rejoins(cfg):
    doc = infos()["cpuworker"]
    doc["Swarm"].update(LocalNodeState="inactive", NodeID="", ControlAvailable=False)
    node_list = [n for n in nodes("nodes_stale_rejoin.json") if n["ID"] != CPU_NEW]
    f = facts(cfg, {**infos(), "cpuworker": doc}, node_list)
    [u] = unclaimed.find(cfg, f)
    assert u.kind == unclaimed.UNDECIDED and "not in the swarm now (inactive)" in u.detail
    assert plan_prune(cfg, f).empty


# -- managers: prune and demote under the quorum guard ---------------------------------------------

def managers_config(tmp_path, drop_cpuworker=False, drphoenix="manager", cpuworker="manager"):
    def roles(by_name, doc):
        by_name["drphoenix"]["swarm_role"] = drphoenix
        by_name["cpuworker"]["swarm_role"] = cpuworker
        if drop_cpuworker:
            doc["vms"] = [vm for vm in doc["vms"] if vm["name"] != "cpuworker"]
    return config(tmp_path, edit=roles)


MANAGER_INFOS = dict(drphoenix="info_1002_manager.json", cpuworker="info_1003_manager.json")


def test_three_managers_converged(tmp_path):
    c = managers_config(tmp_path)
    f = facts(c, infos(**MANAGER_INFOS), "nodes_three_managers.json")
    plan = plan_phases(c, f, Options(prune=True), ["join"])
    assert plan.empty and not plan.blocked


def test_a_demote_that_leaves_an_even_count_is_warned(tmp_path):
    c = managers_config(tmp_path, drphoenix="worker")
    f = facts(c, infos(**MANAGER_INFOS), "nodes_three_managers.json")
    plan = plan_phases(c, f, Options(prune=True), ["join"])
    assert summary(plan) == [("demote", "drphoenix (vmid 1002)", ("docker", "node", "demote", "--", DRPHOENIX))]
    assert plan.warnings == ["2 managers after this plan: an even number tolerates no more manager failures than 1 "
                             "(0); run an odd number of managers"]


def test_a_demote_that_breaks_quorum_is_refused_with_numbers(tmp_path):
    c = managers_config(tmp_path, drphoenix="worker")
    f = facts(c, infos(cpuworker="unreachable", drphoenix="info_1002_manager.json"), "nodes_manager_down.json")
    plan = plan_phases(c, f, Options(prune=True), ["join"])
    assert not [a for a in plan.actions if a.kind == "demote"]
    assert Blocked(c.vm_by_id(1002), "configured as worker, but not demoted: 3 managers, 1 unreachable: demoting "
                                     "drphoenix leaves 1 of 2 reachable; quorum needs 2") in plan.blocked


def test_prune_demotes_then_removes_a_manager_not_in_config(tmp_path):
    c = managers_config(tmp_path, drop_cpuworker=True)
    f = facts(c, infos(drphoenix="info_1002_manager.json"), "nodes_three_managers.json")
    plan = plan_prune(c, f, progress("tasks_before_drain.txt"), force=True)
    # Down nodes first: the old cpuworker entry; then the live manager: drain, demote, remove.
    assert summary(plan) == [
        ("remove", f"node cpuworker ({CPU[:12]})", ("docker", "node", "rm", "--", CPU)),
        ("drain", f"node cpuworker ({CPU_NEW[:12]})", ("docker", "node", "update", "--availability", "drain", "--", CPU_NEW)),
        ("demote", f"node cpuworker ({CPU_NEW[:12]})", ("docker", "node", "demote", "--", CPU_NEW)),
        ("remove", f"node cpuworker ({CPU_NEW[:12]})", ("docker", "node", "rm", "--force", "--", CPU_NEW))]
    assert plan.warnings[-2:] == [
        "quorum: now 3 managers, all reachable; quorum needs 2; tolerates 1 manager failure; after this prune "
        "2 managers, all reachable; quorum needs 2; tolerates 0 manager failures",
        "2 managers after this prune: an even number tolerates no more manager failures than 1 (0); run an odd "
        "number of managers"]


def test_prune_removes_a_down_manager_first_and_keeps_quorum(tmp_path):
    c = managers_config(tmp_path, drop_cpuworker=True)
    f = facts(c, infos(drphoenix="info_1002_manager.json"), "nodes_manager_down.json")
    plan = plan_prune(c, f)
    assert summary(plan) == [
        ("remove", f"node cpuworker ({CPU[:12]})", ("docker", "node", "rm", "--", CPU)),
        ("demote", f"node cpuworker ({CPU_NEW[:12]})", ("docker", "node", "demote", "--", CPU_NEW)),
        ("remove", f"node cpuworker ({CPU_NEW[:12]})", ("docker", "node", "rm", "--", CPU_NEW))]
    assert plan.blocked == []


def test_prune_refuses_to_demote_when_quorum_would_break(tmp_path):
    # 3 managers; drphoenix is down (unreachable) and the cpuworker manager is not in the config.
    c = managers_config(tmp_path, drop_cpuworker=True)

    def drphoenix_down(by_key):
        n = by_key[("drphoenix", DRPHOENIX[:6])]
        n["Status"]["State"] = "down"
        n["ManagerStatus"]["Reachability"] = "unreachable"
    f = facts(c, infos(drphoenix="unreachable"), nodes("nodes_three_managers.json", edit=drphoenix_down))
    plan = plan_prune(c, f, progress("tasks_before_drain.txt"), force=True)
    ref = NodeRef(CPU_NEW, "cpuworker")
    assert Blocked(ref, "not in config: a manager, not demoted: 3 managers, 1 unreachable: demoting cpuworker "
                        "leaves 1 of 2 reachable; quorum needs 2") in plan.blocked
    assert [a.kind for a in plan.actions if a.target == ref] == ["drain"]  # drained, never removed


# -- pinned availability: converged like labels ---------------------------------------------------------

def pinned(tmp_path, value="drain", name="cpuworker"):
    def pin(by_name, doc):
        by_name[name]["availability"] = value
    return config(tmp_path, edit=pin)


def test_a_pinned_drain_is_an_action_of_the_labels_phase(tmp_path):
    c = pinned(tmp_path)
    plan = plan_phases(c, facts(c), Options(), ["labels"])
    assert summary(plan) == [("availability", "cpuworker (vmid 1003)",
                              ("docker", "node", "update", "--availability", "drain", "--", CPU))]
    assert plan.actions[0].phase == "labels"


def test_a_pinned_availability_that_holds_plans_nothing(tmp_path):
    c = pinned(tmp_path)
    plan = plan_phases(c, facts(c, node_list="nodes_drained.json"), Options())
    assert plan.empty and not plan.blocked


def test_an_unpinned_drain_by_hand_is_left_alone(cfg):
    assert plan_phases(cfg, facts(cfg, node_list="nodes_drained.json"), Options()).empty


def test_a_joining_vm_gets_its_pin_after_it_joins(tmp_path):
    c = pinned(tmp_path, "pause")
    doc = infos()["cpuworker"]
    doc["Swarm"].update(LocalNodeState="inactive", NodeID="", ControlAvailable=False)
    plan = plan_phases(c, facts(c, {**infos(), "cpuworker": doc}, [n for n in nodes() if n["ID"] != CPU]), Options())
    assert [(a.kind, a.argv) for a in plan.actions if a.target.name == "cpuworker"] == [
        ("join", None), ("labels", None), ("availability", None)]


def test_a_converged_swarm_prunes_nothing(cfg):
    f = facts(cfg)
    assert unclaimed.find(cfg, f) == []
    plan = plan_prune(cfg, f)
    assert plan.empty and not plan.blocked and not plan.warnings


# -- status: quorum, unclaimed nodes, pinned availability -------------------------------------------

def test_status_says_how_many_manager_failures_the_cluster_tolerates(tmp_path):
    from phoenix_tasks.cluster.status import build_status
    c = managers_config(tmp_path)
    st = build_status(c, facts(c, infos(**MANAGER_INFOS), "nodes_three_managers.json"), [])
    assert st.quorum == {"managers": 3, "reachable": 3, "needed": 2, "tolerates": 1, "has_quorum": True,
                         "even": False}
    doc = json.loads(st.to_json())
    assert doc["quorum"]["tolerates"] == 1
    assert [(o["hostname"], o["kind"]) for o in doc["other_nodes"]] == [("cpuworker", "stale")]


def test_status_table_shows_quorum_and_why_a_node_is_unclaimed(tmp_path):
    from rich.console import Console
    from phoenix_tasks.show.swarm import show_status
    from phoenix_tasks.cluster.status import build_status
    c = managers_config(tmp_path, drop_cpuworker=True)
    st = build_status(c, facts(c, infos(drphoenix="info_1002_manager.json"), "nodes_manager_down.json"), [])
    console = Console(record=True, width=200, markup=False)
    show_status(console, st)
    text = console.export_text()
    assert "managers: 3 managers, 1 unreachable; quorum needs 2; tolerates 1 manager failure" in text
    assert (f"other node in the swarm, not a configured VM: cpuworker {CPU_NEW[:12]} (manager, down): "
            "not-in-config: no configured swarm VM has this hostname") in text


def test_a_pinned_drain_is_healthy_and_a_drain_by_hand_is_not(tmp_path):
    from phoenix_tasks.cluster.status import build_status
    c = pinned(tmp_path)
    f = facts(c, node_list="nodes_drained.json")
    assert not build_status(c, f, []).degraded
    cfg = config(tmp_path / "plain")
    assert build_status(cfg, facts(cfg, node_list="nodes_drained.json"), []).degraded
