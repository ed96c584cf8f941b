"""Node maintenance against a real 4-VM lab: drain, undrain, pinned availability, prune
of a VM taken out of the config and of a node left behind by a rejoin, and the quorum
guard with 3 managers.

State is verified through a second channel: the docker SDK on each VM's own engine
socket.  The tests build on each other in file order (one swarm per module).  The lab
has its own subnet and bridge, and is torn down at the end whatever happened.
"""

from __future__ import annotations

import json
import os
import signal

import pytest

from phoenix_tasks.lab import control, procs
from phoenix_tasks.tasks import maintenance as maint_tasks
from phoenix_tasks.tasks import swarm as swarm_tasks
from phoenix_tasks.tasks import sync as sync_tasks

from conftest import module_lab, task_runner, wait_until

pytestmark = pytest.mark.lab

SUBNET, BRIDGE = "198.18.68.0/24", "phxtest14"
IMAGE = "thinkheads/ai-api:1.4.0"  # a stand-in the lab's registry serves


@pytest.fixture(scope="module")
def mlab(tmp_path_factory):
    with module_lab(tmp_path_factory.mktemp("maintlab"), SUBNET, BRIDGE, nodes=4) as lab:
        yield lab


@pytest.fixture
def run(mlab, monkeypatch, capsys):
    return task_runner(mlab.config, monkeypatch, capsys)


def vm(lab, name):
    return next(v for v in lab.vms if v.name == name)


def manager(lab):
    return lab.docker(vm(lab, "portainer"))


def node_id(lab, name) -> str:
    return lab.docker(vm(lab, name)).info()["Swarm"]["NodeID"]


def node(lab, name):
    return manager(lab).nodes.get(node_id(lab, name)).attrs


def running(lab, service: str) -> list[dict]:
    """The service's tasks that are meant to run and do run (second channel)."""
    tasks = manager(lab).services.get(service).tasks(filters={"desired-state": "running"})
    return [t for t in tasks if t["Status"]["State"] == "running"]


def config_variant(lab, tmp_path, name: str, vms=None, access=None):
    """A copy of the lab's config dir with the VM entries edited (by name: dict to merge,
    or None to drop the VM) and vm_access merged with `access`."""
    out = tmp_path / name
    out.mkdir()
    for f in lab.config.config_dir.iterdir():
        doc = json.loads(f.read_text())
        if "vms" in doc:
            entries = []
            for entry in doc["vms"]:
                change = (vms or {}).get(entry["name"], {})
                if change is not None:
                    entries.append({**entry, **change})
            doc["vms"] = entries
        if "vm_access" in doc and access:
            doc["vm_access"].update(access)
        (out / f.name).write_text(json.dumps(doc))
    return out


def mutating(t) -> list[str]:
    return [r.display for r in t.mutating_commands]


def test_swarm_with_three_services(mlab, run):
    for task in (swarm_tasks.init, swarm_tasks.join, swarm_tasks.label):
        code, out, _ = run(task)
        assert code == 0, out
    import docker
    m = manager(mlab)
    dnsrr = docker.types.EndpointSpec(mode="dnsrr")
    m.services.create(IMAGE, name="web", mode=docker.types.ServiceMode("replicated", 2),
                      constraints=["node.role==worker"], endpoint_spec=dnsrr)
    m.services.create(IMAGE, name="gpu", constraints=["node.labels.gpu==true"], endpoint_spec=dnsrr)
    m.services.create(IMAGE, name="agent", mode=docker.types.ServiceMode("global"), endpoint_spec=dnsrr)
    wait_until("web 2/2, gpu 1/1, agent 4/4", lambda: len(running(mlab, "web")) == 2
               and len(running(mlab, "gpu")) == 1 and len(running(mlab, "agent")) == 4, 90)


