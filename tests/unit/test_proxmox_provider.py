"""`ProxmoxProvider` end to end against `ProxmoxApiSimulator` (tests/proxmox_sim.py): a
stateful simulator of the API endpoints Phoenix uses on 127.0.0.1, over real HTTPS
with TLS verified and the token header, NOT a Proxmox host.  Facts -> plan -> apply ->
facts again; a second run changes nothing; drift, refusals, locks and failures by
name; the token in no output."""

from __future__ import annotations

import dataclasses
import logging
import subprocess

import pytest

from phoenix_tasks.core.errors import PhoenixError
from phoenix_tasks.providers.proxmox.apply import Timing
from phoenix_tasks.providers.proxmox.http import Client
from phoenix_tasks.providers.proxmox.provider import KeyMissing, ProxmoxProvider, public_key
from phoenix_tasks.providers.proxmox.token import TokenMissing, api_token

from proxmox_recorded import etc_config
from proxmox_sim import DEFAULT_TOKEN, ProxmoxApiSimulator, SimGuest, make_cert

SECRET = DEFAULT_TOKEN.split("=", 1)[1]
FAST = Timing(clone_timeout_s=30, task_timeout_s=30, poll_interval_s=0.01, lock_backoff_s=(0.01, 0.02),
              lock_wait_timeout_s=30)


@pytest.fixture(scope="module")
def cert(tmp_path_factory):
    return make_cert(tmp_path_factory.mktemp("pve-sim-cert"))


@pytest.fixture(scope="module")
def key(tmp_path_factory):
    d = tmp_path_factory.mktemp("key")
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "phoenix@control", "-f", str(d / "id")],
                   check=True, timeout=30)
    return d / "id"


def config_for(sim, key, **proxmox):
    """etc/'s config (template 9000, portainer 1001, drphoenix 1002) pointed at the simulator."""
    config = etc_config()
    hv = config.hypervisor
    hv = dataclasses.replace(hv, proxmox=sim.settings(**proxmox),
                             vm_access=dataclasses.replace(hv.vm_access, private_key_file=key))
    return dataclasses.replace(config, hypervisor=hv)


def provider_for(sim, key, **proxmox):
    config = config_for(sim, key, **proxmox)
    px = config.hypervisor.proxmox
    client = Client(px, api_token(px, sim.token_environ()), timeout_s=10)
    return config, ProxmoxProvider(config, client=client, timing=FAST)


def run(provider, config, vms=None, **kw):
    lines = []
    plan = provider.plan(list(config.vms if vms is None else vms), **kw)
    outcome = provider.apply(plan, report=lines.append)
    return plan, outcome, lines


def vm(config, vmid):
    return next(v for v in config.vms if v.vmid == vmid)


def test_from_nothing_the_vms_are_cloned_configured_started_and_a_second_run_changes_nothing(cert, key, caplog):
    caplog.set_level(logging.DEBUG)
    with ProxmoxApiSimulator(cert=cert) as sim:
        config, provider = provider_for(sim, key)
        plan, outcome, lines = run(provider, config)
        assert outcome.ok, (outcome.failed, outcome.pending, outcome.blocked)
        assert [v.name for v in outcome.started] == ["portainer", "drphoenix"]
        for vmid, cores, mem, disk in ((1001, 4, 8192, "64G"), (1002, 8, 32768, "256G")):
            g = sim.guest(vmid)
            assert (g.status, g.config["cores"], int(g.config["memory"])) == ("running", cores, mem)
            assert f"size={disk}" in g.config["scsi0"] and g.config["ciuser"] == "phoenix_user"
            assert sim.regenerations[vmid] == 1
        assert sim.guest(9000).status == "stopped"  # the template: never started
        assert not [c for c in sim.mutating_calls() if "/9000/" in c.path and not c.path.endswith("/clone")]
        changes = len(sim.mutating_calls())
        again = provider.plan(list(config.vms))
        assert again.empty and not again.warnings and not again.blocked
        assert len(sim.mutating_calls()) == changes  # the second read sent nothing that changes
        shown = "\n".join(lines + [str(a.call) for a in plan.actions] + [repr(provider), caplog.text])
        assert SECRET not in shown and "***" in repr(provider)


