"""The Proxmox provider's facts, classification and plan, from recorded API answers
(tests/data/proxmox): every classification, the exact API calls of every action."""

from __future__ import annotations

import dataclasses

import pytest

from phoenix_tasks.providers.proxmox import api
from phoenix_tasks.providers.proxmox.classify import (
    DRIFTED, LIVE, LOCKED, MISSING, NEXT_BOOT, NOT_TEMPLATE, RUNNING, STOPPED, TEMPLATE, WRONG_NAME, classify,
)
from phoenix_tasks.providers.proxmox.facts import parse_config, parse_guests, parse_memory
from phoenix_tasks.providers.proxmox.plan import Options, calls_outside_config, plan_vms

from proxmox_recorded import PUBLIC_KEY, data, etc_config, guest, read, responses, without

KEY_ENC = api.encode_sshkeys(PUBLIC_KEY + "\n")
OPTS = Options(PUBLIC_KEY)


@pytest.fixture(scope="module")
def config():
    return etc_config()


def kinds(config, answers, key=PUBLIC_KEY):
    return {c.vm.name: c.kind for c in classify(config, read(config, answers), key).values()}


def calls(plan):
    return [(a.kind, a.target.name, a.call.method, a.call.path, a.call.params) for a in plan.actions]


def check_safe(plan, config):
    assert calls_outside_config(plan, config) == []
    assert all(a.call.method in ("POST", "PUT") for a in plan.actions)
    assert not any(a.kind == "start" and a.target.is_template for a in plan.actions)


# -- facts --------------------------------------------------------------------------

def test_guest_list_keeps_qemu_vms_only():
    guests = parse_guests(data("cluster_resources_vm.json"))
    assert sorted(guests) == [1001, 1002, 4242, 9000]  # lxc/300 left out
    assert (guests[9000].template, guests[1001].running, guests[1002].running) == (True, True, False)
    assert guests[1001].tags == {"manager", "phoenix"}


def test_config_parsed_memory_string_or_int_disk_and_cloud_init():
    p = parse_config(data("qemu_config_1001_portainer.json"))
    assert (p.cores, p.memory_mb, p.boot_disk.key, p.boot_disk.size_gib) == (4, 8192, "scsi0", 64)
    assert p.cloud_init.sshkeys == (PUBLIC_KEY,)  # URL-decoded
    assert dict(p.cloud_init.ipconfig0) == {"ip": "10.0.0.101/24", "gw": "10.0.0.1"}
    assert parse_config(data("qemu_config_1002_drphoenix.json")).memory_mb == 32768
    assert [parse_memory(v) for v in (2048, "2048", "current=2048")] == [2048] * 3
    t = parse_config(data("qemu_config_9000_template.json"))
    assert (t.template, t.boot_disk.size_gib, t.cloud_init.ciuser) == (True, 16, None)


def test_only_configured_vms_are_read(config):
    log = []
    read(config, responses(), log)
    assert [str(c) for c in log] == [  # never 4242; each configured VM live: config, status, pending
        "GET /cluster/resources type=vm",
        "GET /nodes/phoenix/qemu/9000/config", "GET /nodes/phoenix/qemu/9000/status/current",
        "GET /nodes/phoenix/qemu/1001/config", "GET /nodes/phoenix/qemu/1001/status/current",
        "GET /nodes/phoenix/qemu/1001/pending",
        "GET /nodes/phoenix/qemu/1002/config", "GET /nodes/phoenix/qemu/1002/status/current",
        "GET /nodes/phoenix/qemu/1002/pending"]


# -- classification and plan ----------------------------------------------------------

def test_converged_running_and_stopped(config):
    assert kinds(config, responses()) == {"ubuntu-2404-cloud-template": TEMPLATE, "portainer": RUNNING,
                                          "drphoenix": STOPPED}
    plan = plan_vms(config, read(config, responses()), OPTS)
    assert calls(plan) == [("start", "drphoenix", "POST", "/nodes/phoenix/qemu/1002/status/start", ())]
    assert plan.actions[0].call.returns_task and not plan.blocked and not plan.warnings
    check_safe(plan, config)


def test_all_running_plans_nothing(config):
    answers = responses(resources=lambda r: guest(r, 1002).update(status="running"))
    plan = plan_vms(config, read(config, answers), OPTS)
    assert plan.empty and not plan.blocked and not plan.warnings


