"""Role changes that hold (issue 12, item 4), from recorded facts: a demoted leader's
half-second of "control, no cluster" is never foreign and is read again; a demote
waits until the manager promoted in the same run is reachable; the plan names the
join address it will really use."""

from __future__ import annotations

import json

import pytest

from phoenix_tasks.core.errors import PhoenixError
from phoenix_tasks.core.plan import Outcome, Plan
from phoenix_tasks.swarm import commands
from phoenix_tasks.swarm.apply import _run_phase, wait_until_reachable
from phoenix_tasks.swarm.facts import read_facts
from phoenix_tasks.swarm.plan import FOREIGN, MEMBER, WRONG_ROLE, Options, classify, plan_phases
from phoenix_tasks.core.transport import CommandResult

from swarm_recorded import CONVERGED, CPU_ID, FRESH, MANAGER_ID, facts, info, infos, lab_config, nodes, recorded


def demoted_leader_info() -> dict:
    """What a just-demoted leader's `docker info` says for about half a second."""
    return info("info_manager.json", ControlAvailable=True, Cluster={"ID": ""})


class Scripted:
    """A transport whose commands answer from per-(VM, argv) lists, in turn (the last
    repeated); it records every command run and every sleep."""

    def __init__(self, answers: dict):
        self.answers = {k: list(v) for k, v in answers.items()}
        self.ran: list[tuple[str, tuple, bool]] = []

    def run(self, host, argv, *, mutating, check=True, **kw):
        key = (host.name, tuple(str(a) for a in argv))
        self.ran.append((host.name, key[1], mutating))
        outs = self.answers.get(key)
        if outs is None:
            return CommandResult(host, " ".join(key[1]), 0, "", "")
        out = outs.pop(0) if len(outs) > 1 else outs[0]
        return CommandResult(host, " ".join(key[1]), 0, out, "")

    def each(self, hosts, fn, *, parallel=True):
        out = {}
        for h in hosts:
            try:
                out[h.name] = fn(h)
            except PhoenixError as exc:
                out[h.name] = exc
        return out

    def keep_secret(self, secret):
        return secret


@pytest.fixture
def config(tmp_path):
    return lab_config(tmp_path)


def swapped(tmp_path):
    def swap(doc):
        doc["vms"][1]["swarm_role"] = "worker"
        doc["vms"][3]["swarm_role"] = "manager"
    return lab_config(tmp_path, swap)


def test_a_demoted_leader_in_transition_is_ours_never_foreign(tmp_path):
    # After the swap: cpuworker is the manager (and the control), portainer was the
    # leader and was just demoted; its engine still says "control" with no cluster ID.
    config = swapped(tmp_path)
    new_manager = info("info_manager.json", NodeID=CPU_ID, NodeAddr="198.18.90.13")

    def roles(by_name):
        by_name["cpuworker"]["Spec"]["Role"] = "manager"
        by_name["portainer"]["Spec"]["Role"] = "worker"
    f = facts(config, infos(CONVERGED, portainer=demoted_leader_info(), cpuworker=new_manager), nodes(roles))
    assert f.control.name == "cpuworker"
    c = classify(config, f)[1001]
    assert c.kind != FOREIGN and c.kind in (MEMBER, WRONG_ROLE)
    plan = plan_phases(config, f, Options())
    assert not any("force-rejoin" in b.reason or "another swarm" in b.reason for b in plan.blocked)


def test_a_manager_our_managers_do_not_list_is_still_foreign(config):
    f = facts(config, infos(CONVERGED, cpuworker="info_foreign_manager.json"))
    assert classify(config, f)[1003].kind == FOREIGN


def test_read_facts_reads_an_engine_in_transition_again(config):
    info_argv = tuple(commands.facts())
    t = Scripted({
        ("portainer", info_argv): [json.dumps(recorded("info_manager.json"))],
        ("drphoenix", info_argv): [json.dumps(recorded("info_worker_gpu.json"))],
        ("cpuworker", info_argv): [json.dumps(demoted_leader_info()), json.dumps(demoted_leader_info()),
                                   json.dumps(recorded("info_worker_cpu.json"))],
        ("portainer", tuple(commands.inspect_nodes())): [json.dumps(nodes())],
    })
    slept = []
    f = read_facts(t, config, sleep=slept.append)
    assert slept == [0.5, 0.5]
    assert [name for name, argv, _ in t.ran if argv == info_argv].count("cpuworker") == 3
    assert classify(config, f)[1003].kind == MEMBER


