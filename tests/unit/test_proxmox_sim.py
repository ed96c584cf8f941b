"""ProxmoxApiSimulator (tests/proxmox_sim.py) through Phoenix's own HTTP client and API
builders, over real HTTPS on 127.0.0.1 (TLS verified against the simulator's
certificate); answers are parsed with Phoenix's fact parsers, proving the shapes are
the ones Phoenix reads."""

from __future__ import annotations

import http.client
import json
import re
import ssl
import subprocess
import threading
import time

import pytest

from phoenix_tasks.providers.proxmox import api
from phoenix_tasks.providers.proxmox import facts as pxfacts
from phoenix_tasks.providers.proxmox.http import Client
from phoenix_tasks.providers.proxmox.task_wait import ApiError, retry_lock_timeouts, wait_task
from phoenix_tasks.providers.proxmox.token import api_token

from proxmox_recorded import data
from proxmox_sim import ProxmoxApiSimulator, SimGuest, Sent, make_cert

LOCK_TIMEOUT = "can't lock file '/var/lock/qemu-server/lock-9000.conf' - got timeout"


@pytest.fixture(scope="module")
def cert(tmp_path_factory):
    return make_cert(tmp_path_factory.mktemp("pve-sim-cert"))


@pytest.fixture(scope="module")
def public_key(tmp_path_factory):
    d = tmp_path_factory.mktemp("key")
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "phoenix@control", "-f", str(d / "id")],
                   check=True, timeout=30)
    return (d / "id.pub").read_text().strip()


@pytest.fixture
def serve(cert):
    """A simulator; /cluster/resources always fresh unless the test sets a lag (the
    lag's own tests are in test_proxmox_live_host.py)."""
    def make(**kw):
        kw.setdefault("resources_lag_s", 0)
        return ProxmoxApiSimulator(cert=cert, **kw)
    return make


def client(sim, token_env=None) -> Client:
    s = sim.settings()
    return Client(s, api_token(s, token_env or sim.token_environ()), timeout_s=10)


def wait(c: Client, node: str, upid: str, timeout_s: float = 10):
    return wait_task(lambda: c.request(api.task_status(node, upid)), timeout_s=timeout_s, interval_s=0.01,
                     clock=time.monotonic, sleep=time.sleep)


def active_tasks(node: str, vmid: int) -> api.ApiCall:
    # Not among api's builders yet; the provider sends this call to find a lock's task.
    return api.ApiCall("GET", f"/nodes/{node}/tasks", (("vmid", str(vmid)), ("source", "active")))


def ci_params(public_key: str, ip: str = "10.0.0.102/24") -> dict:
    return {"ciuser": "phoenix_user", "sshkeys": api.encode_sshkeys(public_key + "\n"),
            "ipconfig0": f"ip={ip},gw=10.0.0.1", "nameserver": "10.0.0.13", "searchdomain": "phoenix.thinkheads.ai"}


def test_clone_lifecycle_locked_until_its_task_ends(serve):
    with serve() as sim:
        c = client(sim)
        upid = c.request(api.clone("phoenix", 9000, 1002, "drphoenix", storage="local-lvm"))
        assert api.UPID.fullmatch(upid) and ":qmclone:9000:root@pam!phoenix:" in upid
        guests = pxfacts.parse_guests(c.request(api.cluster_vms()))
        assert (guests[1002].lock, guests[1002].status, guests[1002].node, guests[1002].template) == \
               ("clone", "stopped", "phoenix", False)
        during = pxfacts.parse_config(c.request(api.vm_config("phoenix", 1002)))
        assert during.lock == "clone" and during.name == "drphoenix"

        assert c.request(api.task_status("phoenix", upid))["status"] == "running"
        result = wait(c, "phoenix", upid)
        assert (result.ok, result.exitstatus, result.polls) == (True, "OK", 2)  # 2 running, then stopped

        after = pxfacts.parse_config(c.request(api.vm_config("phoenix", 1002)))
        assert after.lock is None and not after.template and after.name == "drphoenix"
        assert after.boot_disk == pxfacts.Disk("scsi0", "local-lvm:vm-1002-disk-0", 16.0)
        assert (after.cores, after.memory_mb) == (2, 2048)
        raw = c.request(api.vm_config("phoenix", 1002))
        assert raw["ide2"].startswith("local-lvm:vm-1002-cloudinit,") and raw["net0"] != data(
            "qemu_config_9000_template.json")["net0"]
        assert pxfacts.parse_guests(c.request(api.cluster_vms()))[1002].lock is None
        assert pxfacts.parse_config(c.request(api.vm_config("phoenix", 9000))).template