def test_missing_vm_is_cloned_configured_and_started_in_order(config):
    answers = responses(resources=without(1002))
    assert kinds(config, answers)["drphoenix"] == MISSING
    plan = plan_vms(config, read(config, answers), OPTS)
    assert calls(plan) == [
        ("clone", "drphoenix", "POST", "/nodes/phoenix/qemu/9000/clone",
         (("newid", "1002"), ("name", "drphoenix"), ("full", "1"))),
        ("hardware", "drphoenix", "POST", "/nodes/phoenix/qemu/1002/config", (("cores", "8"), ("memory", "32768"))),
        ("resize", "drphoenix", "PUT", "/nodes/phoenix/qemu/1002/resize", (("disk", "scsi0"), ("size", "256G"))),
        ("cloud-init", "drphoenix", "POST", "/nodes/phoenix/qemu/1002/config",
         (("ciuser", "phoenix_user"), ("sshkeys", KEY_ENC), ("ipconfig0", "ip=10.0.0.102/24,gw=10.0.0.1"),
          ("nameserver", "10.0.0.13"), ("searchdomain", "phoenix.thinkheads.ai"))),
        ("regenerate", "drphoenix", "PUT", "/nodes/phoenix/qemu/1002/cloudinit", ()),
        ("tags", "drphoenix", "POST", "/nodes/phoenix/qemu/1002/config", (("tags", "phoenix;worker"),)),
        ("start", "drphoenix", "POST", "/nodes/phoenix/qemu/1002/status/start", ()),
    ]
    assert [a.phase for a in plan.actions] == ["clone", "hardware", "disk", "cloud-init", "cloud-init", "tags", "start"]
    assert [a.call.returns_task for a in plan.actions] == [True, True, True, True, False, True, True]
    assert plan.actions[0].summary == "full clone of ubuntu-2404-cloud-template (vmid 9000)"
    assert KEY_ENC.startswith("ssh-ed25519%20AAAA") and KEY_ENC.endswith("%0A")
    check_safe(plan, config)


def test_clone_to_another_node_and_storage(config):
    px = dataclasses.replace(config.hypervisor.proxmox, clone_storage="fast-zfs")
    vms = tuple(dataclasses.replace(vm, proxmox_node="pve2") if vm.vmid == 1002 else vm for vm in config.vms)
    cfg = dataclasses.replace(config, vms=vms, hypervisor=dataclasses.replace(config.hypervisor, proxmox=px))
    plan = plan_vms(cfg, read(cfg, responses(resources=without(1002))), OPTS)
    clone = plan.actions[0]
    assert clone.call.params == (("newid", "1002"), ("name", "drphoenix"), ("full", "1"),
                                 ("target", "pve2"), ("storage", "fast-zfs"))
    assert clone.call.path == "/nodes/phoenix/qemu/9000/clone"  # on the template's node
    assert clone.summary.endswith("to node pve2 on storage fast-zfs")
    assert {a.call.path.split("/")[2] for a in plan.actions[1:]} == {"pve2"}


def test_a_template_larger_than_the_configured_disk_is_a_warning_never_a_shrink(config):
    answers = responses(resources=without(1002),
                        template=lambda d: d.update(scsi0="local-lvm:base-9000-disk-0,size=300G"))
    plan = plan_vms(config, read(config, answers), OPTS)
    assert "resize" not in [a.kind for a in plan.actions]
    assert plan.warnings == ["drphoenix (vmid 1002): the template's disk is 300G, larger than disk_size_gb 256G: "
                             "the clone keeps the template's size (a disk is never shrunk)"]


def test_missing_template_blocks_the_clone(config):
    answers = responses(resources=lambda r: [x for x in r if x["vmid"] not in (9000, 1002)])
    plan = plan_vms(config, read(config, answers), OPTS)
    assert plan.empty
    [b] = plan.blocked
    assert b.subject.name == "drphoenix" and "template ubuntu-2404-cloud-template (vmid 9000) does not exist" in b.reason


def test_wrong_name_is_refused_and_untouched(config):
    # The name is read from the VM's config (live), not from the cluster view.
    answers = responses(resources=lambda r: guest(r, 1002).update(name="someone-else"),
                        drphoenix=lambda d: d.update(name="someone-else"))
    assert kinds(config, answers)["drphoenix"] == WRONG_NAME
    plan = plan_vms(config, read(config, answers), OPTS)
    assert plan.empty
    [b] = plan.blocked
    assert "named 'someone-else', not 'drphoenix'" in b.reason and "will not touch it" in b.reason


