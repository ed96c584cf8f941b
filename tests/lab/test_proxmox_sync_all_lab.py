"""`sync-all` and `vm.*` with `provider: proxmox`, end to end: Phoenix's HTTPS client
(token header, TLS verified against a CA file) talks to `ProxmoxApiSimulator`, a
stateful simulator of the API on 127.0.0.1 (NOT a Proxmox host), whose VM start
brings up a real lab VM (network namespace, sshd, dockerd) only when the cloud-init
settings Phoenix sent would make the guest reachable as configured (user, Phoenix's
public key, IP).  Then SSH, the swarm and Portainer run for real.

Verified through a second channel: the docker SDK on each VM's own socket, and the
simulator's record of every call.  A second run says "no changes" and sends no API
call that changes anything.  The token appears in no output.  Own lab: 198.18.65.0/24
on phxtest11, torn down at the end."""

from __future__ import annotations

import json
import shutil

import docker
import pytest

from conftest import bridge_lock, clear_stale_lab, lab_skip_reason, make_lab_config, run_task, task_env
from proxmox_sim import DEFAULT_TOKEN, ProxmoxApiSimulator, SimGuest, lab_start_hook

pytestmark = pytest.mark.lab

SUBNET, BRIDGE = "198.18.65.0/24", "phxtest11"
PASSWORD = "proxmox-sim-lab-password-7d21"
SECRET = DEFAULT_TOKEN.split("=", 1)[1]
TOKEN_VAR = "PHOENIX_TEST_PVE_TOKEN"


def proxmox_config_dir(lab_config, out, sim):
    """The lab's config with `provider: proxmox` pointed at the simulator (same VMs,
    same key and known_hosts)."""
    shutil.copytree(lab_config.config_dir, out)
    path = out / "phoenix_hypervisor_config.json"
    hv = json.loads(path.read_text())
    ssh = lab_config.hypervisor.lab.state_dir / "ssh"
    hv["provider"] = "proxmox"
    hv["proxmox"] = {"host": "127.0.0.1", "node": "phoenix", "ssh_user": "root", "ssh_port": 22,
                     "api_token_env": TOKEN_VAR, "api_port": sim.port, "ca_file": str(sim.ca_file)}
    hv["vm_access"].update(private_key_file=str(ssh / "id_ed25519"), known_hosts_file=str(ssh / "known_hosts"),
                           host_key_policy="accept-new")
    path.write_text(json.dumps(hv, indent=2))
    return out


def inv(config_dir, *args, password=None):
    """conftest's run_task, with the simulator's API token in the environment."""
    return run_task({**task_env(config_dir, password or None), TOKEN_VAR: DEFAULT_TOKEN}, *args)


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    reason = lab_skip_reason()
    if reason:
        pytest.skip(reason)
    from phoenix_tasks.lab import control
    config = make_lab_config(tmp_path_factory.mktemp("pxlab"), 3, SUBNET, BRIDGE)
    with bridge_lock(BRIDGE):
        clear_stale_lab(BRIDGE)
        try:
            yield config
        finally:
            control.down(config.hypervisor.lab.state_dir, config.hypervisor.lab.bridge)


def test_sync_all_creates_the_vms_through_the_api_and_a_second_run_changes_nothing(lab, tmp_path):
    from phoenix_tasks.lab import control
    hook = lab_start_hook(lab)
    hook.prepare()  # the lab's bridge, registry and Phoenix's key (cloud-init carries its public half)
    template = SimGuest.recorded("qemu_config_9000_template.json", 9000)
    template.config["name"] = "lab-template"
    template.config["scsi0"] = template.config["scsi0"].replace("size=16G", "size=4G")
    password = tmp_path / "pw"
    password.write_text(PASSWORD + "\n")
    # The cluster view lags as on a live host (10 s, as pvestatd): Phoenix confirms
    # each VM from live reads, so nothing below may depend on it catching up.
    with ProxmoxApiSimulator(on_start=hook, guests=[template], seed_template=False, resources_lag_s=10) as sim:
        etc = proxmox_config_dir(lab, tmp_path / "etc", sim)

        dry = inv(etc, "sync-all", "--dry-run", password=password)
        assert dry.returncode == 0, dry.stdout + dry.stderr
        for vm in ("portainer (vmid 1001)", "drphoenix (vmid 1002)", "cpuworker (vmid 1003)"):
            assert f"  {vm}  clone    full clone of lab-template (vmid 9000)" in dry.stdout
            assert f"  {vm}  start    start" in dry.stdout
        assert "dry run: nothing was changed" in dry.stdout and sim.mutating_calls() == []

        one = inv(etc, "vm.create", "--vmid", "1003")  # one VM first, alone
        assert one.returncode == 0, one.stdout + one.stderr
        assert "cpuworker (vmid 1003): start: start: OK" in one.stdout
        assert "ssh: cpuworker (vmid 1003) answers" in one.stdout
        assert [c.path for c in sim.mutating_calls() if c.path.endswith("/clone")] == ["/nodes/phoenix/qemu/9000/clone"]
        assert hook.started == [1003] and SECRET not in one.stdout + one.stderr

        run = inv(etc, "sync-all", "--verbose", password=password)
        out = run.stdout + run.stderr
        assert run.returncode == 0, out
        assert "sync-all: converged (changes applied)" in run.stdout
        assert "drphoenix (vmid 1002): clone: full clone of lab-template (vmid 9000): OK" in run.stdout
        assert f"answers on https://{SUBNET.rsplit('.', 1)[0]}.11:9443" in run.stdout
        assert SECRET not in out and PASSWORD not in out
        assert hook.started[0] == 1003 and sorted(hook.started) == [1001, 1002, 1003]
        assert "cpuworker (vmid 1003): clone" not in run.stdout  # it was made already
        for vmid in (1001, 1002, 1003):
            g = sim.guest(vmid)
            assert g.status == "running" and "size=8G" in g.config["scsi0"] and sim.regenerations[vmid] == 1
        assert sim.guest(9000).status == "stopped"
        names = control.names_for(lab)
        clients = {vm.name: docker.DockerClient(base_url=names.vm(vm.vmid).docker_host) for vm in lab.real_vms}
        manager = clients["portainer"]
        for name, role in (("portainer", "manager"), ("drphoenix", "worker"), ("cpuworker", "worker")):
            node = manager.nodes.get(clients[name].info()["Swarm"]["NodeID"])
            assert node.attrs["Spec"]["Role"] == role, name
            assert clients[name].info()["Name"] == name  # the VM answers as itself

        changes = len(sim.mutating_calls())
        again = inv(etc, "sync-all", "--verbose", password=password)
        assert again.returncode == 0, again.stdout + again.stderr
        for line in ("vms: no changes", "swarm init/join/labels: no changes", "sync-all: converged (no changes)"):
            assert line in again.stdout, line
        assert len(sim.mutating_calls()) == changes  # no API call that changes anything
        assert SECRET not in again.stdout + again.stderr

        status = inv(etc, "vm.status")
        assert status.returncode == 0, status.stdout + status.stderr
        rows = {line.split()[1]: line for line in status.stdout.splitlines() if line.startswith("│")}
        for name in ("portainer", "drphoenix", "cpuworker"):
            assert [c.strip() for c in rows[name].split("│")[1:6]] == [
                name, str(next(v.vmid for v in lab.real_vms if v.name == name)), "yes", "running", "node phoenix"]

        create = inv(etc, "vm.create", "--vmid", "1003")
        assert create.returncode == 0, create.stdout + create.stderr
        assert "cpuworker (vmid 1003): no changes" in create.stdout
        assert len(sim.mutating_calls()) == changes