def test_answers_have_the_recorded_shapes(serve):
    with serve(guests=[SimGuest.recorded("qemu_config_1001_portainer.json", 1001, status="running")]) as sim:
        c = client(sim)
        upid = c.request(api.clone("phoenix", 9000, 1002, "drphoenix"))
        status = c.request(api.task_status("phoenix", upid))
        resources = c.request(api.cluster_vms())
        assert set(status) == set(data("task_status_running.json"))
        recorded = {r["vmid"]: r for r in data("cluster_resources_vm.json")}
        by_vmid = {r["vmid"]: r for r in resources}
        assert set(recorded[1001]) <= set(by_vmid[1001]) and set(recorded[9000]) <= set(by_vmid[9000])
        assert by_vmid[1001]["tags"] == "manager;phoenix" and by_vmid[1001]["maxmem"] == 8589934592
        assert c.request(api.vm_config("phoenix", 1001)) == data("qemu_config_1001_portainer.json")
        wait(c, "phoenix", upid)
        assert set(c.request(api.task_status("phoenix", upid))) == set(data("task_status_ok.json"))


def test_config_on_a_cloning_vm_is_refused_with_its_lock_then_applied_when_its_task_ends(serve, public_key):
    with serve() as sim:
        c = client(sim)
        clone = c.request(api.clone("phoenix", 9000, 1002, "drphoenix"))
        with pytest.raises(ApiError) as err:
            c.request(api.set_config("phoenix", 1002, ci_params(public_key)))
        assert (err.value.status, err.value.reason, err.value.lock) == (500, "VM is locked (clone)", "clone")
        with pytest.raises(ApiError, match="lock-1002.conf' - got timeout"):
            c.request(api.regenerate_cloudinit("phoenix", 1002))  # takes the flock the clone holds
        assert wait(c, "phoenix", clone).ok

        upid = c.request(api.set_config("phoenix", 1002, ci_params(public_key)))
        assert ":qmconfig:1002:" in upid
        assert "ciuser" not in c.request(api.vm_config("phoenix", 1002))  # applied when the task ends
        assert wait(c, "phoenix", upid).ok
        raw = c.request(api.vm_config("phoenix", 1002))
        assert raw["sshkeys"] == api.encode_sshkeys(public_key + "\n")  # stored as sent
        ci = pxfacts.parse_config(raw).cloud_init
        assert (ci.ciuser, ci.sshkeys, dict(ci.ipconfig0)) == \
               ("phoenix_user", (public_key,), {"ip": "10.0.0.102/24", "gw": "10.0.0.1"})
        assert c.request(api.regenerate_cloudinit("phoenix", 1002)) is None
        assert sim.regenerations == {1002: 1}

        upid = c.request(api.set_config("phoenix", 1002, {"cores": "8", "memory": "32768", "tags": "worker;Phoenix"}))
        assert wait(c, "phoenix", upid).ok
        cfg = pxfacts.parse_config(c.request(api.vm_config("phoenix", 1002)))
        assert (cfg.cores, cfg.memory_mb, cfg.tags) == (8, 32768, frozenset({"phoenix", "worker"}))
        assert c.request(api.vm_config("phoenix", 1002))["tags"] == "phoenix;worker"


def test_sshkeys_must_be_url_encoded_and_real_keys(serve, public_key):
    with serve() as sim:
        c = client(sim)
        with pytest.raises(ApiError) as raw_key:
            c.request(api.set_config("phoenix", 9000, {"sshkeys": public_key}))
        assert raw_key.value.status == 400 and "sshkeys: invalid urlencoded string" in raw_key.value.reason
        with pytest.raises(ApiError, match="HTTP 500: SSH public key validation error"):
            c.request(api.set_config("phoenix", 9000, {"sshkeys": api.encode_sshkeys("ssh-ed25519 AAAAnotakey x\n")}))


def test_resize_grows_and_a_shrink_fails_inside_its_task(serve):
    with serve() as sim:
        c = client(sim)
        assert wait(c, "phoenix", c.request(api.clone("phoenix", 9000, 1002, "drphoenix"))).ok
        upid = c.request(api.resize("phoenix", 1002, "scsi0", 8))
        assert ":resize:1002:" in upid
        shrink = wait(c, "phoenix", upid)
        assert (shrink.ok, shrink.exitstatus) == (False, "shrinking disks is not supported")
        assert wait(c, "phoenix", c.request(api.resize("phoenix", 1002, "scsi0", 32))).ok
        raw = c.request(api.vm_config("phoenix", 1002))
        assert raw["scsi0"] == "local-lvm:vm-1002-disk-0,size=32G"
        assert pxfacts.parse_config(raw).boot_disk.size_gib == 32.0
        assert wait(c, "phoenix", c.request(api.resize("phoenix", 1002, "scsi0", 32))).ok  # same size: OK


