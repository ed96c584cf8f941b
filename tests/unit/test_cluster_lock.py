"""The cluster lock (a local flock per config directory) and the re-check before
`swarm init`: two runs at once never init twice, never advise a leave."""

import dataclasses
import os
import subprocess
import sys
import time

import pytest
from invoke import Result

from phoenix_tasks.core.local_lock import ClusterLockHeld, cluster_lock, lock_path
from phoenix_tasks.core.plan import Outcome, Plan
from phoenix_tasks.swarm import commands
from phoenix_tasks.swarm.apply import _run_phase
from phoenix_tasks.swarm.plan import Options, plan_phases
from phoenix_tasks.core.transport import Transport, shell_command

from swarm_recorded import CONVERGED, FRESH, facts, infos, lab_config


def test_lock_path_is_per_config_dir_under_the_runtime_dir(tmp_path):
    a, b = lock_path(tmp_path / "a", str(tmp_path)), lock_path(tmp_path / "b", str(tmp_path))
    assert a != b and a.parent == b.parent == tmp_path and a.name.startswith("phoenix-cluster-")
    assert lock_path(tmp_path / "a" / ".." / "a", str(tmp_path)) == a


def test_second_holder_waits_says_whom_then_fails_clearly(tmp_path):
    holder = subprocess.Popen([sys.executable, "-c", (
        "import sys, time; from pathlib import Path; from phoenix_tasks.core.local_lock import cluster_lock\n"
        f"with cluster_lock(Path({str(tmp_path / 'etc')!r}), 'sync-all', runtime_dir={str(tmp_path)!r}):\n"
        "    print('held', flush=True); time.sleep(30)\n")], stdout=subprocess.PIPE, text=True,
        cwd=os.path.dirname(os.path.dirname(os.path.dirname(__file__))))
    try:
        assert holder.stdout.readline().strip() == "held"
        notes = []
        started = time.monotonic()
        with pytest.raises(ClusterLockHeld) as exc:
            with cluster_lock(tmp_path / "etc", "swarm.init", wait_s=1, note=notes.append, runtime_dir=str(tmp_path)):
                pytest.fail("entered a held lock")
        assert 1 <= time.monotonic() - started < 5
        assert notes == [f"waiting for the cluster lock held by pid {holder.pid} (sync-all) since "
                         f"{notes[0].split(' since ')[1].split(' ')[0]} (up to 1 s)"]
        assert f"held by pid {holder.pid} (sync-all)" in str(exc.value) and "nothing was done" in str(exc.value)
    finally:
        holder.kill()  # SIGKILL: the kernel releases the flock
        holder.wait()
    with cluster_lock(tmp_path / "etc", "swarm.init", wait_s=5, runtime_dir=str(tmp_path)):
        pass  # free again once its holder is dead, however it died


def test_lock_is_released_after_the_block_and_on_error(tmp_path):
    with pytest.raises(RuntimeError):
        with cluster_lock(tmp_path / "etc", "sync-all", wait_s=0, runtime_dir=str(tmp_path)):
            raise RuntimeError("boom")
    with cluster_lock(tmp_path / "etc", "sync-all", wait_s=0, runtime_dir=str(tmp_path)) as path:
        assert path.exists() and path.stat().st_mode & 0o777 == 0o600
    assert not path.exists()  # nothing left behind


def test_a_waiter_on_a_file_removed_by_its_releasing_holder_locks_the_new_one(tmp_path):
    import threading
    held, release, order = threading.Event(), threading.Event(), []

    def holder():
        with cluster_lock(tmp_path / "etc", "sync-all", wait_s=0, runtime_dir=str(tmp_path)):
            held.set()
            release.wait(10)
            order.append("holder released")

    t = threading.Thread(target=holder)
    t.start()
    held.wait(10)
    threading.Timer(0.3, release.set).start()
    with cluster_lock(tmp_path / "etc", "swarm.join", wait_s=10, runtime_dir=str(tmp_path)) as path:
        order.append("waiter holds")
        assert path.exists()  # a file at the path, not the removed one
    t.join(10)
    assert order == ["holder released", "waiter holds"] and not path.exists()


class Sequenced:
    """A connection whose commands answer from a list, in order (the last one repeats)."""

    def __init__(self, answers, ran):
        self.answers, self.ran = answers, ran

    def run(self, command, **kw):
        self.ran.append(command)
        seq = self.answers[command]
        stdout, exited, stderr = seq.pop(0) if len(seq) > 1 else seq[0]
        return Result(command=command, stdout=stdout, stderr=stderr, exited=exited)


