"""Faults on a real lab (docs/faults.md), verified through the docker SDK on each VM's
own socket:
- two `sync-all` started at once on a fresh lab: the cluster lock makes the second wait
  and then find everything converged; neither advises a leave, the swarm has one cluster;
- the manager's sshd stopped: `swarm.status` names the manager unreachable and calls no
  worker foreign, `swarm.label` and `swarm.tokens` say no manager can be reached (never
  "run swarm.init"); the services run on; once sshd is back, the next run converges;
- a worker's sshd stopped: `swarm.status` keeps its node on its own row (unreachable,
  node ready per the manager), not among the "other nodes"."""

import json

import docker
import pytest

from conftest import (bridge_lock, clear_stale_lab, lab_skip_reason, lab_with_password, run_task, running_tasks,
                      start_task, task_env)

pytestmark = pytest.mark.lab

BRIDGE, SUBNET = "phxtest18", "198.18.73.0/24"
PASSWORD = "faults-lab-password-7d21"


def task(config_dir, password, name, *flags):
    return run_task(task_env(config_dir, password), name, *flags)


def test_two_sync_all_at_once_then_the_manager_unreachable(tmp_path):
    reason = lab_skip_reason()
    if reason:
        pytest.skip(reason)
    from phoenix_tasks.lab import control, vm as lab_vm
    config, password = lab_with_password(tmp_path, 3, SUBNET, BRIDGE, PASSWORD)
    etc = config.config_dir
    with bridge_lock(BRIDGE):
        clear_stale_lab(BRIDGE)
        try:
            # Two sync-all at once, on a lab that does not exist yet.
            runs = [start_task(task_env(etc, password), "sync-all") for _ in range(2)]
            done = [(p.returncode, *p.communicate(timeout=900)) for p in runs]
            done = [(p.returncode, out, err) for p, (_, out, err) in zip(runs, done)]
            for code, out, err in done:
                assert code == 0, out + err
                assert "sync-all: converged" in out
                assert "leave" not in out + err and "already part of a swarm" not in out + err
            assert sum("waiting for the cluster lock held by pid" in err for _, _, err in done) == 1, done
            names = control.names_for(config)
            clients = {vm.name: docker.DockerClient(base_url=names.vm(vm.vmid).docker_host)
                       for vm in config.real_vms}
            clusters = {c.info()["Swarm"]["Cluster"]["ID"] for c in clients.values()
                        if c.info()["Swarm"]["ControlAvailable"]}
            assert len(clusters) == 1
            manager = clients["portainer"]
            assert len(manager.nodes.list()) == 3
            workers = {clients[n].info()["Swarm"]["NodeID"] for n in ("drphoenix", "cpuworker")}
            assert {n.id for n in manager.nodes.list() if n.attrs["Spec"]["Role"] == "worker"} == workers

            # The manager's sshd stops: it cannot be read; the workers are not foreign.
            lab_vm.stop_sshd(names.vm(1001))
            status = task(etc, password, "swarm.status")
            assert status.returncode == 1, status.stdout + status.stderr
            text = " ".join((status.stdout + status.stderr).split())
            assert "no manager of the swarm can be reached (portainer (vmid 1001): unreachable" in text
            assert "foreign" not in text and "other node in the swarm" not in text
            assert "member?" in text
            label = task(etc, password, "swarm.label")
            assert label.returncode == 1, label.stdout + label.stderr
            text = " ".join((label.stdout + label.stderr).split())
            assert "no manager of the swarm can be reached (portainer (vmid 1001)" in text
            assert "swarm.init" not in text and "foreign" not in text
            tokens = task(etc, password, "swarm.tokens")
            assert tokens.returncode == 1
            assert "no manager of the swarm can be reached (portainer (vmid 1001)" in tokens.stderr
            assert "swarm.init" not in tokens.stderr
            # Nothing was touched: the services run on, the nodes are the same.
            assert running_tasks(manager, "prod_portainer_service_portainer")
            assert len(running_tasks(manager, "prod_portainer_service_agent")) == 3
            assert len(manager.nodes.list()) == 3

            control.up(config)  # sshd back, as an operator would
            back = task(etc, password, "sync-all")
            assert back.returncode == 0, back.stdout + back.stderr
            assert "sync-all: converged (no changes)" in back.stdout

            # A worker's sshd stopped: status keeps its node on its own row, not as "other node".
            lab_vm.stop_sshd(names.vm(1003))
            status = task(etc, password, "swarm.status", "--json")
            assert status.returncode == 1, status.stdout + status.stderr
            doc = json.loads(status.stdout)
            cpu = next(n for n in doc["nodes"] if n["name"] == "cpuworker")
            assert (cpu["state"], cpu["reachable"], cpu["node_status"]) == ("unreachable", False, "ready")
            assert cpu["node_id"] == clients["cpuworker"].info()["Swarm"]["NodeID"]
            assert doc["other_nodes"] == []
            control.up(config)
        finally:
            control.down(config.hypervisor.lab.state_dir, config.hypervisor.lab.bridge)
