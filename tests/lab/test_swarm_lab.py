"""Swarm core against a real lab: real sshd, real dockerd, real swarm.

Every operation runs as the quartet dry-run -> apply -> apply again (no changes, no
mutating command) -> dry-run (no changes).  State is verified through a second
channel: the docker SDK on each VM's own engine socket, never through Phoenix.
The tests in this module build on each other in file order (one swarm per module).
"""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import time

import pytest

from phoenix_tasks.lab import control, procs
from phoenix_tasks.tasks import swarm as swarm_tasks
from phoenix_tasks.tasks import sync as sync_tasks

from conftest import module_lab, task_runner

pytestmark = pytest.mark.lab

SUBNET, BRIDGE = "198.18.79.0/24", "phxtest2"


@pytest.fixture(scope="module")
def swarm_lab(tmp_path_factory):
    with module_lab(tmp_path_factory.mktemp("swarmlab"), SUBNET, BRIDGE) as lab:
        yield lab


@pytest.fixture
def run(swarm_lab, monkeypatch, capsys):
    """Run a swarm task in-process on the lab; returns (exit code, output, transport)."""
    return task_runner(swarm_lab.config, monkeypatch, capsys)


def vm(lab, name):
    return next(v for v in lab.vms if v.name == name)


def manager_client(lab):
    return lab.docker(vm(lab, "portainer"))


def swarm_nodes(lab):
    """{VM name: node attrs} from the manager's engine (second channel), each VM's node
    found by the node ID its own engine reports: never by hostname, since a VM that
    left and rejoined leaves a stale node with the same hostname behind."""
    manager = manager_client(lab)
    nodes = {}
    for v in lab.vms:
        node_id = lab.docker(v).info()["Swarm"]["NodeID"]
        if node_id:
            nodes[v.name] = manager.nodes.get(node_id).attrs
    return nodes


def quartet(run, task, **flags):
    """dry-run, apply, apply again, dry-run; returns the first apply's output."""
    code, out, t = run(task, dry_run=True, **flags)
    assert code == 0, out
    assert "dry run: nothing was changed" in out
    assert t.mutating_commands == []
    dry_plan = out
    code, applied, t = run(task, **flags)
    assert code == 0, applied
    assert t.mutating_commands, "the apply changed nothing although the dry run planned changes"
    assert "converged: facts read again, nothing pending" in applied
    code, out, t = run(task, **flags)
    assert code == 0, out
    assert "no changes" in out and t.mutating_commands == []
    per_vm = {}
    for record in t.log:
        per_vm[record.vm] = per_vm.get(record.vm, 0) + 1
    assert max(per_vm.values()) <= 2, per_vm  # converged: at most 2 commands per VM
    code, out, t = run(task, dry_run=True, **flags)
    assert code == 0 and "no changes" in out and t.mutating_commands == []
    return dry_plan, applied


def test_init_quartet(swarm_lab, run):
    m = manager_client(swarm_lab)
    assert m.info()["Swarm"]["LocalNodeState"] == "inactive"
    dry, _ = quartet(run, swarm_tasks.init)
    assert "initialise the swarm, advertising 198.18.79.11" in dry
    info = m.info()["Swarm"]
    assert info["LocalNodeState"] == "active" and info["ControlAvailable"] is True
    assert info["NodeAddr"] == "198.18.79.11"
    for name in ("drphoenix", "cpuworker"):
        assert swarm_lab.docker(vm(swarm_lab, name)).info()["Swarm"]["LocalNodeState"] == "inactive"


def test_join_quartet_never_shows_the_token(swarm_lab, run, caplog):
    caplog.set_level(logging.DEBUG)  # paramiko, invoke, fabric: everything they log
    token = manager_client(swarm_lab).swarm.attrs["JoinTokens"]["Worker"]
    dry, applied = quartet(run, swarm_tasks.join, verbose=True)
    assert "join as worker via 198.18.79.11:2377" in dry
    # the echoed join: an Engine API request whose body carries the token (issue 21)
    assert "POST /swarm/join" in applied and "the token in the request body" in applied
    everything = dry + applied + caplog.text
    assert token not in everything
    assert token[10:40] not in everything
    # Nor in any file Phoenix or the lab wrote (the engines' own swarm state aside).
    roots = [swarm_lab.config.config_dir, swarm_lab.names.ssh_dir]
    for root in roots:
        for path in root.rglob("*"):
            if path.is_file():
                assert token not in path.read_text(errors="replace"), path
    nodes = swarm_nodes(swarm_lab)
    assert {h: n["Spec"]["Role"] for h, n in nodes.items()} == {
        "portainer": "manager", "drphoenix": "worker", "cpuworker": "worker"}


