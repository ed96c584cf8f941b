"""sync-all end to end on a lab that does not exist yet, verified through the docker SDK
on each VM's own socket: the dry run creates nothing; the run creates the VMs, forms
the swarm with its roles and labels, deploys Portainer (server on the manager, agent on
every node, the admin password as a secret) and checks that it answers; the password is
in no output, at any verbosity; a second run changes nothing; a worker whose dockerd is
stopped is named, the run exits 1 and the rest stays converged; once it is back, the
next run converges; a Portainer image missing on the nodes fails the deploy with the
task's error, and the server that ran runs on (swarm rolls the update back)."""

import collections
import json
import os
import shutil
import signal
import subprocess
import time

import docker
import pytest

from conftest import bridge_lock, clear_stale_lab, lab_skip_reason, lab_with_password, run_task, running_tasks, task_env

pytestmark = pytest.mark.lab

BRIDGE, SUBNET = "phxtest9", "198.18.96.0/24"
PASSWORD = "sync-all-lab-password-41c9"
# Commands that change something; a converged run echoes none of them (-v).
MUTATING = ("docker swarm init", "docker swarm join", "docker node update", "docker stack deploy",
            "docker secret create", "docker config create", "docker swarm leave")


def task(config_dir, name, *flags, password=None):
    return run_task(task_env(config_dir, password), name, *flags)


def sync_all(config_dir, *flags, password=None):
    return task(config_dir, "sync-all", *flags, password=password)


def node_of(client):
    return client.info()["Swarm"]["NodeID"]