def test_start_a_template_fails_a_clone_runs_and_a_second_start_fails(serve):
    with serve() as sim:
        c = client(sim)
        template = wait(c, "phoenix", c.request(api.start("phoenix", 9000)))
        assert (template.ok, template.exitstatus) == (False, "you can't start a vm if it's a template")
        clone = c.request(api.clone("phoenix", 9000, 1002, "drphoenix"))
        during = wait(c, "phoenix", c.request(api.start("phoenix", 1002)))
        assert during.exitstatus == "can't lock file '/var/lock/qemu-server/lock-1002.conf' - got timeout"
        assert during.lock_timeout
        assert wait(c, "phoenix", clone).ok
        assert wait(c, "phoenix", c.request(api.start("phoenix", 1002))).ok
        assert pxfacts.parse_guests(c.request(api.cluster_vms()))[1002].running
        again = wait(c, "phoenix", c.request(api.start("phoenix", 1002)))
        assert again.exitstatus == "VM 1002 already running"


def test_active_tasks_of_a_vmid_find_an_external_lock_holder(serve):
    portainer = SimGuest.recorded("qemu_config_1001_portainer.json", 1001, status="running")
    with serve(guests=[portainer]) as sim:
        c = client(sim)
        upid = sim.lock_externally(1001, "backup", polls=3)
        assert api.UPID.fullmatch(upid)
        with pytest.raises(ApiError) as err:
            c.request(api.set_config("phoenix", 1001, {"cores": "8"}))
        assert err.value.lock == "backup"
        listed = c.request(active_tasks("phoenix", 1001))
        assert [(t["upid"], t["type"], t["id"], t["status"], t["user"]) for t in listed] == \
               [(upid, "vzdump", "1001", "RUNNING", "root@pam")]
        assert c.request(active_tasks("phoenix", 9000)) == []
        result = wait(c, "phoenix", upid)
        assert (result.ok, result.polls) == (True, 4)
        assert pxfacts.parse_guests(c.request(api.cluster_vms()))[1001].lock is None
        assert c.request(active_tasks("phoenix", 1001)) == []


def test_a_clone_task_is_listed_under_its_source_vmid_not_the_new_one(serve):
    with serve() as sim:
        c = client(sim)
        upid = c.request(api.clone("phoenix", 9000, 1002, "drphoenix"))
        assert [t["upid"] for t in c.request(active_tasks("phoenix", 9000))] == [upid]
        assert c.request(active_tasks("phoenix", 1002)) == []  # as on Proxmox: the task's id is 9000


def test_a_wrong_or_missing_token_is_401(serve):
    with serve() as sim:
        wrong = {"PHOENIX_PROXMOX_API_TOKEN": "root@pam!phoenix=00000000-0000-0000-0000-000000000000"}
        with pytest.raises(ApiError) as err:
            client(sim, wrong).request(api.cluster_vms())
        assert (err.value.status, err.value.reason) == (401, "authentication failure")
        conn = http.client.HTTPSConnection("127.0.0.1", sim.port,
                                           context=ssl.create_default_context(cafile=str(sim.ca_file)))
        conn.request("GET", "/api2/json/cluster/resources?type=vm")
        r = conn.getresponse()
        assert (r.status, r.reason) == (401, "No ticket")
        assert len(sim.sent) == 2 and sim.guest(9000) is not None


def test_unknown_endpoints_and_delete_are_501(serve):
    with serve() as sim:
        c = client(sim)
        with pytest.raises(ApiError) as err:
            c.request(api.ApiCall("GET", "/version"))
        assert (err.value.status, err.value.reason) == (501, "not simulated: GET /version")
        conn = http.client.HTTPSConnection("127.0.0.1", sim.port,
                                           context=ssl.create_default_context(cafile=str(sim.ca_file)))
        conn.request("DELETE", "/api2/json/nodes/phoenix/qemu/9000",
                     headers={"Authorization": f"PVEAPIToken={sim.token_environ()['PHOENIX_PROXMOX_API_TOKEN']}"})
        r = conn.getresponse()
        assert (r.status, r.reason) == (501, "not simulated: DELETE /nodes/phoenix/qemu/9000")
        assert sim.guest(9000) is not None