def test_drain_a_worker_moves_its_tasks_before_it_returns(mlab, run):
    # A worker (not the gpu one) that runs a web task.
    by_id = {node_id(mlab, v.name): v for v in mlab.vms}
    on = [by_id[t["NodeID"]] for t in running(mlab, "web")]
    target = next(v for v in on if v.name != "drphoenix")
    code, out, t = run(maint_tasks.drain, vmid=str(target.vmid), dry_run=True)
    assert code == 0, out
    assert f"drain {target.name}: 1 change" in out and "dry run: nothing was changed" in out
    assert "global service agent: its task on" in out  # named, not refused
    assert mutating(t) == []
    assert node(mlab, target.name)["Spec"]["Availability"] == "active"

    code, out, t = run(maint_tasks.drain, vmid=str(target.vmid))
    assert code == 0, out
    assert mutating(t) == [f"docker node update --availability drain -- {node_id(mlab, target.name)}"]
    assert " -> " in out and "(running)" in out and "converged: facts read again, nothing pending" in out
    # Right after the command returned: nothing runs there, and web still has its 2 replicas elsewhere.
    gone = node_id(mlab, target.name)
    web = running(mlab, "web")
    assert len(web) == 2 and all(t["NodeID"] != gone for t in web)
    assert all(t["NodeID"] != gone for svc in ("web", "gpu", "agent") for t in running(mlab, svc))
    assert node(mlab, target.name)["Spec"]["Availability"] == "drain"

    code, out, t = run(maint_tasks.drain, vmid=str(target.vmid))
    assert code == 0 and f"drain {target.name}: no changes" in out and mutating(t) == []
    assert f"nothing runs on {target.name}" in out
    code, out, t = run(maint_tasks.drain, vmid=str(target.vmid), dry_run=True)
    assert code == 0 and "no changes" in out and mutating(t) == []

    code, out, t = run(maint_tasks.undrain, vmid=str(target.vmid))
    assert code == 0 and "do not move back by themselves" in out, out
    assert node(mlab, target.name)["Spec"]["Availability"] == "active"
    code, out, t = run(maint_tasks.undrain, vmid=str(target.vmid))
    assert code == 0 and "no changes" in out and mutating(t) == []
    wait_until("agent back on the undrained node", lambda: len(running(mlab, "agent")) == 4, 60)


def test_draining_the_only_node_a_constraint_allows_is_refused_without_force(mlab, run):
    gpu = vm(mlab, "drphoenix")
    code, out, t = run(maint_tasks.drain, vmid=str(gpu.vmid))
    assert code == 1
    assert "service gpu: only drphoenix satisfies 'node.labels.gpu==true'" in out and "--force" in out
    assert "refused: nothing was changed" in out
    assert mutating(t) == []
    assert node(mlab, "drphoenix")["Spec"]["Availability"] == "active"
    assert len(running(mlab, "gpu")) == 1

    code, out, t = run(maint_tasks.drain, vmid=str(gpu.vmid), force=True)
    assert code == 0, out  # the wait does not wait for gpu: it has nowhere to go
    assert "--force: service gpu" in out
    assert node(mlab, "drphoenix")["Spec"]["Availability"] == "drain"
    assert running(mlab, "gpu") == []
    code, out, _ = run(maint_tasks.undrain, vmid=str(gpu.vmid))
    assert code == 0, out
    wait_until("gpu back on drphoenix", lambda: len(running(mlab, "gpu")) == 1 and len(running(mlab, "agent")) == 4, 60)


def test_a_pinned_availability_is_converged_by_swarm_label(mlab, run, tmp_path, monkeypatch):
    pinned = config_variant(mlab, tmp_path, "pinned", {"cpuworker2": {"availability": "pause"}})
    monkeypatch.setenv("PHOENIX_CONFIG_DIR", str(pinned))
    code, out, t = run(swarm_tasks.label, dry_run=True)
    assert code == 0 and "availability pause (was active)" in out and mutating(t) == []
    code, out, t = run(swarm_tasks.label)
    assert code == 0, out
    assert mutating(t) == [f"docker node update --availability pause -- {node_id(mlab, 'cpuworker2')}"]
    assert node(mlab, "cpuworker2")["Spec"]["Availability"] == "pause"
    code, out, t = run(swarm_tasks.label)
    assert code == 0 and "no changes" in out and mutating(t) == []
    assert run(swarm_tasks.status)[0] == 0  # a pinned pause is healthy
    # Unpinned again: the node keeps what it has until someone changes it.
    monkeypatch.setenv("PHOENIX_CONFIG_DIR", str(mlab.config.config_dir))
    code, out, t = run(swarm_tasks.label)
    assert code == 0 and "no changes" in out and mutating(t) == []
    assert run(maint_tasks.undrain, vmid=str(vm(mlab, "cpuworker2").vmid))[0] == 0


