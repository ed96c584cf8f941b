"""lab.up is idempotent, and repairs a VM whose dockerd died."""

from __future__ import annotations

import os
import signal

import pytest

from phoenix_tasks.lab import control, procs

pytestmark = pytest.mark.lab


def daemon_pids(lab):
    return {vm.vmid: (procs.read_pidfile(lab.names.vm(vm.vmid).dockerd_pidfile),
                      procs.read_pidfile(lab.names.vm(vm.vmid).sshd_pidfile))
            for vm in lab.vms}


def test_up_twice_changes_nothing(lab):
    vm = lab.vms[0]
    container = lab.docker(vm).containers.run("qdrant/qdrant:v1.12.4", detach=True,
                                              name="phx-test-idempotent")
    try:
        before_started = lab.docker(vm).api.inspect_container(container.id)["State"]["StartedAt"]
        before = daemon_pids(lab)
        result = control.up(lab.config)
        assert not result.changed, result
        assert [r.actions for r in result.vms] == [(), (), ()]
        assert daemon_pids(lab) == before
        # Second channel: the engine was not restarted, the container still runs.
        state = lab.docker(vm).api.inspect_container(container.id)["State"]
        assert state["Running"] and state["StartedAt"] == before_started
    finally:
        container.remove(force=True)


def test_up_repairs_a_vm_whose_dockerd_was_killed(lab):
    vm = lab.vms[2]
    names = lab.names.vm(vm.vmid)
    old = procs.read_pidfile(names.dockerd_pidfile)
    os.kill(old, signal.SIGKILL)
    assert procs.wait_gone([old], 10) == []
    (status,) = [s for s in control.status(lab.config) if s.vm.vmid == vm.vmid]
    assert status.namespace and not status.engine and not status.up

    result = control.up(lab.config)
    (repaired,) = [r for r in result.vms if r.vm.vmid == vm.vmid]
    assert any("start dockerd" in a for a in repaired.actions), repaired
    assert all(r.actions == () for r in result.vms if r.vm.vmid != vm.vmid)
    new = procs.read_pidfile(names.dockerd_pidfile)
    assert new != old and procs.is_running(new)
    assert lab.docker(vm).ping()
    with lab.ssh(vm) as conn:
        assert conn.run("docker info --format '{{.Name}}'", hide=True, in_stream=False).stdout.strip() == vm.name
    assert all(s.up for s in control.status(lab.config))


def test_up_sets_a_link_taken_down_up_and_leaves_the_healthy_sshd_alone(lab):
    import subprocess
    vm = lab.vms[1]
    names = lab.names.vm(vm.vmid)
    sshd = procs.read_pidfile(names.sshd_pidfile)
    subprocess.run(["ip", "link", "set", "dev", names.veth, "down"], check=True, timeout=30)
    (status,) = [s for s in control.status(lab.config) if s.vm.vmid == vm.vmid]
    assert not status.link and not status.sshd  # cut off: its sshd cannot be reached
    result = control.up(lab.config)
    (repaired,) = [r for r in result.vms if r.vm.vmid == vm.vmid]
    assert repaired.actions == (f"{vm}: network: link {names.veth} was down: set it up",), repaired
    assert procs.read_pidfile(names.sshd_pidfile) == sshd  # not restarted
    with lab.ssh(vm) as conn:
        assert conn.run("hostname", hide=True, in_stream=False).stdout.strip() == vm.name
    assert all(s.up and s.link for s in control.status(lab.config))


def test_status_task_reports_every_vm_up(lab):
    from conftest import run_lab_task
    result = run_lab_task(["lab.status", "--config-dir", str(lab.config.config_dir)])
    assert result.returncode == 0, result.stderr
    for vm in lab.vms:
        assert vm.name in result.stdout and vm.address in result.stdout
    assert "down" not in result.stdout
