"""sync-all end to end on a lab that does not exist yet: the dry run creates nothing;
the run creates the VMs through the provider and converges the swarm (checked through
the docker SDK on each VM's socket); a second run changes nothing."""

import subprocess
import sys

import docker
import pytest

from conftest import REPO, clear_stale_lab, lab_skip_reason

pytestmark = pytest.mark.lab


BRIDGE = "phxtest9"


def sync_all(config_dir, *flags):
    return subprocess.run([sys.executable, "-m", "invoke", "--search-root", str(REPO), "sync-all", *flags],
                          capture_output=True, text=True, timeout=600,
                          env={"PHOENIX_CONFIG_DIR": str(config_dir), "PATH": "/usr/sbin:/usr/bin:/sbin:/bin"})


def test_sync_all_from_nothing(tmp_path):
    reason = lab_skip_reason()
    if reason:
        pytest.skip(reason)
    from phoenix_tasks.config import load_config
    from phoenix_tasks.lab import control
    from phoenix_tasks.lab.configgen import write_lab_config
    clear_stale_lab(BRIDGE)
    write_lab_config(tmp_path / "etc", 2, subnet="198.18.96.0/24", bridge=BRIDGE, state_dir=str(tmp_path / "state"))
    config = load_config(tmp_path / "etc")
    netns_before = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    res = sync_all(tmp_path / "etc", "--dry-run")
    assert res.returncode == 0, res.stdout + res.stderr
    assert "vms: 2 to create or start: portainer (vmid 1001), drphoenix (vmid 1002)" in res.stdout
    assert "dry run: nothing was changed" in res.stdout
    assert not (tmp_path / "state").exists()
    assert subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout == netns_before
    assert BRIDGE not in subprocess.run(["ip", "-br", "link"], capture_output=True, text=True).stdout

    try:
        res = sync_all(tmp_path / "etc")
        assert res.returncode == 0, res.stdout + res.stderr
        assert "converged: facts read again, nothing pending" in res.stdout
        names = control.names_for(config)
        clients = {vm.name: docker.DockerClient(base_url=names.vm(vm.vmid).docker_host) for vm in config.real_vms}
        manager = clients["portainer"]
        assert manager.info()["Swarm"]["ControlAvailable"] is True
        worker_id = clients["drphoenix"].info()["Swarm"]["NodeID"]
        node = manager.nodes.get(worker_id).attrs
        assert node["Spec"]["Role"] == "worker" and node["Spec"]["Labels"] == {"gpu": "true", "zone": "compute"}
        again = sync_all(tmp_path / "etc")
        assert again.returncode == 0, again.stdout + again.stderr
        assert "vms: no changes" in again.stdout and "swarm init/join/labels: no changes" in again.stdout
    finally:
        control.down(config.hypervisor.lab.state_dir, config.hypervisor.lab.bridge)