def test_a_vm_removed_from_the_config_is_pruned_only_with_the_flag(mlab, run, tmp_path, monkeypatch):
    cpu2 = vm(mlab, "cpuworker2")
    gone = node_id(mlab, "cpuworker2")
    without = config_variant(mlab, tmp_path, "without", {"cpuworker2": None})
    monkeypatch.setenv("PHOENIX_CONFIG_DIR", str(without))
    # Without the flag: named in the plan, untouched.
    code, out, t = run(swarm_tasks.join)
    assert code == 0, out
    assert f"not in config: node cpuworker2 {gone[:12]} (worker, ready, active)" in out and "--prune" in out
    assert mutating(t) == []
    assert manager(mlab).nodes.get(gone).attrs["Spec"]["Availability"] == "active"

    code, out, t = run(maint_tasks.prune, dry_run=True)
    assert code == 1 and "still up (ready)" in out and mutating(t) == []  # blocked: shown, exit 1
    code, out, t = run(maint_tasks.prune)
    assert code == 1, out  # drained, but its entry stays until it is down
    assert mutating(t) == [f"docker node update --availability drain -- {gone}"]
    assert "still up (ready)" in out and "docker swarm leave" in out
    assert manager(mlab).nodes.get(gone).attrs["Spec"]["Availability"] == "drain"
    assert all(t["NodeID"] != gone for svc in ("web", "agent") for t in running(mlab, svc))
    assert len(running(mlab, "web")) == 2

    # The machine leaves (as one being decommissioned would); once it is down, prune removes it.
    mlab.docker(cpu2).swarm.leave()
    wait_until("cpuworker2 down", lambda: manager(mlab).nodes.get(gone).attrs["Status"]["State"] == "down", 60)
    code, out, t = run(maint_tasks.prune)
    assert code == 0, out
    assert mutating(t) == [f"docker node rm -- {gone}"]
    assert gone not in {n.id for n in manager(mlab).nodes.list()}
    code, out, t = run(maint_tasks.prune)
    assert code == 0 and "prune: no changes" in out and mutating(t) == []


def test_sync_all_prune_removes_the_node_a_rejoin_left_behind(mlab, run, tmp_path, monkeypatch):
    without = config_variant(mlab, tmp_path, "without", {"cpuworker2": None})
    monkeypatch.setenv("PHOENIX_CONFIG_DIR", str(without))
    cpu = vm(mlab, "cpuworker")
    old = node_id(mlab, "cpuworker")
    mlab.docker(cpu).swarm.leave()
    code, out, _ = run(swarm_tasks.join)
    assert code == 0, out
    assert node_id(mlab, "cpuworker") != old
    wait_until("the old entry down", lambda: manager(mlab).nodes.get(old).attrs["Status"]["State"] == "down", 60)
    code, out, t = run(sync_tasks.sync_all)  # without --prune: named, kept
    assert code == 0, out
    assert f"stale: node cpuworker {old[:12]} (worker, down, active)" in out
    assert old in {n.id for n in manager(mlab).nodes.list()}
    assert not [r for r in mutating(t) if "node rm" in r]

    code, out, t = run(sync_tasks.sync_all, prune=True, dry_run=True)
    assert code == 0 and "prune: 1 change" in out and mutating(t) == []
    code, out, t = run(sync_tasks.sync_all, prune=True)
    assert code == 0, out
    assert mutating(t) == [f"docker node rm -- {old}"]
    assert old not in {n.id for n in manager(mlab).nodes.list()}
    code, out, t = run(sync_tasks.sync_all, prune=True)
    assert code == 0 and "sync-all: converged (no changes)" in out and mutating(t) == []