def test_clone_refusals_are_http_500_before_any_task(serve):
    foreign = SimGuest(4242, {"name": "someone-elses-vm", "cores": 1, "memory": "1024"}, status="running")
    with serve(guests=[foreign], nodes=["phoenix", "phoenix2"]) as sim:
        c = client(sim)
        cases = [
            (api.clone("phoenix", 9000, 4242, "x"), "unable to create VM 4242: config file already exists"),
            (api.clone("phoenix", 9001, 1002, "x"), "Configuration file 'nodes/phoenix/qemu-server/9001.conf' does not exist"),
            (api.clone("phoenix2", 9000, 1002, "x"), "Configuration file 'nodes/phoenix2/qemu-server/9000.conf' does not exist"),
            (api.clone("phoenix", 9000, 1002, "x", target_node="phoenix2"),
             "can't clone VM to node 'phoenix2' (VM uses local storage)"),
            (api.clone("phoenix", 9000, 1002, "x", storage="nfs"), "storage 'nfs' does not exist"),
            (api.vm_config("phoenix9", 9000), "hostname lookup 'phoenix9' failed"),
        ]
        for call, reason in cases:
            with pytest.raises(ApiError) as err:
                c.request(call)
            assert err.value.status == 500 and err.value.reason.startswith(reason), call
        assert sim.tasks() == [] and sorted(pxfacts.parse_guests(c.request(api.cluster_vms()))) == [4242, 9000]


def test_a_clone_to_another_node_on_shared_storage_moves_there_when_it_ends(serve):
    template = SimGuest.recorded("qemu_config_9000_template.json", 9000)
    template.config["scsi0"] = "ceph:base-9000-disk-0,size=16G"
    template.config["ide2"] = "ceph:vm-9000-cloudinit,media=cdrom"
    with serve(seed_template=False, guests=[template], nodes=["phoenix", "phoenix2"],
               storages={"local-lvm": False, "ceph": True}) as sim:
        c = client(sim)
        upid = c.request(api.clone("phoenix", 9000, 1002, "drphoenix", target_node="phoenix2", storage="ceph"))
        assert pxfacts.parse_guests(c.request(api.cluster_vms()))[1002].node == "phoenix"  # written there first
        assert wait(c, "phoenix", upid).ok
        assert pxfacts.parse_guests(c.request(api.cluster_vms()))[1002].node == "phoenix2"
        cfg = pxfacts.parse_config(c.request(api.vm_config("phoenix2", 1002)))
        assert cfg.boot_disk.volume == "ceph:vm-1002-disk-0"
        with pytest.raises(ApiError, match="does not exist"):
            c.request(api.vm_config("phoenix", 1002))


def test_fault_injection_fail_next_and_delay(serve):
    with serve() as sim:
        c = client(sim)
        sim.fail_next("qmclone", LOCK_TIMEOUT)
        sim.delay("qmclone", 4)
        attempts = []

        def run_clone():
            attempts.append(c.request(api.clone("phoenix", 9000, 1002, "drphoenix")))
            return wait(c, "phoenix", attempts[-1])

        result = retry_lock_timeouts(run_clone, backoff_s=[0], sleep=lambda s: None)
        assert (result.ok, result.attempts, result.polls) == (True, 2, 5)
        assert [sim.task(u)["exitstatus"] for u in attempts] == [LOCK_TIMEOUT, "OK"]

        sim.fail_next("qmstart", "bridge 'vmbr9' does not exist")
        failed = wait(c, "phoenix", c.request(api.start("phoenix", 1002)))
        assert (failed.ok, failed.exitstatus) == (False, "bridge 'vmbr9' does not exist")
        assert sim.guest(1002).status == "stopped"
        assert wait(c, "phoenix", c.request(api.start("phoenix", 1002))).ok


def test_a_failed_clone_leaves_no_guest(serve):
    with serve() as sim:
        c = client(sim)
        sim.fail_next("qmclone", "clone failed: storage full")
        upid = c.request(api.clone("phoenix", 9000, 1002, "drphoenix"))
        assert sim.guest(1002).lock == "clone"
        assert wait(c, "phoenix", upid).exitstatus == "clone failed: storage full"
        assert sim.guest(1002) is None and 1002 not in pxfacts.parse_guests(c.request(api.cluster_vms()))


