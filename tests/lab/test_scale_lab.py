"""A cold `sync-all` on a 20-VM lab converges in ONE run (issue 13): the label phase
updates all 20 nodes through the one SSH connection to the manager, more channels
than OpenSSH's MaxSessions (10) allows at once; the transport bounds them per host.
Verified through the docker SDK on every VM's own socket (20 nodes, their roles and
labels); a second run says "no changes" and runs no mutating command."""

import time

import docker
import pytest

from conftest import bridge_lock, clear_stale_lab, lab_skip_reason, lab_with_password, run_task, task_env

pytestmark = pytest.mark.lab

BRIDGE, SUBNET = "phxtest17", "198.18.72.0/24"
NODES = 20
PASSWORD = "scale-lab-password-7d21"
MUTATING = ("docker swarm init", "docker swarm join", "docker node update", "docker stack deploy",
            "docker secret create", "docker config create", "docker swarm leave")
CHANNEL_REFUSED = ("Secsh channel open FAILED", "ChannelException", "Connect failed")


def sync_all(config_dir, password, *flags):
    started = time.monotonic()
    res = run_task(task_env(config_dir, password), "sync-all", *flags, timeout=1500)
    print(f"sync-all {' '.join(flags)}: exit {res.returncode} in {time.monotonic() - started:.1f} s")
    return res


def test_a_cold_sync_all_of_20_vms_converges_in_one_run(tmp_path):
    reason = lab_skip_reason()
    if reason:
        pytest.skip(reason)
    from phoenix_tasks.lab import control
    config, password = lab_with_password(tmp_path, NODES, SUBNET, BRIDGE, PASSWORD)
    etc = config.config_dir
    with bridge_lock(BRIDGE):
        clear_stale_lab(BRIDGE)
        try:
            res = sync_all(etc, password, "--verbose")
            assert res.returncode == 0, res.stdout[-4000:] + res.stderr[-4000:]
            assert not [m for m in CHANNEL_REFUSED if m in res.stdout + res.stderr]
            assert "sync-all: converged (changes applied)" in res.stdout
            assert PASSWORD not in res.stdout + res.stderr

            names = control.names_for(config)
            clients = {vm.name: docker.DockerClient(base_url=names.vm(vm.vmid).docker_host, timeout=60)
                       for vm in config.real_vms}
            assert len(clients) == NODES
            manager = clients["portainer"]
            nodes = {n.attrs["Description"]["Hostname"]: n.attrs for n in manager.nodes.list()}
            assert sorted(nodes) == sorted(clients)
            for vm in config.real_vms:
                node_id = clients[vm.name].info()["Swarm"]["NodeID"]
                attrs = manager.nodes.get(node_id).attrs
                assert attrs["Spec"]["Role"] == vm.swarm_role, vm.name
                assert attrs["Spec"]["Labels"] == dict(vm.node_labels), vm.name
                assert attrs["Status"]["State"] == "ready", vm.name

            again = sync_all(etc, password, "--verbose")
            assert again.returncode == 0, again.stdout[-4000:] + again.stderr[-4000:]
            for line in ("swarm init/join/labels: no changes", "sync-all: converged (no changes)"):
                assert line in again.stdout, line
            echoed = [line for line in again.stderr.splitlines() if line.startswith("[")]
            assert echoed and not [line for line in echoed if any(m in line for m in MUTATING)]
        finally:
            control.down(config.hypervisor.lab.state_dir, config.hypervisor.lab.bridge)