def test_three_managers_the_quorum_guard_and_a_manager_pruned(mlab, run, tmp_path, monkeypatch):
    # portainer, drphoenix and cpuworker managers (cpuworker2 is out of the config).
    short = {"command_timeout_s": 8}  # a stopped engine answers nothing: do not wait 60 s for it
    three = config_variant(mlab, tmp_path, "three", {"cpuworker2": None, "drphoenix": {"swarm_role": "manager"},
                                                     "cpuworker": {"swarm_role": "manager"}}, short)
    monkeypatch.setenv("PHOENIX_CONFIG_DIR", str(three))
    code, out, _ = run(swarm_tasks.join)
    assert code == 0 and out.count("promote to manager") == 2, out
    code, out, _ = run(swarm_tasks.status, json=True)
    assert code == 0, out
    assert json.loads(out)["quorum"] == {"managers": 3, "reachable": 3, "needed": 2, "tolerates": 1,
                                         "has_quorum": True, "even": False}
    assert {n["Spec"]["Role"] for n in (node(mlab, h) for h in ("portainer", "drphoenix", "cpuworker"))} == {"manager"}

    # cpuworker's engine stops: demoting drphoenix now would leave 1 of 2 reachable.
    cpu_names = mlab.names.vm(vm(mlab, "cpuworker").vmid)
    engine = procs.read_pidfile(cpu_names.dockerd_pidfile)
    demote_dr = config_variant(mlab, tmp_path, "demote-dr", {"cpuworker2": None, "cpuworker": {"swarm_role": "manager"}},
                               short)
    os.kill(engine, signal.SIGSTOP)
    try:
        cpu_id = node_id_from_manager(mlab, "cpuworker")
        wait_until("cpuworker unreachable as a manager", lambda: manager(mlab).nodes.get(
            cpu_id).attrs["ManagerStatus"]["Reachability"] == "unreachable", 60)
        monkeypatch.setenv("PHOENIX_CONFIG_DIR", str(demote_dr))
        code, out, t = run(swarm_tasks.join)
        assert code == 1
        assert ("drphoenix (vmid 1002): configured as worker, but not demoted: 3 managers, 1 unreachable: demoting "
                "drphoenix leaves 1 of 2 reachable; quorum needs 2") in out
        assert mutating(t) == []
        assert node(mlab, "drphoenix")["Spec"]["Role"] == "manager"
    finally:
        os.kill(engine, signal.SIGCONT)
    wait_until("cpuworker reachable again", lambda: manager(mlab).nodes.get(
        cpu_id).attrs["ManagerStatus"]["Reachability"] == "reachable", 60)

    # cpuworker taken out of the config: prune drains and demotes it (quorum: 3 -> 2), then removes it once down.
    no_cpu = config_variant(mlab, tmp_path, "no-cpu", {"cpuworker2": None, "cpuworker": None,
                                                       "drphoenix": {"swarm_role": "manager"}}, short)
    monkeypatch.setenv("PHOENIX_CONFIG_DIR", str(no_cpu))
    code, out, t = run(maint_tasks.prune)
    assert code == 1, out  # still up
    assert mutating(t) == [f"docker node update --availability drain -- {cpu_id}", f"docker node demote -- {cpu_id}"]
    assert "after this prune 2 managers, all reachable; quorum needs 2; tolerates 0 manager failures" in out
    assert "2 managers after this prune: an even number" in out
    n = manager(mlab).nodes.get(cpu_id).attrs
    assert (n["Spec"]["Role"], n["Spec"]["Availability"]) == ("worker", "drain")
    mlab.docker(vm(mlab, "cpuworker")).swarm.leave()
    wait_until("cpuworker down", lambda: manager(mlab).nodes.get(cpu_id).attrs["Status"]["State"] == "down", 60)
    code, out, t = run(maint_tasks.prune)
    assert code == 0, out
    assert mutating(t) == [f"docker node rm -- {cpu_id}"]
    roles = {n.attrs["Description"]["Hostname"]: n.attrs["Spec"]["Role"] for n in manager(mlab).nodes.list()}
    assert roles == {"portainer": "manager", "drphoenix": "manager"}


def test_the_last_manager_is_never_demoted(mlab, run, tmp_path, monkeypatch):
    # Back to one manager (drphoenix demoted: 2 -> 1 keeps quorum).
    one = config_variant(mlab, tmp_path, "one", {"cpuworker2": None, "cpuworker": None})
    monkeypatch.setenv("PHOENIX_CONFIG_DIR", str(one))
    code, out, _ = run(swarm_tasks.join)
    assert code == 0 and "demote to worker" in out, out
    assert node(mlab, "drphoenix")["Spec"]["Role"] == "worker"
    # The config makes portainer a worker and cpuworker the manager, but cpuworker cannot be reached.
    cpu = vm(mlab, "cpuworker")
    sshd = procs.read_pidfile(mlab.names.vm(cpu.vmid).sshd_pidfile)
    os.kill(sshd, signal.SIGTERM)
    assert procs.wait_gone([sshd], 10) == []
    try:
        swap = config_variant(mlab, tmp_path, "swap", {"cpuworker2": None, "portainer": {"swarm_role": "worker"},
                                                       "cpuworker": {"swarm_role": "manager"}})
        monkeypatch.setenv("PHOENIX_CONFIG_DIR", str(swap))
        code, out, t = run(swarm_tasks.join)
        assert code == 1
        assert ("portainer (vmid 1001): configured as worker, but not demoted: portainer is the last manager: "
                "demoting it would leave the swarm without a manager") in out
        assert mutating(t) == []
        assert node(mlab, "portainer")["Spec"]["Role"] == "manager"
    finally:
        control.up(mlab.config)  # the lab repairs the VM: sshd back


def node_id_from_manager(lab, hostname: str) -> str:
    """The ready node with this hostname, as the manager lists it (its own engine may not answer)."""
    [n] = [n for n in manager(lab).nodes.list()
           if n.attrs["Description"]["Hostname"] == hostname and n.attrs["Status"]["State"] == "ready"]
    return n.id