def test_the_start_hook_decides_the_start_task(serve):
    seen = []

    def hook(guest):
        seen.append(guest)
        if guest.vmid == 1003:
            raise RuntimeError("cloud-init: sshkeys lacks Phoenix's key: the guest would not accept it")

    with serve(on_start=hook) as sim:
        c = client(sim)
        for vmid in (1002, 1003):
            assert wait(c, "phoenix", c.request(api.clone("phoenix", 9000, vmid, f"vm{vmid}"))).ok
        ok = wait(c, "phoenix", c.request(api.start("phoenix", 1002)))
        bad = wait(c, "phoenix", c.request(api.start("phoenix", 1003)))
        assert ok.ok and (bad.ok, bad.exitstatus) == (False, "cloud-init: sshkeys lacks Phoenix's key: the guest "
                                                               "would not accept it")
        assert (sim.guest(1002).status, sim.guest(1003).status) == ("running", "stopped")
        assert [(g.vmid, g.name, g.node, g.config["name"]) for g in seen] == \
               [(1002, "vm1002", "phoenix", "vm1002"), (1003, "vm1003", "phoenix", "vm1003")]
        assert not wait(c, "phoenix", c.request(api.start("phoenix", 9000))).ok and len(seen) == 2


def test_a_slow_hook_keeps_the_task_running_without_blocking_other_requests(serve):
    release = threading.Event()
    with serve(on_start=lambda g: release.wait(10), polls=0, hook_wait_s=0.05) as sim:
        c = client(sim)
        assert wait(c, "phoenix", c.request(api.clone("phoenix", 9000, 1002, "drphoenix"))).ok
        upid = c.request(api.start("phoenix", 1002))
        assert c.request(api.task_status("phoenix", upid))["status"] == "running"
        assert c.request(api.cluster_vms())  # not blocked by the hook
        release.set()
        assert wait(c, "phoenix", upid).ok and sim.guest(1002).status == "running"


def test_parallel_clones_and_starts(serve):
    with serve() as sim:
        c = client(sim)
        results = {}

        def one(vmid):
            ok = wait(c, "phoenix", c.request(api.clone("phoenix", 9000, vmid, f"vm{vmid}"))).ok
            results[vmid] = ok and wait(c, "phoenix", c.request(api.start("phoenix", vmid))).ok

        threads = [threading.Thread(target=one, args=(vmid,)) for vmid in range(1001, 1009)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(30)
        assert results == {vmid: True for vmid in range(1001, 1009)}
        upids = [t["upid"] for t in sim.tasks()]
        assert len(upids) == len(set(upids)) == 16
        guests = pxfacts.parse_guests(c.request(api.cluster_vms()))
        assert all(guests[v].running and guests[v].lock is None for v in range(1001, 1009))


def test_recording_of_sent_calls(serve, public_key):
    foreign = SimGuest(4242, {"name": "someone-elses-vm"}, status="running")
    with serve(guests=[foreign]) as sim:
        c = client(sim)
        c.request(api.cluster_vms())
        upid = c.request(api.clone("phoenix", 9000, 1002, "drphoenix", storage="local-lvm"))
        wait(c, "phoenix", upid)
        wait(c, "phoenix", c.request(api.set_config("phoenix", 1002, ci_params(public_key))))
        c.request(api.regenerate_cloudinit("phoenix", 1002))
        assert sim.sent[0] == Sent("GET", "/cluster/resources", {"type": "vm"})
        assert sim.sent[1] == ("POST", "/nodes/phoenix/qemu/9000/clone",
                               {"newid": "1002", "name": "drphoenix", "full": "1", "storage": "local-lvm"})
        assert sim.sent[2].path == f"/nodes/phoenix/tasks/{upid}/status"  # unquoted
        assert [(s.method, s.path) for s in sim.mutating_calls()] == [
            ("POST", "/nodes/phoenix/qemu/9000/clone"), ("POST", "/nodes/phoenix/qemu/1002/config"),
            ("PUT", "/nodes/phoenix/qemu/1002/cloudinit")]
        assert sim.mutating_calls()[1].params["sshkeys"] == api.encode_sshkeys(public_key + "\n")
        assert [s.method for s in sim.calls_for(1002)] == ["POST", "POST", "PUT"]
        assert sim.calls_for(4242) == []
        assert all(re.fullmatch(r"/[a-z0-9/]+|/nodes/phoenix/tasks/UPID:[^/]+/status", s.path) for s in sim.sent)
        assert json.dumps(sim.tasks())  # plain data
