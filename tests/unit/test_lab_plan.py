"""Planning one VM from recorded facts (pure): a VM that is there yields nothing."""

from __future__ import annotations

import dataclasses
import ipaddress
from pathlib import Path

from phoenix_tasks.lab import keys, vm as labvm
from phoenix_tasks.lab.naming import LabNames
from phoenix_tasks.model import VM, NetworkConfig

NAMES = LabNames("phxlab0", Path("/var/lib/phoenix-lab"))
VM1 = VM(vmid=1001, name="portainer", username="root", cores=1, memory_mb=1024,
         disk_size_gb=8, network=NetworkConfig(ipaddress.IPv4Interface("198.18.42.11/24"),
                                               ipaddress.IPv4Address("198.18.42.1"),
                                               ipaddress.IPv4Address("198.18.42.1")))
V = NAMES.vm(1001)
DESIRED = labvm.Desired(VM1, "phxlab0", 22,
                        keys.sshd_config_text(V, VM1, 22, "root", NAMES.authorized_keys))
RUNNING = labvm.Facts(netns=True, veth=True, veth_master="phxlab0",
                      addresses=("198.18.42.11/24",), eth0_up=True, lo_up=True,
                      gateway="198.18.42.1", host_key=True, sshd_config=DESIRED.sshd_config,
                      dockerd_pid=4242, engine_name="portainer", sshd_pid=4343,
                      sshd_listening=True)
NOTHING = labvm.Facts(netns=False, veth=False, veth_master=None, addresses=(), eth0_up=False,
                      lo_up=False, gateway=None, host_key=False, sshd_config=None,
                      dockerd_pid=None, engine_name=None, sshd_pid=None, sshd_listening=False)


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


def test_changed_sshd_config_rewrites_and_restarts_sshd():
    assert steps(dataclasses.replace(RUNNING, sshd_config="old")) == \
        ["sshd-config", "sshd-restart"]


def test_a_lost_default_route_is_put_back_alone():
    (action,) = labvm.plan(V, DESIRED, dataclasses.replace(RUNNING, gateway=None))
    assert action.argv == ("ip", "-n", V.netns, "route", "replace", "default", "via",
                           "198.18.42.1", "dev", "eth0")


def test_sshd_config_listens_on_the_vm_only_key_only_with_its_engine():
    text = DESIRED.sshd_config
    for line in ("ListenAddress 198.18.42.11", "PasswordAuthentication no",
                 "PermitRootLogin prohibit-password", f"HostKey {V.host_key}",
                 f"PidFile {V.sshd_pidfile}", f"SetEnv DOCKER_HOST=unix://{V.socket}"):
        assert line + "\n" in text


def test_known_hosts_lines_use_brackets_for_other_ports():
    assert keys.known_hosts_line("198.18.42.11", 22, "ssh-ed25519 AAAA") == \
        "198.18.42.11 ssh-ed25519 AAAA\n"
    assert keys.known_hosts_line("198.18.42.11", 2222, "ssh-ed25519 AAAA") == \
        "[198.18.42.11]:2222 ssh-ed25519 AAAA\n"