def _init_phase(tmp_path, answer):
    """The init phase of a fresh 3-VM swarm; `answer`: (stdout, exit, stderr) of the
    manager's init, which runs only while the node is in no swarm (one command)."""
    config = lab_config(tmp_path)
    f = facts(config, infos(FRESH))
    init = [a for a in plan_phases(config, f, Options(), ["init"]).actions if a.kind == "init"]
    ran = []
    guarded = shell_command(commands.only_if_inactive(init[0].argv))
    answers = {vm.name: {} for vm in config.swarm_vms}
    answers["portainer"][guarded] = [answer]
    t = Transport(config.hypervisor.vm_access, connect=lambda vm, access: Sequenced(answers[vm.name], ran))
    outcome = Outcome(Plan())
    replan = _run_phase(t, config, f, init, outcome)
    return replan, outcome, ran, guarded


def test_init_is_not_run_when_the_manager_joined_a_swarm_meanwhile(tmp_path):
    replan, outcome, ran, guarded = _init_phase(tmp_path, ("", 3, f"{commands.NOT_INACTIVE} (active)"))
    assert replan and not outcome.applied and not outcome.failed
    assert ran == [guarded]  # the check and the init are one command: nothing else ran
    assert "portainer (vmid 1001): not initialised: it is in a swarm now" in outcome.plan.warnings[0]


def test_init_that_finds_the_node_in_a_swarm_replans_instead_of_failing(tmp_path):
    replan, outcome, ran, guarded = _init_phase(tmp_path, (
        "", 1, "Error response from daemon: This node is already part of a swarm. "
               "Use \"docker swarm leave\" to leave this swarm and join another one."))
    assert replan and not outcome.applied and not outcome.failed
    assert ran == [guarded]


def test_init_runs_when_still_due(tmp_path):
    replan, outcome, ran, guarded = _init_phase(tmp_path, ("", 0, ""))
    assert not replan and [a.kind for a in outcome.applied] == ["init"] and ran == [guarded]


def test_the_guard_runs_the_init_only_in_no_swarm(tmp_path):
    """The guard script itself, run by a real sh with a stand-in `docker` on PATH."""
    import stat
    import subprocess
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    docker = bin_dir / "docker"
    docker.write_text('#!/bin/sh\nif [ "$1" = info ]; then echo "$STATE"; exit 0; fi\necho "ran: $*"\n')
    docker.chmod(docker.stat().st_mode | stat.S_IEXEC)
    argv = commands.only_if_inactive(["docker", "swarm", "init", "--advertise-addr", "198.18.90.11"])
    for state, code, out, err in (("inactive", 0, "ran: swarm init --advertise-addr 198.18.90.11", ""),
                                  ("active", 3, "", f"{commands.NOT_INACTIVE} (active)"),
                                  ("pending", 3, "", f"{commands.NOT_INACTIVE} (pending)")):
        res = subprocess.run([str(a) for a in argv], capture_output=True, text=True,
                             env={"PATH": f"{bin_dir}:/usr/bin:/bin", "STATE": state})
        assert (res.returncode, res.stdout.strip(), res.stderr.strip()) == (code, out, err), state


def test_join_that_finds_the_node_in_a_swarm_replans_instead_of_failing(tmp_path):
    config = lab_config(tmp_path)
    f = facts(config, infos(CONVERGED, cpuworker="info_inactive.json"))
    [join] = [a for a in plan_phases(config, f, Options(), ["join"]).actions if a.kind == "join"]
    join = dataclasses.replace(join, argv=("docker", "swarm", "join", "--token", "T", "198.18.90.11:2377"))
    ran = []
    answers = {"cpuworker": {shell_command(join.argv): [("", 1, "Error response from daemon: This node is already "
                                                                "part of a swarm.")]}}
    t = Transport(config.hypervisor.vm_access, connect=lambda vm, access: Sequenced(answers[vm.name], ran))
    outcome = Outcome(Plan())
    assert _run_phase(t, config, f, [join], outcome)
    assert not outcome.failed and not outcome.applied
    assert outcome.plan.warnings == ["cpuworker (vmid 1003): not joined: it is in a swarm now (another run?): "
                                     "read again and planned from that swarm"]
