"""Role changes on a real swarm (issue 12, item 4), verified through the docker SDK on
the VMs' own sockets: a manager swap in one `swarm.join` converges in that run (the
demote waits until the promoted manager is reachable), both ways; demoting the leader
never reports it as foreign nor advises --force-rejoin, ten times over.  Own lab:
198.18.71.0/24 on phxtest16."""

from __future__ import annotations

import json

import pytest

from phoenix_tasks.config import load_config
from phoenix_tasks.tasks import swarm as swarm_tasks

from conftest import module_lab, task_runner

pytestmark = pytest.mark.lab

SUBNET, BRIDGE = "198.18.71.0/24", "phxtest16"


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    with module_lab(tmp_path_factory.mktemp("roles"), SUBNET, BRIDGE) as running:
        yield running


def set_roles(lab, **roles):
    """Rewrite the VM config's swarm roles (by VM name)."""
    path = lab.config.vm_file
    doc = json.loads(path.read_text())
    for v in doc["vms"]:
        if v["name"] in roles:
            v["swarm_role"] = roles[v["name"]]
    path.write_text(json.dumps(doc, indent=2))
    return load_config(lab.config.config_dir, lab.config.stacks_dir)


def roles(lab):
    """{VM name: (role, manager reachability)} from the swarm itself (second channel)."""
    manager = next(c for c in (lab.docker(v) for v in lab.vms) if c.info()["Swarm"]["ControlAvailable"])
    out = {}
    for v in lab.vms:
        node = manager.nodes.get(lab.docker(v).info()["Swarm"]["NodeID"]).attrs
        out[v.name] = (node["Spec"]["Role"], (node.get("ManagerStatus") or {}).get("Reachability"))
    return out


def leader(lab):
    for v in lab.vms:
        info = lab.docker(v).info()["Swarm"]
        if info["ControlAvailable"]:
            node = lab.docker(v).nodes.get(info["NodeID"]).attrs
            if (node.get("ManagerStatus") or {}).get("Leader"):
                return v.name
    return None


def converge(lab, monkeypatch, capsys, *tasks):
    run = task_runner(lab.config, monkeypatch, capsys)
    outs = []
    for task in tasks:
        code, out, _ = run(task)
        if code != 0:
            print(out)
        assert code == 0, task
        outs.append(out)
    return "\n".join(outs)


def test_a_manager_swap_converges_in_one_run_both_ways(lab, monkeypatch, capsys):
    converge(lab, monkeypatch, capsys, swarm_tasks.init, swarm_tasks.join)
    assert roles(lab)["portainer"] == ("manager", "reachable")
    for new_manager, old_manager in (("cpuworker", "portainer"), ("portainer", "cpuworker")):
        set_roles(lab, **{new_manager: "manager", old_manager: "worker"})
        out = converge(lab, monkeypatch, capsys, swarm_tasks.join)
        assert "loss of quorum" not in out and "converged: facts read again, nothing pending" in out
        now = roles(lab)
        assert now[new_manager] == ("manager", "reachable") and now[old_manager][0] == "worker", out


def test_demoting_the_leader_is_never_called_foreign(lab, monkeypatch, capsys):
    set_roles(lab, portainer="manager", drphoenix="manager", cpuworker="worker")
    converge(lab, monkeypatch, capsys, swarm_tasks.join)
    for i in range(10):
        first = leader(lab)
        assert first in ("portainer", "drphoenix"), roles(lab)
        other = "drphoenix" if first == "portainer" else "portainer"
        set_roles(lab, **{first: "worker", other: "manager"})
        out = converge(lab, monkeypatch, capsys, swarm_tasks.join)  # demotes the leader
        for words in ("another swarm", "force-rejoin", "foreign"):
            assert words not in out, (i, out)
        assert roles(lab)[first][0] == "worker"
        set_roles(lab, **{first: "manager"})
        out = converge(lab, monkeypatch, capsys, swarm_tasks.join, swarm_tasks.status)
        assert "foreign" not in out and roles(lab)[first] == ("manager", "reachable"), (i, out)