def test_a_configured_vm_that_is_a_template_on_proxmox_is_never_started(config):
    answers = responses(resources=lambda r: guest(r, 1002).update(template=1),
                        drphoenix=lambda d: d.update(template=1))
    assert kinds(config, answers)["drphoenix"] == TEMPLATE
    plan = plan_vms(config, read(config, answers), OPTS)
    assert plan.empty and "never starts a template" in plan.blocked[0].reason


def test_a_configured_template_that_is_an_ordinary_vm_is_refused(config):
    answers = responses(resources=lambda r: guest(r, 9000).update(template=0),
                        template=lambda d: {k: v for k, v in d.items() if k != "template"})
    assert kinds(config, answers)["ubuntu-2404-cloud-template"] == NOT_TEMPLATE
    plan = plan_vms(config, read(config, answers), OPTS)
    assert [a.kind for a in plan.actions] == ["start"]  # drphoenix exists; only a clone needs the template
    assert "clones only from templates" in plan.blocked[0].reason


def test_a_vm_locked_by_its_clone_is_blocked_for_this_run(config):
    answers = responses(resources=lambda r: guest(r, 1002).update(lock="clone"),
                        drphoenix=lambda d: data("qemu_config_1002_locked_clone.json"))
    assert kinds(config, answers)["drphoenix"] == LOCKED
    plan = plan_vms(config, read(config, answers), OPTS)
    assert plan.empty and plan.blocked[0].reason == "locked (clone) by a running task on node phoenix"


def both_running(resources):
    guest(resources, 1002).update(status="running")


def _drifted(d):
    d.update(cores=2, memory="4096", scsi0="local-lvm:vm-1001-disk-0,size=32G", ciuser="ubuntu",
             sshkeys="ssh-ed25519%20AAAAother%20someone%0A", ipconfig0="ip=10.0.0.199/24,gw=10.0.0.1,ip6=auto",
             nameserver="1.1.1.1", searchdomain="example.org", tags="phoenix;keep-me")


def test_drift_is_reported_each_field_and_when_it_would_apply(config):
    answers = responses(resources=both_running, portainer=_drifted)
    [c] = [c for c in classify(config, read(config, answers), PUBLIC_KEY).values() if c.vm.vmid == 1001]
    assert c.kind == DRIFTED and c.running
    assert [(d.field, d.actual, d.wanted, d.when) for d in c.drift] == [
        ("cores", "2", "4", NEXT_BOOT),
        ("memory", "4096 MiB", "8192 MiB", NEXT_BOOT),
        ("disk", "32G", "64G", LIVE),
        ("ciuser", "ubuntu", "phoenix_user", NEXT_BOOT),
        ("sshkeys", "1 key(s) without Phoenix's", "2 key(s)", NEXT_BOOT),
        ("ipconfig0", "ip=10.0.0.199/24,gw=10.0.0.1,ip6=auto", "ip=10.0.0.101/24,gw=10.0.0.1,ip6=auto", NEXT_BOOT),
        ("nameserver", "1.1.1.1", "10.0.0.13", NEXT_BOOT),
        ("searchdomain", "example.org", "phoenix.thinkheads.ai", NEXT_BOOT),
        ("tags", "keep-me;phoenix", "keep-me;manager;phoenix", LIVE),
    ]
    plan = plan_vms(config, read(config, answers), OPTS)
    assert plan.empty  # reported, not applied
    assert len(plan.warnings) == 9
    assert plan.warnings[0] == ("portainer (vmid 1001): drift: cores 2 -> 4 (applies at next boot); "
                                "not applied (run with --apply-drift)")


def test_apply_drift_plans_each_change_saying_live_or_next_boot(config):
    answers = responses(resources=both_running, portainer=_drifted)
    plan = plan_vms(config, read(config, answers), Options(PUBLIC_KEY, apply_drift=True))
    assert [(a.kind, a.summary) for a in plan.actions] == [
        ("hardware", "set cores 2 -> 4, memory 4096 MiB -> 8192 MiB (at next boot)"),
        ("resize", "grow scsi0 32G -> 64G (live)"),
        ("cloud-init", "set cloud-init ciuser, sshkeys, ipconfig0, nameserver, searchdomain (at next boot)"),
        ("regenerate", "regenerate the cloud-init drive"),
        ("tags", "tags keep-me;manager;phoenix (live)"),
    ]
    ci = plan.actions[2].call.param_map
    assert ci["sshkeys"] == api.encode_sshkeys("ssh-ed25519 AAAAother someone\n" + PUBLIC_KEY + "\n")  # kept, added
    assert ci["ipconfig0"] == "ip=10.0.0.101/24,gw=10.0.0.1,ip6=auto"
    assert plan.actions[1].call == api.ApiCall("PUT", "/nodes/phoenix/qemu/1001/resize",
                                               (("disk", "scsi0"), ("size", "64G")), returns_task=True)
    assert not plan.warnings
    check_safe(plan, config)


