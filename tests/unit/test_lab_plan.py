"""Planning one VM from recorded facts (pure): a VM that is there yields nothing."""

from __future__ import annotations

import dataclasses
import ipaddress
import json
from pathlib import Path

from phoenix_tasks.lab import commands, keys, vm as labvm
from phoenix_tasks.lab.images import StandIn
from phoenix_tasks.lab.naming import LabNames
from phoenix_tasks.core.model import VM, NetworkConfig

NAMES = LabNames("phxlab0", Path("/var/lib/phoenix-lab"))
VM1 = VM(vmid=1001, name="portainer", username="root", cores=1, memory_mb=1024,
         disk_size_gb=8, network=NetworkConfig(ipaddress.IPv4Interface("198.18.42.11/24"),
                                               ipaddress.IPv4Address("198.18.42.1"),
                                               ipaddress.IPv4Address("198.18.42.1")))
V = NAMES.vm(1001)
DAEMON_JSON = json.dumps(commands.daemon_config(V, 20, "198.18.42.1:5000"), indent=2) + "\n"
DESIRED = labvm.Desired(VM1, "phxlab0", 22,
                        keys.sshd_config_text(V, VM1, 22, "root", NAMES.authorized_keys),
                        DAEMON_JSON)
RUNNING = labvm.Facts(netns=True, veth=True, veth_master="phxlab0",
                      addresses=("198.18.42.11/24",), eth0_up=True, lo_up=True,
                      gateway="198.18.42.1", host_key=True, sshd_config=DESIRED.sshd_config,
                      daemon_json=DAEMON_JSON, dockerd_pid=4242, engine_name="portainer", sshd_pid=4343,
                      sshd_listening=True)
NOTHING = labvm.Facts(netns=False, veth=False, veth_master=None, addresses=(), eth0_up=False,
                      lo_up=False, gateway=None, host_key=False, sshd_config=None,
                      daemon_json=None, dockerd_pid=None, engine_name=None, sshd_pid=None, sshd_listening=False)


def steps(facts):
    return list(dict.fromkeys(a.kind for a in labvm.plan(V, DESIRED, facts)))


def test_a_running_vm_needs_nothing():
    assert labvm.plan(V, DESIRED, RUNNING) == []


def test_a_new_vm_gets_every_step_in_order():
    assert steps(NOTHING) == ["network", "host-key", "sshd-config", "dockerd-start", "sshd-start"]
    network = [a for a in labvm.plan(V, DESIRED, NOTHING) if a.kind == "network"]
    assert network[0].argv == ("ip", "netns", "add", V.netns)
    assert len(network) == 7 and all(a.where.name == "local" for a in network)


def test_a_dead_dockerd_is_started_and_nothing_else():
    assert steps(dataclasses.replace(RUNNING, dockerd_pid=None, engine_name=None)) == \
        ["dockerd-start"]


def test_an_engine_with_the_wrong_hostname_is_restarted():
    plan = labvm.plan(V, DESIRED, dataclasses.replace(RUNNING, engine_name="oldname"))
    assert [a.kind for a in plan] == ["dockerd-restart"]
    assert "'oldname'" in plan[0].summary


def test_a_changed_daemon_json_restarts_dockerd_and_nothing_else():
    # e.g. a lab brought up before the registry: its engines have no mirror yet.
    old = json.dumps({"deprecated-key-path": str(V.trust_key)}, indent=2) + "\n"
    plan = labvm.plan(V, DESIRED, dataclasses.replace(RUNNING, daemon_json=old))
    assert [a.kind for a in plan] == ["dockerd-restart"]
    assert plan[0].summary == "portainer (vmid 1001): restart dockerd (pid 4242 daemon.json changed)"
    assert plan[0].argv == tuple(commands.in_vm(V, "portainer", commands.dockerd(V)))
    # A dead engine is started (with the new file) once, not started and restarted.
    assert steps(dataclasses.replace(RUNNING, daemon_json=old, dockerd_pid=None,
                                     engine_name=None)) == ["dockerd-start"]


def test_changed_sshd_config_rewrites_and_restarts_sshd():
    assert steps(dataclasses.replace(RUNNING, sshd_config="old")) == \
        ["sshd-config", "sshd-restart"]


def test_a_lost_default_route_is_put_back_alone():
    (action,) = labvm.plan(V, DESIRED, dataclasses.replace(RUNNING, gateway=None))
    assert action.argv == ("ip", "-n", V.netns, "route", "replace", "default", "via",
                           "198.18.42.1", "dev", "eth0")