def test_label_quartet(swarm_lab, run):
    dry, _ = quartet(run, swarm_tasks.label)
    assert "gpu=true" in dry
    labels = {h: n["Spec"]["Labels"] for h, n in swarm_nodes(swarm_lab).items()}
    assert labels == {"portainer": {"zone": "core"}, "drphoenix": {"gpu": "true", "zone": "compute"},
                      "cpuworker": {"gpu": "false", "zone": "compute"}}


def test_status_json_matches_the_engines(swarm_lab, run):
    code, out, t = run(swarm_tasks.status, json=True)
    assert code == 0, out
    doc = json.loads(out)
    assert doc["degraded"] is False and doc["leader"] == "portainer"
    assert t.mutating_commands == []
    sdk = swarm_nodes(swarm_lab)
    for node in doc["nodes"]:
        assert node["state"] == "member"
        assert node["labels"] == sdk[node["name"]]["Spec"]["Labels"]
        assert node["role"] == sdk[node["name"]]["Spec"]["Role"]
        assert node["node_id"] == sdk[node["name"]]["ID"]


def test_status_shows_stacks_with_running_and_desired_replicas(swarm_lab, run, tmp_path):
    compose = tmp_path / "stack.yml"
    compose.write_text(
        "version: '3.8'\nservices:\n"
        "  inference:\n    image: thinkheads/ai-inference:1.4.0\n"
        "    deploy:\n      replicas: 2\n      endpoint_mode: dnsrr\n"
        "      placement:\n        constraints: [node.labels.gpu == true]\n")
    env = {**os.environ, "DOCKER_HOST": f"unix://{swarm_lab.socket(vm(swarm_lab, 'portainer'))}"}
    subprocess.run(["docker", "stack", "deploy", "-c", str(compose), "dev1_thinkheads_ai_app"],
                   env=env, check=True, capture_output=True)
    try:
        m = manager_client(swarm_lab)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            tasks = m.services.get("dev1_thinkheads_ai_app_inference").tasks(filters={"desired-state": "running"})
            if sum(t["Status"]["State"] == "running" for t in tasks) == 2:
                break
            time.sleep(0.5)
        # Placement is real: both replicas on the gpu node.
        gpu_id = swarm_lab.docker(vm(swarm_lab, "drphoenix")).info()["Swarm"]["NodeID"]
        assert {t["NodeID"] for t in tasks} == {gpu_id}
        code, out, _ = run(swarm_tasks.status, json=True)
        assert code == 0, out
        [stack] = [s for s in json.loads(out)["stacks"] if s["name"] == "dev1_thinkheads_ai_app"]
        assert stack["services"] == [{"name": "dev1_thinkheads_ai_app_inference", "desired": 2,
                                      "running": 2, "mode": "replicated"}]
        code, out, _ = run(swarm_tasks.status)
        assert "dev1_thinkheads_ai_app_inference" in out and "2/2" in out
    finally:
        subprocess.run(["docker", "stack", "rm", "dev1_thinkheads_ai_app"], env=env, capture_output=True)


def test_a_worker_that_left_rejoins(swarm_lab, run):
    cpu = swarm_lab.docker(vm(swarm_lab, "cpuworker"))
    cpu.swarm.leave()
    assert cpu.info()["Swarm"]["LocalNodeState"] == "inactive"
    code, out, _ = run(swarm_tasks.join)
    assert code == 0, out
    assert "cpuworker (vmid 1003)  join" in out
    assert cpu.info()["Swarm"]["LocalNodeState"] == "active"
    code, out, _ = run(swarm_tasks.label)
    assert code == 0, out
    assert swarm_nodes(swarm_lab)["cpuworker"]["Spec"]["Labels"] == {"gpu": "false", "zone": "compute"}


def test_a_worker_in_a_foreign_swarm_is_refused_and_untouched(swarm_lab, run):
    cpu_vm = vm(swarm_lab, "cpuworker")
    cpu = swarm_lab.docker(cpu_vm)
    cpu.swarm.leave()
    cpu.swarm.init(advertise_addr=cpu_vm.address)
    foreign_id = cpu.info()["Swarm"]["Cluster"]["ID"]
    code, out, t = run(swarm_tasks.join)
    assert code == 1
    assert "cpuworker (vmid 1003)" in out and "another swarm" in out and "--force-rejoin" in out
    assert t.mutating_commands == []
    assert cpu.info()["Swarm"]["Cluster"]["ID"] == foreign_id  # untouched
    code, out, _ = run(swarm_tasks.join, force_rejoin=True)
    assert code == 0, out
    info = cpu.info()["Swarm"]
    assert info["LocalNodeState"] == "active" and info["ControlAvailable"] is False
    assert run(swarm_tasks.label)[0] == 0


