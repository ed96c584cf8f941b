"""Portainer's data follows its server (issue 21, item 10): the plan (pure, from the
deployed service as read) says when a role change moves the server to another node,
and which volumes are carried; the commands are exact argv.  The copy itself is
lab-tested (tests/lab/test_hardening_round2_lab.py)."""

from __future__ import annotations

import pytest

from phoenix_tasks import portainer, portainer_data
from phoenix_tasks.stack.facts import StackRead, parse_service

from swarm_recorded import lab_config

NS = "prod_portainer_service"
SERVER = f"{NS}_portainer"
VOLUME = f"{NS}_portainer_data"
IMAGE = "portainer/portainer-ce:2.21.4@sha256:" + "a" * 64


def deployed(pinned_to: str | None, mounts=None) -> StackRead:
    constraints = ["node.role == manager"] + ([f"node.hostname == {pinned_to}"] if pinned_to else [])
    service = {"ID": "svc1", "Spec": {"Name": SERVER, "Labels": {}, "TaskTemplate": {
        "ContainerSpec": {"Image": IMAGE, "Mounts": mounts if mounts is not None else [
            {"Type": "volume", "Source": VOLUME, "Target": "/data"},
            {"Type": "bind", "Source": "/var/run/docker.sock", "Target": "/var/run/docker.sock"}]},
        "Placement": {"Constraints": constraints}}, "Mode": {"Replicated": {"Replicas": 1}}}}
    return StackRead({SERVER: parse_service(service)})


def swapped(tmp_path):
    def swap(doc):
        doc["vms"][1]["swarm_role"] = "worker"  # portainer
        doc["vms"][3]["swarm_role"] = "manager"  # cpuworker
    return lab_config(tmp_path, swap)


def test_no_move_while_the_server_is_pinned_to_the_first_manager(tmp_path):
    config = lab_config(tmp_path)
    assert portainer.server_service(config) == SERVER and portainer.namespace(config) == NS
    assert portainer_data.plan_move(config, deployed("portainer"), SERVER, NS) is None
    assert portainer_data.plan_move(config, deployed(None), SERVER, NS) is None  # pinned to no node
    assert portainer_data.plan_move(config, StackRead({}), SERVER, NS) is None  # not deployed


def test_a_role_change_that_moves_the_server_carries_its_named_volumes(tmp_path):
    config = swapped(tmp_path)
    move = portainer_data.plan_move(config, deployed("portainer"), SERVER, NS)
    assert (move.old, move.new.name, move.volumes, move.image) == ("portainer", "cpuworker", (VOLUME,), IMAGE)
    assert move.old_vm is not None and move.old_vm.name == "portainer"
    assert move.summary() == (
        f"its server moves from portainer to cpuworker (the first configured manager): its data ({VOLUME}) is "
        "carried over: the server stopped, each volume copied from portainer to cpuworker through this machine "
        "and verified; nothing is deleted on portainer")


def test_data_on_a_node_no_vm_is_cannot_be_carried(tmp_path):
    config = lab_config(tmp_path)
    move = portainer_data.plan_move(config, deployed("oldbox"), SERVER, NS)
    assert move.old_vm is None and "no configured VM is oldbox" in move.summary()
    with pytest.raises(portainer_data.DataMoveFailed, match="cannot be carried over"):
        portainer_data.carry(None, move, None)  # refused before any command


def test_commands_are_exact_argv():
    assert portainer_data.scale_argv(SERVER, 0) == ["docker", "service", "scale", "--detach", f"{SERVER}=0"]
    assert portainer_data.holder_argv(VOLUME, IMAGE) == [
        "docker", "container", "create", "--label", "io.phoenix.volume-copy=1", "--network", "none",
        "-v", f"{VOLUME}:/v", "--", IMAGE]
    assert portainer_data.cp_out_argv("c1") == ["docker", "cp", "c1:/v/.", "-"]
    assert portainer_data.cp_in_argv("c2") == ["docker", "cp", "-", "c2:/v"]
    assert portainer_data.volume_create_argv(VOLUME, NS) == [
        "docker", "volume", "create", "--label", f"com.docker.stack.namespace={NS}", "--", VOLUME]
    assert portainer_data.volume_rm_argv(VOLUME) == ["docker", "volume", "rm", "--", VOLUME]
    assert portainer_data.running_tasks_argv(SERVER) == [
        "docker", "service", "ps", "-q", "--filter", "desired-state=running", "--", SERVER]