def test_a_link_taken_down_is_set_up_and_the_healthy_sshd_is_not_restarted():
    # `ip link set <veth> down` on the host end: the VM's sshd no longer answers on
    # its address, but it is fine; the link is the fault.
    cut = dataclasses.replace(RUNNING, veth_up=False, sshd_listening=False)
    plan = labvm.plan(V, DESIRED, cut)
    assert [(a.kind, a.argv) for a in plan] == [("network", ("ip", "link", "set", "dev", V.veth, "up"))]
    assert plan[0].summary == f"portainer (vmid 1001): network: link {V.veth} was down: set it up"
    # an sshd that does not answer with the network fine is restarted, as before
    assert [a.kind for a in labvm.plan(V, DESIRED, dataclasses.replace(RUNNING, sshd_listening=False))] == [
        "sshd-restart"]


def test_sshd_config_listens_on_the_vm_only_key_only_with_its_engine():
    text = DESIRED.sshd_config
    for line in ("ListenAddress 198.18.42.11", "PasswordAuthentication no",
                 "PermitRootLogin prohibit-password", f"HostKey {V.host_key}",
                 f"PidFile {V.sshd_pidfile}",
                 f"SetEnv DOCKER_HOST=unix://{V.socket} DOCKER_CONFIG={V.docker_client_dir}"):
        assert line + "\n" in text


def test_known_hosts_lines_use_brackets_for_other_ports():
    assert keys.known_hosts_line("198.18.42.11", 22, "ssh-ed25519 AAAA") == \
        "198.18.42.11 ssh-ed25519 AAAA\n"
    assert keys.known_hosts_line("198.18.42.11", 2222, "ssh-ed25519 AAAA") == \
        "[198.18.42.11]:2222 ssh-ed25519 AAAA\n"


# --- stand-in images on a VM: pulled from the lab registry, by digest -------------------
STAND_INS = [StandIn("portainer/agent:2.21.4", (9001,)),
             StandIn("busybox:1.36", ()),
             StandIn("ghcr.io/acme/tool:1", (80,))]
DIGESTS = {"portainer/agent:2.21.4": "sha256:" + "a" * 64, "busybox:1.36": "sha256:" + "b" * 64}


def test_stand_ins_missing_on_a_vm_are_pulled_by_their_real_names_or_imported():
    actions = labvm.image_actions(V, VM1, STAND_INS, {}, DIGESTS)
    assert [(a.kind, a.argv) for a in actions] == [
        ("image-pull", ("docker", "--host", V.docker_host, "pull", "portainer/agent:2.21.4")),
        ("image-pull", ("docker", "--host", V.docker_host, "pull", "busybox:1.36")),
        # not a Docker Hub name: no mirror serves it, so the VM imports it itself
        ("image", tuple(commands.rootfs_import(V, "ghcr.io/acme/tool:1",
                                               STAND_INS[2].changes()))),
    ]
    assert actions[0].summary == \
        "portainer (vmid 1001): pull stand-in image portainer/agent:2.21.4 (lab registry)"


def test_stand_ins_with_the_registrys_digest_are_not_pulled_again():
    present = {"portainer/agent:2.21.4": frozenset({"portainer/agent@" + DIGESTS["portainer/agent:2.21.4"]}),
               "busybox:1.36": frozenset({"busybox@" + DIGESTS["busybox:1.36"]}),
               "ghcr.io/acme/tool:1": frozenset()}
    assert labvm.image_actions(V, VM1, STAND_INS, present, DIGESTS) == []


def test_a_stand_in_whose_tag_moved_in_the_registry_is_pulled_again():
    present = {"portainer/agent:2.21.4": frozenset({"portainer/agent@sha256:" + "0" * 64}),
               # imported before the lab had a registry: no RepoDigest at all
               "busybox:1.36": frozenset(),
               "ghcr.io/acme/tool:1": frozenset()}
    assert [a.argv[-1] for a in labvm.image_actions(V, VM1, STAND_INS, present, DIGESTS)] == \
        ["portainer/agent:2.21.4", "busybox:1.36"]


def test_the_same_digest_under_the_registrys_own_name_does_not_count():
    present = {"portainer/agent:2.21.4": frozenset(
        {"198.18.42.1:5000/portainer/agent@" + DIGESTS["portainer/agent:2.21.4"]})}
    assert [a.argv[-1] for a in labvm.image_actions(V, VM1, STAND_INS[:1], present, DIGESTS)] == \
        ["portainer/agent:2.21.4"]
