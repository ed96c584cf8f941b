"""Faults, from recorded facts: the manager unreachable (its workers are ours but
unverified, never foreign; every message says no manager can be reached, never "run
init"), a node whose swarm's managers are configured VMs is never advised to leave, and
an unreachable VM's node is shown as that VM's, not as "other node"."""

import pytest
from invoke import MockContext
from invoke.exceptions import Exit

from phoenix_tasks.swarm.plan import FOREIGN, UNVERIFIED, Options, classify, plan_phases
from phoenix_tasks.cluster.status import build_status
from phoenix_tasks.tasks import swarm as swarm_tasks

from swarm_recorded import CONVERGED, CPU_ID, converged_outputs, facts, infos, lab_config
from test_swarm_tasks import wired  # noqa: F401 (a fixture)

MANAGER_DOWN = "no manager of the swarm can be reached (portainer (vmid 1001): unreachable: "


@pytest.fixture
def config(tmp_path):
    return lab_config(tmp_path)


def test_manager_unreachable_workers_are_ours_unverified_never_foreign(config):
    f = facts(config, infos(CONVERGED, portainer="unreachable"))
    classes = classify(config, f)
    assert {c.vm.name: c.kind for c in classes.values()} == {
        "portainer": "unreachable", "drphoenix": UNVERIFIED, "cpuworker": UNVERIFIED}
    assert "portainer (vmid 1001)" in classes[1002].detail


def test_manager_unreachable_plans_nothing_and_never_advises_init_or_leave(config):
    f = facts(config, infos(CONVERGED, portainer="unreachable"))
    plan = plan_phases(config, f, Options())
    assert not plan.actions
    reasons = {b.subject.name: b.reason for b in plan.blocked}
    text = "\n".join(f"{b.subject}: {b.reason}" for b in plan.blocked)
    assert "init" not in text.replace("initialised", "") and "leave" not in text
    assert MANAGER_DOWN in reasons["drphoenix"] and "labels" in reasons["drphoenix"]
    labels_only = plan_phases(config, f, Options(), ["labels"])
    assert all(MANAGER_DOWN in b.reason or b.reason.startswith("unreachable") for b in labels_only.blocked)
    assert "run `inv swarm.init`" not in "\n".join(b.reason for b in labels_only.blocked)


def test_worker_whose_manager_is_reachable_but_elsewhere_is_still_foreign(config):
    # The manager answers, left its swarm (inactive): the worker's swarm is not ours now.
    f = facts(config, infos(CONVERGED, portainer="info_inactive.json"))
    assert classify(config, f)[1003].kind == FOREIGN


def test_manager_just_initialised_by_another_run_is_never_advised_to_leave(config):
    # Its engine says manager, but no node list was read (the other run's init is seconds old).
    f = facts(config, infos(CONVERGED, drphoenix="info_inactive.json", cpuworker="info_inactive.json"))
    f = type(f)(f.engines)  # no node list, no control
    classes = classify(config, f)
    assert classes[1001].kind == UNVERIFIED
    plan = plan_phases(config, f, Options(force_rejoin=True))
    assert not [a for a in plan.actions if a.kind in ("leave", "init")]
    [manager] = [b for b in plan.blocked if b.subject.name == "portainer"]
    assert "leave" not in manager.reason and "not verified" in manager.reason


def test_status_with_manager_unreachable_names_it_and_no_worker_foreign(config):
    f = facts(config, infos(CONVERGED, portainer="unreachable"))
    st = build_status(config, f, [])
    assert {n.name: n.state for n in st.nodes} == {
        "portainer": "unreachable", "drphoenix": UNVERIFIED, "cpuworker": UNVERIFIED}
    assert any(p.startswith(MANAGER_DOWN) for p in st.problems) and st.degraded


def test_status_attributes_an_unreachable_vms_node_to_it(config):
    f = facts(config, infos(CONVERGED, cpuworker="unreachable"))
    st = build_status(config, f, [])
    assert st.other_nodes == []
    [cpu] = [n for n in st.nodes if n.name == "cpuworker"]
    assert (cpu.state, cpu.node_id, cpu.node_status, cpu.reachable) == ("unreachable", CPU_ID, "ready", False)
    assert cpu.detail.startswith("cpuworker (vmid 1003): cannot reach") and not cpu.healthy


def test_label_and_tokens_tasks_say_no_manager_reachable(wired, capsys):  # noqa: F811
    outputs = converged_outputs()
    outputs["portainer"] = "unreachable"
    wired(outputs)
    with pytest.raises(Exit):
        swarm_tasks.label(MockContext())
    said = capsys.readouterr()
    text = said.out + said.err
    assert "no manager of the swarm can be reached (portainer (vmid 1001)" in text
    assert "swarm.init" not in text and "foreign" not in text
    with pytest.raises(Exit) as exc:
        swarm_tasks.tokens(MockContext())
    assert str(exc.value.message).startswith(MANAGER_DOWN) and "init" not in str(exc.value.message)
    with pytest.raises(Exit):
        swarm_tasks.status(MockContext())
    text = capsys.readouterr().out
    assert "foreign" not in text and "member?" in text and MANAGER_DOWN in text.replace("\n", " ")