def test_an_engine_that_stays_in_transition_is_read_for_settle_s_then_planned_from(config):
    info_argv = tuple(commands.facts())
    t = Scripted({
        ("portainer", info_argv): [json.dumps(recorded("info_manager.json"))],
        ("drphoenix", info_argv): [json.dumps(recorded("info_worker_gpu.json"))],
        ("cpuworker", info_argv): [json.dumps(demoted_leader_info())],
        ("portainer", tuple(commands.inspect_nodes())): [json.dumps(nodes())],
    })
    slept = []
    f = read_facts(t, config, settle_s=2.0, sleep=slept.append)
    assert slept == [0.5] * 4
    assert classify(config, f)[1003].kind != FOREIGN  # our manager lists it


def node_list(reachable: bool) -> str:
    def promoted(by_name):
        cpu = by_name["cpuworker"]
        cpu["Spec"]["Role"] = "manager"
        if reachable:
            cpu["ManagerStatus"] = {"Leader": False, "Reachability": "reachable", "Addr": "198.18.90.13:2377"}
        else:
            cpu.pop("ManagerStatus", None)
    return json.dumps(nodes(promoted))


def test_a_swap_demotes_only_once_the_promoted_manager_is_reachable(tmp_path):
    config = swapped(tmp_path)
    f = facts(config, infos(CONVERGED))
    plan = plan_phases(config, f, Options(), ["join"])
    inspect = tuple(commands.inspect_nodes())
    t = Scripted({("portainer", inspect): [node_list(False), node_list(False), node_list(True)]})
    outcome = Outcome(Plan())
    _run_phase(t, config, f, plan.actions, outcome)
    assert not outcome.failed
    ran = [(name, argv) for name, argv, _ in t.ran]
    promote = ("portainer", ("docker", "node", "promote", "--", CPU_ID))
    demote = ("portainer", ("docker", "node", "demote", "--", MANAGER_ID))
    assert ran[:5] == [promote, ("portainer", inspect), ("portainer", inspect), ("portainer", inspect), demote]
    # then it waits for a leader that takes writes (swarm/raft.py): node lists only
    assert ran[5:] and all(argv == inspect for _, argv in ran[5:])
    assert [a.kind for a in outcome.applied] == ["promote", "demote"]


def test_a_promoted_manager_that_never_becomes_reachable_blocks_the_demote_by_name(tmp_path):
    config = swapped(tmp_path)
    t = Scripted({("portainer", tuple(commands.inspect_nodes())): [node_list(False)]})
    now = [0.0]

    def sleep(s):
        now[0] += s
    cpu = next(vm for vm in config.vms if vm.name == "cpuworker")
    portainer = next(vm for vm in config.vms if vm.name == "portainer")
    with pytest.raises(PhoenixError) as err:
        wait_until_reachable(t, portainer, {CPU_ID: cpu}, timeout_s=3, sleep=sleep, clock=lambda: now[0])
    assert str(err.value) == ("promoted cpuworker (vmid 1003), but not a reachable manager after 3 s: "
                              "no manager is demoted until it is (quorum)")
    assert now[0] == 3.0


def test_with_interface_advertise_the_plan_names_the_address_the_join_will_use(tmp_path):
    def iface(doc):
        pass
    config = lab_config(tmp_path, iface)
    import dataclasses
    config = dataclasses.replace(config, hypervisor=dataclasses.replace(
        config.hypervisor, swarm=dataclasses.replace(config.hypervisor.swarm, advertise="interface:eth0")))
    plan = plan_phases(config, facts(config, infos(FRESH)), Options())
    join = next(a for a in plan.actions if a.kind == "join")
    assert join.summary == ("join as worker via portainer's eth0 address:2377 "
                            "(read once the swarm is initialised)")
    assert "via eth0:2377" not in " ".join(a.summary for a in plan.actions)


