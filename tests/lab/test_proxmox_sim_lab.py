"""The Proxmox API simulator with the lab behind its start: a VM cloned, given the
cloud-init settings Phoenix sends and started through the API becomes a real lab VM
(network namespace, sshd, dockerd) that SSH reaches, with the name the clone got as
its hostname.  Checked through SSH and the VM's own docker socket, not through the
simulator.  Its own lab (198.18.64.0/24 on phxtest10), torn down at the end."""

from __future__ import annotations

import subprocess
import time

import pytest

from phoenix_tasks.lab import control
from phoenix_tasks.providers.proxmox import api
from phoenix_tasks.providers.proxmox.http import Client
from phoenix_tasks.providers.proxmox.task_wait import wait_task
from phoenix_tasks.providers.proxmox.token import api_token

from conftest import Lab, bridge_lock, clear_stale_lab, lab_skip_reason, make_lab_config
from proxmox_sim import ProxmoxApiSimulator, lab_start_hook

pytestmark = pytest.mark.lab

SUBNET, BRIDGE = "198.18.64.0/24", "phxtest10"


@pytest.fixture(scope="module")
def lab_config(tmp_path_factory):
    reason = lab_skip_reason()
    if reason:
        pytest.skip(reason)
    config = make_lab_config(tmp_path_factory.mktemp("pxsimlab"), 2, SUBNET, BRIDGE)
    with bridge_lock(BRIDGE):
        clear_stale_lab(BRIDGE)
        try:
            yield config
        finally:
            control.down(config.hypervisor.lab.state_dir, config.hypervisor.lab.bridge)


@pytest.fixture(scope="module")
def hook(lab_config):
    return lab_start_hook(lab_config)


@pytest.fixture(scope="module")
def sim(hook):
    with ProxmoxApiSimulator(on_start=hook) as running:  # closed before the lab goes down
        yield running


@pytest.fixture(scope="module")
def pve(sim):
    s = sim.settings()
    return Client(s, api_token(s, sim.token_environ()), timeout_s=30)


def run(pve, call, timeout_s=60):
    """Send a call that answers with a task, and wait for the task."""
    upid = pve.request(call)
    node = call.path.split("/")[2]
    return wait_task(lambda: pve.request(api.task_status(node, upid)), timeout_s=timeout_s, interval_s=0.2,
                     clock=time.monotonic, sleep=time.sleep)


def cloud_init(vm, public_key: str | None) -> dict:
    params = {"ciuser": vm.username, "ipconfig0": f"ip={vm.network.ip},gw={vm.network.gw}",
              "nameserver": str(vm.network.nameserver)}
    if public_key is not None:
        params["sshkeys"] = api.encode_sshkeys(public_key + "\n")
    return params


def test_a_vm_cloned_configured_and_started_through_the_api_answers_ssh(lab_config, hook, sim, pve):
    vm = lab_config.vm_by_id(1001)
    public_key = hook.prepare()
    assert run(pve, api.clone("phoenix", 9000, vm.vmid, vm.name)).ok
    assert run(pve, api.set_config("phoenix", vm.vmid, cloud_init(vm, public_key))).ok
    pve.request(api.regenerate_cloudinit("phoenix", vm.vmid))
    started = run(pve, api.start("phoenix", vm.vmid), timeout_s=300)
    assert (started.ok, started.exitstatus) == (True, "OK")
    assert sim.guest(vm.vmid).status == "running" and hook.started == [vm.vmid]

    lab = Lab(lab_config)
    with lab.ssh(vm) as conn:
        hostname = conn.run("hostname", hide=True, in_stream=False).stdout.strip()
    assert hostname == vm.name
    assert lab.docker(vm).info()["Name"] == vm.name  # second channel: the VM's own engine


def test_a_start_without_phoenix_key_fails_its_task_and_brings_nothing_up(lab_config, hook, sim, pve):
    vm = lab_config.vm_by_id(1002)
    hook.prepare()
    assert run(pve, api.clone("phoenix", 9000, vm.vmid, vm.name)).ok
    assert run(pve, api.set_config("phoenix", vm.vmid, cloud_init(vm, None))).ok
    started = run(pve, api.start("phoenix", vm.vmid))
    assert (started.ok, started.exitstatus) == (
        False, "cloud-init: sshkeys lacks Phoenix's key: the guest would not accept it")
    assert sim.guest(vm.vmid).status == "stopped"
    names = control.names_for(lab_config).vm(vm.vmid)
    assert not names.netns_file.exists() and not names.state_dir.exists()
    assert names.netns not in subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