def test_hotplug_makes_cores_and_memory_live(config):
    answers = responses(portainer=lambda d: d.update(cores=2, hotplug="network,disk,cpu,memory"))
    [c] = [c for c in classify(config, read(config, answers), PUBLIC_KEY).values() if c.vm.vmid == 1001]
    assert [(d.field, d.when) for d in c.drift] == [("cores", LIVE)]


def test_a_drifted_stopped_vm_is_started_after_its_changes(config):
    answers = responses(drphoenix=lambda d: d.update(cores=2))
    plan = plan_vms(config, read(config, answers), Options(PUBLIC_KEY, apply_drift=True))
    assert calls(plan) == [
        ("hardware", "drphoenix", "POST", "/nodes/phoenix/qemu/1002/config", (("cores", "8"),)),
        ("start", "drphoenix", "POST", "/nodes/phoenix/qemu/1002/status/start", ())]
    assert plan_vms(config, read(config, answers), OPTS).actions[0].kind == "start"  # reported, still started


def test_a_larger_disk_than_configured_is_reported_never_shrunk(config):
    answers = responses(resources=both_running, portainer=lambda d: d.update(scsi0="local-lvm:vm-1001-disk-0,size=100G"))
    plan = plan_vms(config, read(config, answers), Options(PUBLIC_KEY, apply_drift=True))
    assert plan.empty
    assert plan.warnings == ["portainer (vmid 1001): disk 100G -> 64G (not changed by Phoenix: a disk is never "
                             "shrunk; raise disk_size_gb to match)"]


def test_a_vm_on_another_node_is_reported_and_called_where_it_is(config):
    answers = responses(resources=lambda r: guest(r, 1002).update(node="pve2"))
    answers["/nodes/pve2/qemu/1002/config"] = answers.pop("/nodes/phoenix/qemu/1002/config")
    plan = plan_vms(config, read(config, answers), OPTS)
    assert [a.call.path for a in plan.actions] == ["/nodes/pve2/qemu/1002/status/start"]
    assert "node pve2 -> phoenix (not changed by Phoenix: Phoenix does not migrate VMs" in plan.warnings[0]


def test_the_unlisted_vm_is_never_in_a_plan(config):
    answers = responses(resources=lambda r: [x for x in r if x["vmid"] != 1002] + [
        {**guest(r, 4242), "status": "stopped"}])
    plan = plan_vms(config, read(config, answers), Options(PUBLIC_KEY, apply_drift=True))
    assert all(a.call.vmid in (9000, 1002) for a in plan.actions)
    check_safe(plan, config)


def test_only_the_wanted_vms(config):
    answers = responses(resources=without(1002))
    plan = plan_vms(config, read(config, answers), Options(PUBLIC_KEY, vmids=frozenset({1001})))
    assert plan.empty


# -- API calls as data ------------------------------------------------------------------

def test_no_delete_and_no_path_injection():
    with pytest.raises(ValueError, match="never DELETE"):
        api.ApiCall("DELETE", "/nodes/phoenix/qemu/1001")
    for bad in ("pve/../../access", "phoenix; rm -rf /", "PVE", ""):
        with pytest.raises(ValueError):
            api.start(bad, 1001)
    for bad in (99, True, "1001"):
        with pytest.raises(ValueError):
            api.start("phoenix", bad)
    with pytest.raises(ValueError):
        api.task_status("phoenix", "UPID:x/../../")


def test_read_calls():
    assert str(api.cluster_vms()) == "GET /cluster/resources type=vm"
    upid = data("clone_response.json")
    # raw here; quoted on the wire by the HTTP client (test_proxmox_http)
    assert api.task_status("phoenix", upid).path == (
        "/nodes/phoenix/tasks/UPID:phoenix:000A1B2C:01F2E3D4:6650A1B2:qmclone:9000:root@pam!phoenix:/status")