def test_a_just_demoted_manager_is_not_the_control_when_another_manager_answers(tmp_path):
    # portainer's engine still says "control" (cluster ID and all), but its own node
    # list already calls it a worker: the facts come from cpuworker, the real manager.
    config = swapped(tmp_path)
    info_argv, inspect = tuple(commands.facts()), tuple(commands.inspect_nodes())

    def roles_after(by_name):
        by_name["cpuworker"]["Spec"]["Role"] = "manager"
        by_name["cpuworker"]["ManagerStatus"] = {"Leader": True, "Reachability": "reachable"}
        by_name["portainer"]["Spec"]["Role"] = "worker"
        by_name["portainer"].pop("ManagerStatus", None)
    after = json.dumps(nodes(roles_after))
    t = Scripted({
        ("portainer", info_argv): [json.dumps(recorded("info_manager.json"))],
        ("drphoenix", info_argv): [json.dumps(recorded("info_worker_gpu.json"))],
        ("cpuworker", info_argv): [json.dumps(info("info_manager.json", NodeID=CPU_ID, NodeAddr="198.18.90.13"))],
        ("portainer", inspect): [after], ("cpuworker", inspect): [after],
    })
    f = read_facts(t, config, sleep=lambda s: None)
    assert f.control.name == "cpuworker"
    assert [name for name, argv, _ in t.ran if argv == inspect] == ["cpuworker"]  # configured manager first


def test_a_busy_raft_answer_is_retried_and_a_change_that_landed_is_not_sent_again(tmp_path):
    from phoenix_tasks.swarm.apply import run_role_change
    from phoenix_tasks.core.transport import RemoteCommandFailed
    config = swapped(tmp_path)
    f = facts(config, infos(CONVERGED))
    [promote, demote] = plan_phases(config, f, Options(), ["join"]).actions
    busy = "Error response from daemon: rpc error: code = DeadlineExceeded desc = context deadline exceeded"

    class Busy(Scripted):
        def __init__(self, answers, fails, message=busy):
            super().__init__(answers)
            self.fails, self.message = fails, message

        def run(self, host, argv, *, mutating, check=True, **kw):
            if mutating and self.fails:
                self.fails -= 1
                self.ran.append((host.name, tuple(argv), mutating))
                raise RemoteCommandFailed(host, " ".join(map(str, argv)), 1, self.message)
            return super().run(host, argv, mutating=mutating, check=check)
    inspect = tuple(commands.inspect_nodes())
    # busy twice, the role not changed in between: sent three times in all
    t = Busy({("portainer", inspect): [json.dumps(nodes())]}, fails=2)  # cpuworker still a worker
    slept = []
    run_role_change(t, promote, promote.argv, [f.control], sleep=slept.append)
    assert [a for _, a, m in t.ran if m] == [promote.argv] * 3 and slept == [2.0, 4.0]
    # busy once, but the demote landed (the node is a worker now): not sent again
    def demoted(by_name):
        by_name["portainer"]["Spec"]["Role"] = "worker"
    t = Busy({("portainer", inspect): [json.dumps(nodes(demoted))]}, fails=1)
    run_role_change(t, demote, demote.argv, [f.control], sleep=lambda s: None)
    assert [a for _, a, m in t.ran if m] == [demote.argv]
    # an election under way (a leader was just demoted) is busy too
    lost = ("Error response from daemon: rpc error: code = Unknown desc = raft: failed to process the request: "
            "node lost leader status")
    t = Busy({("portainer", inspect): [json.dumps(nodes())]}, fails=1, message=lost)
    run_role_change(t, promote, promote.argv, [f.control], sleep=lambda s: None)
    assert [a for _, a, m in t.ran if m] == [promote.argv] * 2
    # any other failure is final
    t = Busy({}, fails=0)
    t.run = lambda host, argv, **kw: (_ for _ in ()).throw(RemoteCommandFailed(host, "x", 1, "no such node"))
    with pytest.raises(RemoteCommandFailed):
        run_role_change(t, promote, promote.argv, [f.control], sleep=lambda s: None)
