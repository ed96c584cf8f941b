"""lab.down leaves nothing behind, also after a crash; a stale state dir is repaired."""

from __future__ import annotations

import json
import signal
import subprocess
from pathlib import Path

import pytest

from phoenix_tasks.lab import control, procs
from phoenix_tasks.lab.naming import RUN_ROOT

pytestmark = pytest.mark.lab


def lab_processes(config) -> list[int]:
    """Every process of the lab: daemons by pid file, plus everything in the VMs'
    namespaces and below (containerd, shims, containers)."""
    names = control.names_for(config)
    pids = []
    for vm in config.real_vms:
        v = names.vm(vm.vmid)
        pids += [p for p in (procs.read_pidfile(v.dockerd_pidfile),
                             procs.read_pidfile(v.sshd_pidfile)) if p]
        pids += procs.with_descendants(procs.pids_in_netns(v.netns_file))
    return sorted(set(pids))


def assert_nothing_left(config, pids: list[int]) -> None:
    names = control.names_for(config)
    netns = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    links = subprocess.run(["ip", "-o", "link"], capture_output=True, text=True).stdout
    mounts = Path("/proc/mounts").read_text()
    assert names.netns_prefix not in netns
    for vm in config.real_vms:
        assert names.vm(vm.vmid).veth not in links
    assert f" {names.bridge}:" not in links and f" {names.bridge}@" not in links
    assert str(names.state_dir) not in mounts and str(names.run_dir) not in mounts
    assert [p for p in pids if procs.is_running(p)] == []
    assert not names.state_dir.exists()
    assert not names.run_dir.exists()


def test_down_leaves_no_namespace_veth_bridge_process_or_mount(scratch_config):
    control.up(scratch_config)
    vm = scratch_config.real_vms[0]
    import docker
    client = docker.DockerClient(
        base_url=control.names_for(scratch_config).vm(vm.vmid).docker_host)
    client.containers.run("qdrant/qdrant:v1.12.4", detach=True)  # a shim, a container, mounts
    pids = lab_processes(scratch_config)
    assert len(pids) >= 2 * 3 + 2  # dockerd, containerd, sshd per VM; shim + container
    done = control.down(scratch_config.hypervisor.lab.state_dir,
                        scratch_config.hypervisor.lab.bridge)
    assert done
    assert_nothing_left(scratch_config, pids)
    # Twice is fine, and finds nothing to do.
    assert control.down(scratch_config.hypervisor.lab.state_dir,
                        scratch_config.hypervisor.lab.bridge) == []


def test_down_from_the_state_dir_alone_after_every_process_was_killed(scratch_config):
    control.up(scratch_config)
    pids = lab_processes(scratch_config)
    procs.signal_pids(pids, signal.SIGKILL)  # a crash: nothing stopped cleanly
    assert procs.wait_gone(pids, 10) == []
    from conftest import run_lab_task
    state_dir = scratch_config.hypervisor.lab.state_dir
    result = run_lab_task(["lab.down", "--state-dir", str(state_dir)])  # no config
    assert result.returncode == 0, result.stderr
    assert "deleted bridge" in result.stdout
    assert_nothing_left(scratch_config, pids)


def test_up_repairs_a_lab_whose_processes_were_all_killed(scratch_config):
    control.up(scratch_config)
    names = control.names_for(scratch_config)
    pids = lab_processes(scratch_config)
    procs.signal_pids(pids, signal.SIGKILL)
    assert procs.wait_gone(pids, 10) == []
    # A pid file naming a live process that is not the lab's must not count.
    names.vm(scratch_config.real_vms[1].vmid).sshd_pidfile.write_text("1\n")
    result = control.up(scratch_config)
    assert all(r.actions for r in result.vms)
    for vm in scratch_config.real_vms:
        import docker
        info = docker.DockerClient(base_url=names.vm(vm.vmid).docker_host).info()
        assert info["Name"] == vm.name
    assert all(s.up for s in control.status(scratch_config))


def test_up_over_a_state_dir_left_by_a_run_killed_early(scratch_config):
    """A record written, nothing made yet (killed right after writing it)."""
    names = control.names_for(scratch_config)
    names.state_dir.mkdir(parents=True)
    names.record_file.write_text(json.dumps({"version": 1, "bridge": names.bridge}))
    (names.vms_dir / "1001").mkdir(parents=True)
    (names.vms_dir / "1001" / "dockerd.pid").write_text("999999\n")
    result = control.up(scratch_config)
    assert result.changed
    assert all(s.up for s in control.status(scratch_config))


def test_down_of_a_lab_that_never_existed_is_fine(tmp_path):
    from conftest import lab_skip_reason
    if lab_skip_reason():
        pytest.skip(lab_skip_reason())
    assert control.down(tmp_path / "no-such-state", "phxnever0") == []
    assert RUN_ROOT.exists() is False or not (RUN_ROOT / "e").exists()
