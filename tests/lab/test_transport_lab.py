"""The transport against real sshd: host-key policies, one connection per VM per run,
parallel fan-out with a result or an error per VM."""

from __future__ import annotations

import dataclasses
import subprocess

import pytest

from phoenix_tasks.core.model import VM
from phoenix_tasks.swarm import commands
from phoenix_tasks.core.transport import Transport, Unreachable, fabric_connection

pytestmark = pytest.mark.lab


def access(lab, **changes):
    return dataclasses.replace(lab.config.hypervisor.vm_access, **changes)


def test_strict_policy_with_the_lab_known_hosts(lab):
    with Transport(access(lab)) as t:
        results = t.each(lab.vms, lambda vm: t.run(vm, ["docker", "info", "--format", "{{.Name}}"], mutating=False))
    assert {name: r.stdout.strip() for name, r in results.items()} == {vm.name: vm.name for vm in lab.vms}


def test_one_connection_per_vm_per_run(lab):
    made = []

    def counting(vm, acc):
        made.append(vm.vmid)
        return fabric_connection(vm, acc)

    vm = lab.vms[0]
    with Transport(access(lab), connect=counting) as t:
        for _ in range(3):
            t.run(vm, commands.info(), mutating=False)
    assert made == [vm.vmid]
    assert len(t.log) == 3 and t.mutating_commands == []


def test_accept_new_records_unknown_hosts_then_strict_accepts_them(lab, tmp_path):
    known = tmp_path / "known_hosts"
    with Transport(access(lab, host_key_policy="accept-new", known_hosts_file=known)) as t:
        results = t.each(lab.vms, lambda vm: t.run(vm, ["true"], mutating=False))
    assert all(r.ok for r in results.values())
    lines = known.read_text().splitlines()
    assert sorted(line.split()[0] for line in lines) == sorted(vm.address for vm in lab.vms)
    with Transport(access(lab, host_key_policy="strict", known_hosts_file=known)) as t:
        assert t.run(lab.vms[0], ["true"], mutating=False).ok


def test_a_changed_host_key_is_refused_with_the_fix(lab, tmp_path):
    vm = lab.vms[1]
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(tmp_path / "other")], check=True)
    key_type, key = (tmp_path / "other.pub").read_text().split()[:2]
    known = tmp_path / "known_hosts"
    known.write_text(f"{vm.address} {key_type} {key}\n")
    for policy in ("strict", "accept-new"):
        with Transport(access(lab, host_key_policy=policy, known_hosts_file=known)) as t:
            with pytest.raises(Unreachable) as exc:
                t.run(vm, ["true"], mutating=False)
        message = str(exc.value)
        assert str(vm) in message and "changed" in message
        assert f"ssh-keygen -f {known} -R {vm.address}" in message
    assert known.read_text() == f"{vm.address} {key_type} {key}\n"  # never rewritten


def test_strict_without_known_hosts_file_says_so(lab, tmp_path):
    with Transport(access(lab, known_hosts_file=tmp_path / "missing")) as t:
        with pytest.raises(Unreachable) as exc:
            t.run(lab.vms[0], ["true"], mutating=False)
    assert "not found" in str(exc.value) and "strict" in str(exc.value)


def test_one_unreachable_vm_is_an_error_by_name_the_others_answer(lab):
    ghost_net = dataclasses.replace(lab.vms[0].network, ip=type(lab.vms[0].network.ip)(
        f"{lab.config.hypervisor.lab.subnet.network_address + 250}/{lab.config.hypervisor.lab.subnet.prefixlen}"))
    ghost = VM(vmid=4242, name="ghost", network=ghost_net, username="root", cores=1, memory_mb=256, disk_size_gb=1)
    with Transport(access(lab, connect_timeout_s=2)) as t:
        results = t.each([*lab.vms, ghost], lambda vm: t.run(vm, ["true"], mutating=False))
    assert isinstance(results["ghost"], Unreachable) and "ghost (vmid 4242)" in str(results["ghost"])
    assert all(results[vm.name].ok for vm in lab.vms)


def test_remote_failure_is_reported_not_raised_when_unchecked(lab):
    with Transport(access(lab)) as t:
        res = t.run(lab.vms[0], ["docker", "node", "ls"], mutating=False, check=False)
    assert not res.ok and "not a swarm manager" in res.stderr