def test_a_label_changed_by_hand_is_restored_and_removed_under_replace(swarm_lab, run, tmp_path, monkeypatch):
    node = manager_client(swarm_lab).nodes.get(
        swarm_lab.docker(vm(swarm_lab, "drphoenix")).info()["Swarm"]["NodeID"])
    spec = node.attrs["Spec"]
    spec["Labels"] = {"gpu": "false", "zone": "compute", "handmade": "yes"}
    node.update(spec)
    code, out, _ = run(swarm_tasks.label)
    assert code == 0 and "gpu=true (was false)" in out
    assert swarm_nodes(swarm_lab)["drphoenix"]["Spec"]["Labels"] == {
        "gpu": "true", "zone": "compute", "handmade": "yes"}  # merge keeps others
    # Same config with label_policy replace.
    cfg_dir = tmp_path / "etc"
    cfg_dir.mkdir()
    for f in swarm_lab.config.config_dir.iterdir():
        doc = json.loads(f.read_text())
        if "swarm" in doc:
            doc["swarm"]["label_policy"] = "replace"
        (cfg_dir / f.name).write_text(json.dumps(doc))
    monkeypatch.setenv("PHOENIX_CONFIG_DIR", str(cfg_dir))
    code, out, _ = run(swarm_tasks.label)
    assert code == 0 and "-handmade" in out
    assert swarm_nodes(swarm_lab)["drphoenix"]["Spec"]["Labels"] == {"gpu": "true", "zone": "compute"}


def _config_with_roles(lab, tmp_path, roles):
    cfg_dir = tmp_path / "roles"
    cfg_dir.mkdir(exist_ok=True)
    for f in lab.config.config_dir.iterdir():
        doc = json.loads(f.read_text())
        for entry in doc.get("vms", []):
            if entry["name"] in roles:
                entry["swarm_role"] = roles[entry["name"]]
        (cfg_dir / f.name).write_text(json.dumps(doc))
    return cfg_dir


def test_a_role_changed_in_config_promotes_then_demotes(swarm_lab, run, tmp_path, monkeypatch):
    monkeypatch.setenv("PHOENIX_CONFIG_DIR", str(_config_with_roles(swarm_lab, tmp_path, {"cpuworker": "manager"})))
    code, out, _ = run(swarm_tasks.join)
    assert code == 0 and "promote to manager" in out, out
    assert swarm_nodes(swarm_lab)["cpuworker"]["Spec"]["Role"] == "manager"
    monkeypatch.setenv("PHOENIX_CONFIG_DIR", str(swarm_lab.config.config_dir))
    code, out, _ = run(swarm_tasks.join)
    assert code == 0 and "demote to worker" in out, out
    assert swarm_nodes(swarm_lab)["cpuworker"]["Spec"]["Role"] == "worker"
    assert run(swarm_tasks.join)[1].count("no changes") == 1


def test_a_worker_with_sshd_down_is_reported_by_name_others_converge(swarm_lab, run):
    cpu_vm = vm(swarm_lab, "cpuworker")
    # Drift on another worker that this run must still fix.
    node = manager_client(swarm_lab).nodes.get(
        swarm_lab.docker(vm(swarm_lab, "drphoenix")).info()["Swarm"]["NodeID"])
    spec = node.attrs["Spec"]
    spec["Labels"] = {"zone": "compute"}
    node.update(spec)
    pid = procs.read_pidfile(swarm_lab.names.vm(cpu_vm.vmid).sshd_pidfile)
    os.kill(pid, signal.SIGTERM)
    assert procs.wait_gone([pid], 10) == []
    code, out, _ = run(swarm_tasks.label)
    assert code == 1
    assert "cpuworker (vmid 1003)" in out and "unreachable" in out
    assert swarm_nodes(swarm_lab)["drphoenix"]["Spec"]["Labels"] == {"gpu": "true", "zone": "compute"}
    code, out, _ = run(swarm_tasks.status)
    assert code == 1 and "DEGRADED" in out
    control.up(swarm_lab.config)  # the lab repairs the VM: sshd back
    code, out, _ = run(swarm_tasks.label)
    assert code == 0 and "no changes" in out, out
    assert run(swarm_tasks.status)[0] == 0


def test_sync_all_on_a_converged_lab_changes_nothing(swarm_lab, run, monkeypatch):
    code, out, t = run(sync_tasks.sync_all)  # this swarm was formed by the swarm tasks: Portainer is new
    assert code == 0, out
    assert "vms: no changes" in out and "swarm init/join/labels: no changes" in out
    # one deploy, under the environment's lock and recorded in its ledger (swarm configs)
    changes = [r.display.split(" --")[0] for r in t.mutating_commands]
    assert changes.count("docker stack deploy") == 1
    assert set(changes) == {"docker stack deploy", "docker config create", "docker config rm"}
    assert "answers on https://" in out
    code, out, t = run(sync_tasks.sync_all)
    assert code == 0, out
    assert "prod_portainer_service: no changes" in out and "sync-all: converged (no changes)" in out
    assert t.mutating_commands == []