def test_sync_all_from_nothing_to_a_dashboard(tmp_path):
    reason = lab_skip_reason()
    if reason:
        pytest.skip(reason)
    from phoenix_tasks.lab import control
    config, password = lab_with_password(tmp_path, 3, SUBNET, BRIDGE, PASSWORD)
    etc = config.config_dir
    with bridge_lock(BRIDGE):
        clear_stale_lab(BRIDGE)
        netns_before = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
        res = sync_all(etc, "--dry-run", password=password)
        assert res.returncode == 0, res.stdout + res.stderr
        assert "vms: 3 to create or start: portainer (vmid 1001), drphoenix (vmid 1002), cpuworker (vmid 1003)" \
            in res.stdout
        assert "portainer: deploy prod_portainer_service (2 services) once the swarm exists" in res.stdout
        assert "dry run: nothing was changed" in res.stdout
        assert not (tmp_path / "state").exists()
        assert subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout == netns_before
        try:
            res = sync_all(etc, "--verbose", password=password)
            assert res.returncode == 0, res.stdout + res.stderr
            assert PASSWORD not in res.stdout + res.stderr
            assert "sync-all: converged (changes applied)" in res.stdout
            assert "answers on https://198.18.96.11:9443" in res.stdout
            assert "admin password: from file" in res.stdout
            names = control.names_for(config)
            clients = {vm.name: docker.DockerClient(base_url=names.vm(vm.vmid).docker_host) for vm in config.real_vms}
            manager = clients["portainer"]
            assert manager.info()["Swarm"]["ControlAvailable"] is True
            for name, role, labels in (("drphoenix", "worker", {"gpu": "true", "zone": "compute"}),
                                       ("cpuworker", "worker", {"gpu": "false", "zone": "compute"}),
                                       ("portainer", "manager", {"zone": "core"})):
                spec = manager.nodes.get(node_of(clients[name])).attrs["Spec"]
                assert (spec["Role"], spec["Labels"]) == (role, labels), name
            server = running_tasks(manager, "prod_portainer_service_portainer")
            assert [t["NodeID"] for t in server] == [node_of(manager)]
            agents = running_tasks(manager, "prod_portainer_service_agent")
            assert sorted(t["NodeID"] for t in agents) == sorted(node_of(c) for c in clients.values())
            secrets = [s.name for s in manager.secrets.list()]
            assert len([s for s in secrets if s.startswith("prod_portainer_service_portainer_admin_password_")]) == 1
            spec = manager.services.get("prod_portainer_service_portainer").attrs["Spec"]["TaskTemplate"]["ContainerSpec"]
            assert PASSWORD not in str(spec)
            assert spec["Args"][-2:] == ["--admin-password-file", "/run/secrets/portainer_admin_password"]

            again = sync_all(etc, "--verbose", password=password)
            assert again.returncode == 0, again.stdout + again.stderr
            assert PASSWORD not in again.stdout + again.stderr
            for line in ("vms: no changes", "ssh: no changes", "swarm init/join/labels: no changes",
                         "prod_portainer_service: no changes", "sync-all: converged (no changes)"):
                assert line in again.stdout, line
            echoed = [line for line in again.stderr.splitlines() if line.startswith("[")]
            assert echoed and not [line for line in echoed if any(m in line for m in MUTATING)]
            # One command per worker (its facts); on the manager: its facts with the node
            # list, the images' digests, Portainer's services (read once), where its
            # server runs, then the HTTPS check through a tunnel.
            per_vm = collections.Counter(line.split("]")[0].strip("[") for line in echoed if "] $ " in line)
            assert per_vm["drphoenix"] == per_vm["cpuworker"] == 1, echoed
            assert per_vm["portainer"] == 5, echoed
            assert sum("label=com.docker.stack.namespace" in line for line in echoed) == 1, echoed

            # One worker's engine stops: named, exit 1, the rest stays converged.
            pid = int(names.vm(1003).dockerd_pidfile.read_text())
            os.kill(pid, signal.SIGTERM)
            deadline = time.monotonic() + 60
            while os.path.exists(f"/proc/{pid}") and time.monotonic() < deadline:
                time.sleep(0.5)
            broken = sync_all(etc, "--timeout", "30", password=password)
            assert broken.returncode == 1, broken.stdout + broken.stderr
            assert "cpuworker (vmid 1003)" in broken.stdout + broken.stderr
            assert "no docker engine answers" in broken.stdout + broken.stderr
            assert "sync-all: NOT converged" in broken.stdout
            assert running_tasks(manager, "prod_portainer_service_portainer")
            assert manager.nodes.get(node_of(clients["drphoenix"])).attrs["Spec"]["Labels"] == {
                "gpu": "true", "zone": "compute"}

            control.up(config)  # the lab brings the engine back (as an operator would on a VM)
            back = sync_all(etc, password=password)
            assert back.returncode == 0, back.stdout + back.stderr
            assert "sync-all: converged" in back.stdout

            # A tag the registry does not have: the image gate blocks portainer.deploy and
            # sync-all's Portainer stage before anything changes; the server that ran runs on.
            missing = tmp_path / "etc-missing-image"
            shutil.copytree(etc, missing)
            hv = json.loads((missing / "phoenix_hypervisor_config.json").read_text())
            hv["portainer"]["images"]["portainer"] = "portainer/portainer-ce:2.99.0"
            (missing / "phoenix_hypervisor_config.json").write_text(json.dumps(hv))
            version = manager.services.get("prod_portainer_service_portainer").attrs["Version"]["Index"]
            failed = task(missing, "portainer.deploy", "--timeout", "60", password=password)
            assert failed.returncode == 1, failed.stdout + failed.stderr
            assert "blocked" in failed.stderr and "portainer/portainer-ce:2.99.0" in failed.stderr
            assert "registry docker.io" in failed.stderr and "manifest unknown" in failed.stderr
            blocked = sync_all(missing, password=password)
            assert blocked.returncode == 1, blocked.stdout + blocked.stderr
            assert "portainer/portainer-ce:2.99.0" in blocked.stdout and "manifest unknown" in blocked.stdout
            assert "Portainer was not deployed" in blocked.stdout + blocked.stderr
            service = manager.services.get("prod_portainer_service_portainer")
            assert service.attrs["Version"]["Index"] == version  # not updated, by either command
            assert service.attrs["Spec"]["TaskTemplate"]["ContainerSpec"]["Image"].startswith(
                "portainer/portainer-ce:2.21.4")
            deadline = time.monotonic() + 60
            while not running_tasks(manager, "prod_portainer_service_portainer") and time.monotonic() < deadline:
                time.sleep(1)
            assert running_tasks(manager, "prod_portainer_service_portainer")
            status = task(etc, "portainer.status", password=password)
            assert status.returncode == 0, status.stdout + status.stderr
        finally:
            control.down(config.hypervisor.lab.state_dir, config.hypervisor.lab.bridge)
