"""Cluster writes during a Raft transition (issue 21, item 9): one retry helper
(swarm/raft.py) serves promote/demote and the deploy lock's `docker config create`
(the first write after a manager swap, which failed with DeadlineExceeded); after role
changes the apply waits until a manager lists a leader with quorum."""

from __future__ import annotations

import json

import pytest
from invoke import Result

from phoenix_tasks.core.errors import PhoenixError
from phoenix_tasks.stack.lock import L_TOKEN, lock_name
from phoenix_tasks.swarm import commands, raft
from phoenix_tasks.core.transport import CommandResult, RemoteCommandFailed

from swarm_recorded import lab_config, nodes
from test_stack_lock import NS, FakeSwarm, Clock, make_lock

BUSY = "Error response from daemon: rpc error: code = DeadlineExceeded desc = context deadline exceeded"
LOST = ("Error response from daemon: rpc error: code = Unknown desc = raft: failed to process the request: "
        "node lost leader status")


class Host:
    name = "portainer"


def failing(times: int, message: str = BUSY, then="done"):
    calls = []

    def write():
        calls.append(1)
        if len(calls) <= times:
            raise RemoteCommandFailed(Host(), "docker config create", 1, message)
        return then
    return write, calls


def test_busy_answers_are_retried_with_backoff_then_succeed():
    write, calls = failing(2)
    slept = []
    assert raft.retry_while_busy(write, sleep=slept.append) == "done"
    assert len(calls) == 3 and slept == [2.0, 4.0]


def test_a_busy_write_that_landed_is_not_sent_again():
    write, calls = failing(1, LOST)
    assert raft.retry_while_busy(write, landed=lambda: True, sleep=lambda s: None) is None
    assert len(calls) == 1


def test_bounded_and_other_failures_are_final():
    write, calls = failing(10)
    with pytest.raises(RemoteCommandFailed):
        raft.retry_while_busy(write, sleep=lambda s: None)
    assert len(calls) == len(raft.RETRIES) + 1
    write, calls = failing(1, "Error response from daemon: no such node")
    with pytest.raises(RemoteCommandFailed):
        raft.retry_while_busy(write, sleep=lambda s: None)
    assert len(calls) == 1


class Lists:
    """A transport whose node list answers from a list, in turn (the last repeated)."""

    def __init__(self, answers):
        self.answers = list(answers)
        self.asked = []

    def run(self, host, argv, *, mutating, quiet=False, **kw):
        assert list(argv) == commands.inspect_nodes() and not mutating
        self.asked.append(host.name)
        out = self.answers.pop(0) if len(self.answers) > 1 else self.answers[0]
        if isinstance(out, Exception):
            raise out
        return CommandResult(host, "node list", 0, out, "")


def no_leader(by_name):
    by_name["portainer"]["ManagerStatus"]["Leader"] = False


def test_wait_for_leader_polls_until_a_leader_with_quorum(tmp_path):
    config = lab_config(tmp_path)
    manager = next(vm for vm in config.vms if vm.name == "portainer")
    worker_now = RemoteCommandFailed(manager, "node list", 1, "This node is not a swarm manager.")
    t = Lists([worker_now, json.dumps(nodes(no_leader)), json.dumps(nodes())])
    slept = []
    assert raft.wait_for_leader(t, [manager], sleep=slept.append) == "portainer"
    assert len(t.asked) == 3 and slept == [0.5, 0.5]


def test_wait_for_leader_names_what_it_saw_past_the_deadline(tmp_path):
    config = lab_config(tmp_path)
    manager = next(vm for vm in config.vms if vm.name == "portainer")
    now = [0.0]

    def sleep(s):
        now[0] += s
    with pytest.raises(PhoenixError, match=r"no leader that takes writes 3 s after the role changes "
                                           r"\(portainer \(vmid 1001\) lists no leader, 1 manager, reachable\)"):
        raft.wait_for_leader(Lists([json.dumps(nodes(no_leader))]), [manager], timeout_s=3, sleep=sleep,
                             clock=lambda: now[0])


class BusySwarm(FakeSwarm):
    """The first `docker config create` answers DeadlineExceeded; `land`: it landed anyway."""

    def __init__(self, land: bool):
        super().__init__()
        self.land, self.busy_once = land, True

    def run(self, command, **kw):
        if self.busy_once and command.startswith("docker config create"):
            self.busy_once = False
            if self.land:
                super().run(command, **kw)
            else:
                self.commands.append(command.split())
            return Result(stderr=BUSY + "\n", exited=1)
        return super().run(command, **kw)


@pytest.mark.parametrize("land", [False, True])
def test_the_deploy_lock_survives_a_busy_raft(land):
    swarm = BusySwarm(land)
    clock = Clock(swarm)
    lk, reports, _ = make_lock(swarm, clock)
    held = lk.acquire()
    assert held.generation == 1 and lk.held is not None
    assert swarm.lock_names() == [lock_name(NS, 1)]
    assert swarm.configs[lock_name(NS, 1)]["labels"][L_TOKEN] == lk.token
    creates = [c for c in swarm.commands if c[:3] == ["docker", "config", "create"]]
    assert len(creates) == (1 if land else 2)  # one that landed is not sent again
    assert clock.slept == [2.0]
