"""Reads get their own, shorter deadline (issue 21, item 8): a command that only reads
(facts, status, envs, history, diff) waits `vm_access.read_timeout_s` (default 15 s,
never more than `command_timeout_s`); a command that changes something keeps
`command_timeout_s`; a step that gives its own deadline keeps it."""

import pytest
from invoke import Result

from phoenix_tasks.config import load_config, validate
from phoenix_tasks.core.transport import Transport

from swarm_recorded import lab_config
from test_config_model import _tree


class Recorder:
    def __init__(self):
        self.timeouts = []

    def connect(self, host, access):
        return self

    def run(self, command, **kw):
        self.timeouts.append(kw["timeout"])
        return Result(command=command, stdout="", exited=0)

    def close(self):
        pass


def test_reads_wait_the_read_deadline_writes_the_command_deadline(tmp_path):
    config = lab_config(tmp_path)
    access = config.hypervisor.vm_access
    assert (access.read_timeout_s, access.command_timeout_s) == (15.0, 60.0)  # the defaults
    vm = config.real_vms[0]
    rec = Recorder()
    t = Transport(access, connect=rec.connect)
    t.run(vm, ["docker", "info"], mutating=False)
    t.run(vm, ["docker", "node", "update", "--", "x"], mutating=True)
    t.run(vm, ["docker", "stack", "deploy"], mutating=True, timeout=300)
    t.run(vm, ["docker", "pull"], mutating=False, timeout=120)
    assert rec.timeouts == [15.0, 60.0, 300.0, 120.0]


def test_a_read_never_waits_longer_than_a_write(tmp_path):
    import dataclasses
    access = dataclasses.replace(lab_config(tmp_path).hypervisor.vm_access, command_timeout_s=10.0)
    assert (access.deadline(mutating=False), access.deadline(mutating=True)) == (10.0, 10.0)


def test_read_timeout_is_configured_in_vm_access(tmp_path):
    root = _tree(tmp_path, {"file": "etc/phoenix_hypervisor_config.json", "op": "set",
                            "pointer": "/vm_access/read_timeout_s", "value": 2.5})
    assert load_config(root / "etc", root / "stacks").hypervisor.vm_access.read_timeout_s == 2.5


@pytest.mark.parametrize("value", [0, -1, 3601, "15", True])
def test_a_read_timeout_out_of_range_is_refused(tmp_path, value):
    root = _tree(tmp_path, {"file": "etc/phoenix_hypervisor_config.json", "op": "set",
                            "pointer": "/vm_access/read_timeout_s", "value": value})
    config, problems = validate(root / "etc", root / "stacks")
    assert config is None
    assert any("/vm_access/read_timeout_s" in p.render() for p in problems)
