"""Placement constraints: parsing, and whether the configured VMs can satisfy them."""

from __future__ import annotations

import ipaddress

import pytest

from phoenix_tasks.docker.constraints import Constraint, first_unsatisfiable, parse
from phoenix_tasks.core.model import VM, NetworkConfig


def vm(name: str, role: str | None, **labels: str) -> VM:
    net = NetworkConfig(ipaddress.IPv4Interface("10.0.0.5/24"), ipaddress.IPv4Address("10.0.0.1"), ipaddress.IPv4Address("10.0.0.1"))
    return VM(vmid=1000, name=name, network=net, username="u", cores=1, memory_mb=512, disk_size_gb=1,
              swarm_role=role, node_labels=labels)


MANAGER = vm("portainer", "manager", zone="core")
GPU = vm("drphoenix", "worker", gpu="true", zone="compute")


@pytest.mark.parametrize("text, attribute, op, value", [
    ("node.labels.gpu == true", "labels.gpu", "==", "true"),
    ("node.labels.gpu==true", "labels.gpu", "==", "true"),
    ("  node.role != manager ", "role", "!=", "manager"),
    ("node.hostname == drphoenix", "hostname", "==", "drphoenix"),
    ("node.labels.com.thinkheads.zone == compute", "labels.com.thinkheads.zone", "==", "compute"),
    ("node.platform.os == linux", "platform.os", "==", "linux"),
])
def test_parse(text, attribute, op, value):
    assert parse(text) == Constraint(text, attribute, op, value)


@pytest.mark.parametrize("text", [
    "node.labels.gpu = true", "labels.gpu == true", "node.role ==", "node.role == manager worker", "", "node. == x",
])
def test_parse_refuses(text):
    assert parse(text) is None


def test_decidable_only_from_config_attributes():
    assert parse("node.role == manager").decidable()
    assert parse("node.hostname == x").decidable()
    assert parse("node.labels.gpu == true").decidable()
    assert not parse("node.platform.os == linux").decidable()
    assert not parse("node.engine.labels.x == y").decidable()
    assert not parse("node.id == abc").decidable()


@pytest.mark.parametrize("text, manager, gpu", [
    ("node.role == manager", True, False),
    ("node.role != manager", False, True),
    ("node.role == worker", False, True),
    ("node.hostname == drphoenix", False, True),
    ("node.labels.gpu == true", False, True),
    ("node.labels.gpu != true", True, False),  # a node without the label matches '!='
    ("node.labels.gpu == false", False, False),
    ("node.labels.zone == core", True, False),
    ("node.platform.os == windows", True, True),  # only the live node knows
])
def test_satisfied_by(text, manager, gpu):
    c = parse(text)
    assert (c.satisfied_by(MANAGER), c.satisfied_by(GPU)) == (manager, gpu)


def test_satisfiable_constraints_give_none():
    assert first_unsatisfiable([parse("node.labels.gpu == true"), parse("node.role == worker")], [MANAGER, GPU]) is None
    assert first_unsatisfiable([], [MANAGER]) is None


def test_a_constraint_no_vm_satisfies_is_named_alone():
    gpu, role = parse("node.labels.gpu == true"), parse("node.role == worker")
    cpu_worker = vm("cpuworker", "worker", gpu="false")
    assert first_unsatisfiable([role, gpu], [MANAGER, cpu_worker]) == (gpu,)
    assert first_unsatisfiable([role, gpu], [MANAGER]) == (role,)  # the first culprit


def test_constraints_satisfiable_only_apart_are_named_together():
    manager, gpu = parse("node.role == manager"), parse("node.labels.gpu == true")
    assert first_unsatisfiable([manager, gpu], [MANAGER, GPU]) == (manager, gpu)


def test_undecidable_constraints_are_never_blamed():
    assert first_unsatisfiable([parse("node.platform.os == plan9")], [MANAGER]) is None


def test_values_match_case_insensitively_label_keys_do_not():
    # As swarmkit: strings.EqualFold on values, the label key as written.
    assert parse("node.labels.gpu == TRUE").satisfied_by(GPU)
    assert parse("node.role == Manager").satisfied_by(MANAGER)
    assert not parse("node.labels.GPU == true").satisfied_by(GPU)
    assert parse("node.labels.GPU != true").satisfied_by(GPU)


def test_engine_labels_and_node_ip():
    engine = parse("engine.labels.storage == ssd")
    assert engine.attribute == "engine.labels.storage" and not engine.decidable()
    assert engine.satisfied_by(GPU)  # only the live engine knows: never flagged
    assert parse("node.ip == 10.0.0.0/24").satisfied_by(GPU)
    assert parse("node.ip == 10.0.0.5").satisfied_by(GPU)
    assert not parse("node.ip == 10.0.1.0/24").satisfied_by(GPU)
    assert parse("node.ip != 10.0.1.0/24").satisfied_by(GPU)
    assert first_unsatisfiable([parse("node.ip == 192.0.2.0/24")], [MANAGER, GPU])