def test_drift_is_reported_and_applied_only_with_apply_drift(cert, key):
    with ProxmoxApiSimulator(cert=cert) as sim:
        config, provider = provider_for(sim, key)
        run(provider, config)
        sim_cfg = sim.guest(1002).config
        assert sim_cfg["cores"] == 8
        smaller = dataclasses.replace(config, vms=tuple(dataclasses.replace(v, cores=12) if v.vmid == 1002 else v
                                                         for v in config.vms))
        provider = ProxmoxProvider(smaller, client=provider.client, timing=FAST)
        plan = provider.plan(list(smaller.vms))
        assert plan.empty and plan.warnings == [
            "drphoenix (vmid 1002): drift: cores 8 -> 12 (applies at next boot); not applied (run with --apply-drift)"]
        plan, outcome, lines = run(provider, smaller, apply_drift=True)
        assert [a.summary for a in plan.actions] == ["set cores 8 -> 12 (at next boot)"]
        # A running VM without cpu hotplug: the change waits for its next boot (pending).
        g = sim.guest(1002)
        assert outcome.ok and g.config["cores"] == 8 and g.pending == {"cores": 12} and g.status == "running"
        again = provider.plan(list(smaller.vms), apply_drift=True)
        assert again.empty and again.warnings == [
            "drphoenix (vmid 1002): pending until its next reboot (Proxmox holds it; not drift): cores 8 -> 12"]


def test_a_vmid_that_is_another_vm_is_refused_and_never_touched(cert, key):
    other = SimGuest.recorded("qemu_config_1002_drphoenix.json", 1002, status="running")
    other.config["name"] = "someone-else"
    with ProxmoxApiSimulator(cert=cert, guests=[other]) as sim:
        config, provider = provider_for(sim, key)
        plan, outcome, _ = run(provider, config)
        assert [b.subject.name for b in plan.blocked] == ["drphoenix"] and "someone-else" in plan.blocked[0].reason
        assert not outcome.ok and [b.subject.name for b in outcome.blocked] == ["drphoenix"]
        assert not [c for c in sim.mutating_calls() if "/1002/" in c.path or c.params.get("newid") == "1002"]
        assert sim.guest(1001).status == "running"  # the other VM converged


def test_a_failed_start_is_named_with_its_step_and_the_other_vm_converges(cert, key):
    with ProxmoxApiSimulator(cert=cert) as sim:
        config, provider = provider_for(sim, key)
        sim.fail_next("qmstart", "start failed: QEMU exited with code 1")
        _, outcome, _ = run(provider, config)
        [(failed_vm, message)] = outcome.failed
        up = {1001, 1002} - {failed_vm.vmid}
        assert message.startswith("start: task UPID:phoenix:") and message.endswith("QEMU exited with code 1")
        assert [sim.guest(v).status for v in up] == ["running"]
        assert sim.guest(failed_vm.vmid).status == "stopped"
        _, again, _ = run(provider, config)  # the fault is gone: the next run converges
        assert again.ok and [v.vmid for v in again.started] == [failed_vm.vmid]


def test_a_vm_locked_by_another_task_is_waited_for_before_the_plan(cert, key):
    with ProxmoxApiSimulator(cert=cert) as sim:
        config, provider = provider_for(sim, key)
        run(provider, config, [vm(config, 1001)])
        sim.lock_externally(1001, "backup", polls=3)
        lines = []
        plan = provider.plan(list(config.vms), report=lines.append)
        assert not plan.blocked and [a.target.vmid for a in plan.actions][0] == 1002
        assert any(line.startswith("portainer (vmid 1001): locked (backup): waiting for task") for line in lines)


def test_a_clone_lock_timeout_is_retried_and_converges(cert, key):
    with ProxmoxApiSimulator(cert=cert) as sim:
        config, provider = provider_for(sim, key)
        sim.fail_next("qmclone", "can't lock file '/var/lock/qemu-server/lock-9000.conf' - got timeout")
        _, outcome, lines = run(provider, config, [vm(config, 1001)])
        assert outcome.ok and any("clone: lock timeout; trying again" in line for line in lines)
        assert len([c for c in sim.mutating_calls() if c.path.endswith("/clone")]) == 2


def test_the_token_and_the_key_are_read_before_anything_connects(cert, key, tmp_path):
    with ProxmoxApiSimulator(cert=cert) as sim:
        config = config_for(sim, key)
        with pytest.raises(TokenMissing, match="PHOENIX_PROXMOX_API_TOKEN .* is not set"):
            ProxmoxProvider(config, environ={})
        missing = dataclasses.replace(config, hypervisor=dataclasses.replace(
            config.hypervisor, vm_access=dataclasses.replace(config.hypervisor.vm_access,
                                                             private_key_file=tmp_path / "nope")))
        with pytest.raises(KeyMissing, match="nope does not exist"):
            ProxmoxProvider(missing, environ=sim.token_environ())
        assert sim.sent == []


