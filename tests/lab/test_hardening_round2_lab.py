"""Issue 21 on a real lab, verified through the docker SDK on each VM's own socket and
through the process lists themselves (never through the code under test):

- the join token is on no process list while the workers join: `ps` on the joining
  VM (over SSH) and this machine's own process table (every process of the control
  machine and of the lab VMs, which share it), sampled again and again during the join;
- a worker's dockerd hung (SIGSTOP): `swarm.status` ends within the read deadline
  (`vm_access.read_timeout_s`, 15 s by default), well before the write deadline (60 s),
  and names the hung VM.

Own lab: 198.18.121.0/24 on phxh21b."""

from __future__ import annotations

import os
import signal
import threading
import time

import pytest

from conftest import module_lab, run_task, start_task, task_env

pytestmark = pytest.mark.lab

SUBNET, BRIDGE = "198.18.121.0/24", "phxh21b"


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    with module_lab(tmp_path_factory.mktemp("round2"), SUBNET, BRIDGE) as running:
        yield running


def vm(lab, name):
    return next(v for v in lab.vms if v.name == name)


def process_table() -> list[str]:
    """Every command line of this machine's process table (the lab VMs share it)."""
    lines = []
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                lines.append(f.read().replace(b"\0", b" ").decode(errors="replace"))
        except OSError:
            continue  # ended meanwhile
    return lines


class Sampler:
    """Samples process lists in threads until stopped: this machine's /proc, and `ps`
    run on a VM over the lab's own SSH (not the transport under test)."""

    def __init__(self, lab, vms):
        self.stop = threading.Event()
        self.local: list[list[str]] = []
        self.remote: dict[str, list[str]] = {v.name: [] for v in vms}
        self.threads = [threading.Thread(target=self._local, daemon=True)]
        self.threads += [threading.Thread(target=self._remote, args=(lab, v), daemon=True) for v in vms]

    def _local(self):
        while not self.stop.is_set():
            self.local.append(process_table())
            time.sleep(0.005)

    def _remote(self, lab, v):
        with lab.ssh(v) as conn:
            while not self.stop.is_set():
                self.remote[v.name].append(conn.run("ps -eo args", hide=True, warn=True, in_stream=False).stdout)

    def __enter__(self):
        for t in self.threads:
            t.start()
        return self

    def __exit__(self, *exc):
        self.stop.set()
        for t in self.threads:
            t.join(timeout=60)


def test_the_join_token_is_on_no_process_list_during_the_join(lab, tmp_path):
    env = task_env(lab.config.config_dir)
    init = run_task(env, "swarm.init")
    assert init.returncode == 0, init.stdout + init.stderr
    manager = lab.docker(vm(lab, "portainer"))
    tokens = manager.swarm.attrs["JoinTokens"]
    workers = [vm(lab, "drphoenix"), vm(lab, "cpuworker")]
    with Sampler(lab, workers) as sampler:
        time.sleep(0.5)  # the samplers run before the join starts
        join = start_task(env, "swarm.join", "--verbose")
        out, err = join.communicate(timeout=600)
        time.sleep(0.2)
    assert join.returncode == 0, out + err
    # The samples covered the join: the dial-stdio that carries each request was seen.
    local = [line for sample in sampler.local for line in sample]
    assert any("docker system dial-stdio" in line for line in local), "no sample fell within the join"
    remote = "\n".join(text for samples in sampler.remote.values() for text in samples)
    assert all(sampler.remote.values()), sampler.remote.keys()
    for text in ("\n".join(local), remote, out + err):
        assert "SWMTKN" not in text
        assert tokens["Worker"] not in text and tokens["Manager"] not in text
    # No file of the run holds it (config dir, this test's files).
    for root in (lab.config.config_dir, tmp_path):
        for path in root.rglob("*"):
            if path.is_file() and path.stat().st_size < 1 << 20:
                assert "SWMTKN" not in path.read_text(errors="replace"), path
    # The join happened (second channel: each worker's own engine, and the manager's node list).
    nodes = {n.id: n.attrs for n in manager.nodes.list()}
    for w in workers:
        info = lab.docker(w).info()["Swarm"]
        assert info["LocalNodeState"] == "active" and info["NodeID"] in nodes, info
        node = nodes[info["NodeID"]]
        assert node["Description"]["Hostname"] == w.name and node["Spec"]["Role"] == "worker"


def test_status_with_a_hung_worker_engine_answers_within_the_read_deadline(lab):
    from phoenix_tasks.lab import control, vm as lab_vm
    env = task_env(lab.config.config_dir)
    access = lab.config.hypervisor.vm_access
    assert (access.read_timeout_s, access.command_timeout_s) == (15.0, 60.0)  # the defaults
    names = control.names_for(lab.config)
    pid = lab_vm.dockerd_pid(names.vm(vm(lab, "cpuworker").vmid))
    assert pid
    os.kill(pid, signal.SIGSTOP)
    try:
        started = time.monotonic()
        status = run_task(env, "swarm.status", timeout=300)
        elapsed = time.monotonic() - started
    finally:
        os.kill(pid, signal.SIGCONT)
    text = " ".join((status.stdout + status.stderr).split())
    assert status.returncode == 1, text
    assert "cpuworker (vmid 1003): unreachable:" in text, text
    assert "did not finish within 15 s" in text, text
    assert "portainer (vmid 1001): unreachable" not in text and "Traceback" not in text
    # Well before a write's deadline (60 s), start-up and the other reads included.
    assert elapsed < 50, elapsed
