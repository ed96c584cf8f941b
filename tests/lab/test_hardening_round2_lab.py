"""Issue 21 on a real lab, verified through the docker SDK on each VM's own socket and
through the process lists themselves (never through the code under test):

- the join token is on no process list while the workers join: `ps` on the joining
  VM (over SSH) and this machine's own process table (every process of the control
  machine and of the lab VMs, which share it), sampled again and again during the join;
- a worker's dockerd hung (SIGSTOP): `swarm.status` ends within the read deadline
  (`vm_access.read_timeout_s`, 15 s by default), well before the write deadline (60 s),
  and names the hung VM;
- a manager swap in one `sync-all`, both ways: the plan says Portainer's server moves
  and its data is carried; each run converges (the first write after the swap, the
  deploy lock, no longer fails while Raft settles), Portainer answers from the new
  first manager, whose volume holds the marker written on the old one; the old node
  keeps its volume, and an earlier copy on the new node is kept aside.

Own lab: 198.18.121.0/24 on phxh21b."""

from __future__ import annotations

import os
import signal
import threading
import time

import pytest

from conftest import module_lab, run_task, start_task, task_env
from test_role_changes_lab import set_roles

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
    client = lab.docker(vm(lab, "cpuworker"))
    end = time.monotonic() + 120
    while time.monotonic() < end:  # answers again (SIGCONT) before the next test
        try:
            if client.info()["Swarm"]["LocalNodeState"] == "active":
                break
        except Exception:  # noqa: BLE001 - still waking up
            pass
        time.sleep(0.5)


PASSWORD = "round2-lab-password-7d3a"
NS = "prod_portainer_service"
SERVER, VOLUME = f"{NS}_portainer", f"{NS}_portainer_data"
MARKER = "phoenix-marker"


def holder(client, volume, image):
    import docker
    try:
        return client.containers.create(image, volumes={volume: {"bind": "/data", "mode": "rw"}})
    except docker.errors.ImageNotFound:
        client.images.pull(image)
        return client.containers.create(image, volumes={volume: {"bind": "/data", "mode": "rw"}})


def put_marker(client, volume, image, text):
    import io
    import tarfile
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        info = tarfile.TarInfo(MARKER)
        info.size = len(text.encode())
        tar.addfile(info, io.BytesIO(text.encode()))
    c = holder(client, volume, image)
    try:
        assert c.put_archive("/data", buf.getvalue())
    finally:
        c.remove()


def marker(client, volume, image):
    """The marker file in a node's volume (docker SDK on the node's own engine), or None."""
    import io
    import tarfile
    import docker
    if volume not in {v.name for v in client.volumes.list()}:
        return None
    c = holder(client, volume, image)
    try:
        bits, _ = c.get_archive(f"/data/{MARKER}")
        tar = tarfile.open(fileobj=io.BytesIO(b"".join(bits)))
        return tar.extractfile(tar.getmembers()[0]).read().decode()
    except docker.errors.NotFound:
        return None
    finally:
        c.remove()


def server_node(manager) -> str:
    """The hostname of the node where Portainer's server task runs (second channel)."""
    running = [t for t in manager.services.get(SERVER).tasks(filters={"desired-state": "running"})
               if t["Status"]["State"] == "running"]
    assert len(running) == 1, running
    return manager.nodes.get(running[0]["NodeID"]).attrs["Description"]["Hostname"]


def a_manager(lab):
    return next(c for c in (lab.docker(v) for v in lab.vms) if c.info()["Swarm"]["ControlAvailable"])


def test_a_manager_swap_in_one_sync_all_carries_portainers_data_both_ways(lab, tmp_path):
    pw = tmp_path / "pw"
    pw.write_text(PASSWORD + "\n")
    env = task_env(lab.config.config_dir, pw)
    set_roles(lab, portainer="manager", cpuworker="worker")
    first = run_task(env, "sync-all")
    assert first.returncode == 0, first.stdout + first.stderr
    image = a_manager(lab).services.get(SERVER).attrs["Spec"]["TaskTemplate"]["ContainerSpec"]["Image"]
    assert server_node(a_manager(lab)) == "portainer"
    for new, old, text in (("cpuworker", "portainer", "written on portainer"),
                           ("portainer", "cpuworker", "written on cpuworker")):
        put_marker(lab.docker(vm(lab, old)), VOLUME, image, text)
        earlier = marker(lab.docker(vm(lab, new)), VOLUME, image)  # a copy the swap the other way left
        set_roles(lab, **{new: "manager", old: "worker"})
        res = run_task(env, "sync-all")
        out = res.stdout + res.stderr
        assert res.returncode == 0, out
        flat = " ".join(out.split())
        # The plan said so, before anything ran.
        said = flat.index(f"portainer data: its server moves from {old} to {new} (the first configured manager)")
        assert said < flat.index("stage 1/5")
        assert f"{VOLUME}: {old} -> {new}: 1 files" in flat and "verified" in flat
        assert f"answers on https://{vm(lab, new).address}:9443 (node {new}" in flat
        assert "Traceback" not in out and "DeadlineExceeded" not in out
        # Second channel: the server runs on the new first manager, on the carried data;
        # the old node keeps its volume as it was.
        manager = a_manager(lab)
        assert server_node(manager) == new
        assert marker(lab.docker(vm(lab, new)), VOLUME, image) == text
        assert marker(lab.docker(vm(lab, old)), VOLUME, image) == text
        if earlier is not None:  # the new node's earlier copy was kept aside, not lost
            kept = [v.name for v in lab.docker(vm(lab, new)).volumes.list() if v.name.startswith(f"{VOLUME}_before_")]
            assert len(kept) == 1 and marker(lab.docker(vm(lab, new)), kept[0], image) == earlier
    again = run_task(env, "sync-all")
    assert again.returncode == 0 and "sync-all: converged (no changes)" in again.stdout, again.stdout + again.stderr
    assert "portainer data" not in again.stdout