def test_the_public_key_comes_from_the_pub_file_or_the_private_key(key, tmp_path):
    pub = (key.parent / "id.pub").read_text().split()[:2]
    assert public_key(key).split()[:2] == pub
    lone = tmp_path / "lone"
    lone.write_bytes(key.read_bytes())
    assert public_key(lone).split() == pub  # derived: no comment


def test_stop_and_destroy_refuse_and_say_what_to_do(cert, key):
    with ProxmoxApiSimulator(cert=cert) as sim:
        config, provider = provider_for(sim, key)
        with pytest.raises(PhoenixError, match="Phoenix does not stop Proxmox VMs: run `qm shutdown 1001`"):
            provider.stop(vm(config, 1001))
        with pytest.raises(PhoenixError, match="Phoenix does not delete Proxmox VMs"):
            provider.destroy(vm(config, 1001))
        assert sim.sent == []


def test_statuses_say_where_each_vm_runs_and_what_differs(cert, key):
    with ProxmoxApiSimulator(cert=cert) as sim:
        config, provider = provider_for(sim, key)
        run(provider, config, [vm(config, 1001)])
        statuses = {s.vm.vmid: s for s in provider.statuses(list(config.vms))}
        assert (statuses[1001].up, statuses[1001].detail) == (True, "node phoenix")
        assert (statuses[1002].exists, statuses[1002].detail) == (False, "does not exist")
        assert statuses[9000].exists and not statuses[9000].running and "template" in statuses[9000].detail


def on_node2(config, vmid=1002):
    return dataclasses.replace(config, vms=tuple(
        dataclasses.replace(v, proxmox_node="phoenix2") if v.vmid == vmid else v for v in config.vms))


def test_on_a_cluster_a_vm_is_cloned_to_its_node_and_configured_there(cert, key):
    template = SimGuest.recorded("qemu_config_9000_template.json", 9000)
    for disk in ("scsi0", "ide2"):  # a template on shared storage (a clone to another node needs it)
        template.config[disk] = template.config[disk].replace("local-lvm:", "ceph:")
    with ProxmoxApiSimulator(cert=cert, nodes=("phoenix", "phoenix2"), guests=[template], seed_template=False,
                             storages={"local-lvm": False, "ceph": True}) as sim:
        config, provider = provider_for(sim, key, clone_storage="ceph")
        placed = on_node2(config)
        provider = ProxmoxProvider(placed, client=provider.client, timing=FAST)
        plan, outcome, _ = run(provider, placed)
        assert outcome.ok, (outcome.failed, outcome.pending)
        assert (sim.guest(1002).node, sim.guest(1001).node) == ("phoenix2", "phoenix")
        clone, *rest = [c for c in sim.mutating_calls() if "1002" in c.path or c.params.get("newid") == "1002"]
        assert (clone.path, clone.params["target"], clone.params["storage"]) == (
            "/nodes/phoenix/qemu/9000/clone", "phoenix2", "ceph")  # sent to the template's node
        assert rest and all(c.path.startswith("/nodes/phoenix2/qemu/1002/") for c in rest)
        statuses = {s.vm.vmid: s.detail for s in provider.statuses(list(placed.vms))}
        assert statuses[1002] == "node phoenix2"
        assert provider.plan(list(placed.vms)).empty


def test_a_clone_to_another_node_from_local_storage_fails_by_name_with_proxmox_reason(cert, key):
    with ProxmoxApiSimulator(cert=cert, nodes=("phoenix", "phoenix2")) as sim:
        config, provider = provider_for(sim, key)
        placed = on_node2(config)
        _, outcome, _ = run(ProxmoxProvider(placed, client=provider.client, timing=FAST), placed)
        [(vm_, message)] = outcome.failed
        assert vm_.vmid == 1002 and message == ("clone: POST /nodes/phoenix/qemu/9000/clone refused: HTTP 500: "
                                                "can't clone VM to node 'phoenix2' (VM uses local storage)")
        assert sim.guest(1001).status == "running" and sim.guest(1002) is None
