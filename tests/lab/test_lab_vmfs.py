"""A lab VM's files look like a real VM's where Portainer's agent looks: its own /run
with /run/docker.sock (that VM's engine) and its data root at /var/lib/docker; and the
stand-ins answer HTTPS on 9443 as Portainer does.

State is read through second channels: the docker SDK on each VM's own socket, an SSH
session (the test's own Fabric connection), this machine's mount table and stat."""

from __future__ import annotations

import http.client
import json
import os
import ssl
import subprocess
import sys
import time
from pathlib import Path

import docker
import pytest

from phoenix_tasks.lab import control
from phoenix_tasks.lab.naming import VM_DOCKER_ROOT

from conftest import REPO, lab_skip_reason, module_lab, wait_until

pytestmark = pytest.mark.lab

SUBNET, BRIDGE = "198.18.60.0/24", "phxtest5"
SCRATCH_SUBNET, SCRATCH_BRIDGE = "198.18.61.0/24", "phxtest6"
# Portainer's own swarm stack file gives its agent these bind mounts.
AGENT_MOUNTS = ("/var/run/docker.sock", "/var/lib/docker/volumes")


@pytest.fixture(scope="module")
def vmfs_lab(tmp_path_factory):
    with module_lab(tmp_path_factory.mktemp("vmfslab"), SUBNET, BRIDGE, nodes=2) as lab:
        yield lab


def in_ssh(lab, vm, command: str) -> str:
    with lab.ssh(vm) as conn:
        return conn.run(command, hide=True, in_stream=False).stdout.strip()


def test_an_ssh_session_sees_the_vms_own_run_and_data_root(vmfs_lab):
    for vm in vmfs_lab.vms:
        v = vmfs_lab.names.vm(vm.vmid)
        out = in_ssh(vmfs_lab, vm, "readlink /var/run/docker.sock; stat -L -c '%F %i' "
                     "/var/run/docker.sock /var/lib/docker; stat -c '%F %U %a' /run/sshd; "
                     "stat -f -c %T /run")
        link, sock, data_root, sshd_dir, run_fs = out.splitlines()
        assert link == str(v.socket)
        assert sock == f"socket {os.stat(v.socket).st_ino}"
        assert data_root == f"directory {os.stat(v.data_root).st_ino}"
        assert sshd_dir == "directory root 755"  # sshd's privilege-separation dir
        assert run_fs == "tmpfs"


def test_plain_docker_in_an_ssh_session_without_docker_host_reaches_the_vms_engine(vmfs_lab):
    """As on a real VM: the default socket is that VM's engine (the 28.x CLI first in
    PATH, and Debian's 20.10 CLI)."""
    for vm in vmfs_lab.vms:
        engine_id = vmfs_lab.docker(vm).info()["ID"]
        for cli in ("docker", "/usr/bin/docker"):
            out = in_ssh(vmfs_lab, vm, f"env -u DOCKER_HOST {cli} info --format '{{{{.ID}}}} {{{{.Name}}}}'")
            assert out == f"{engine_id} {vm.name}", (vm, cli)


@pytest.fixture(scope="module")
def agent_service(vmfs_lab):
    """A two-node swarm (made through the SDK: this test is about the VMs, not
    Phoenix's swarm code) with a global service mounting what Portainer's agent
    mounts; removed at the end."""
    manager, worker = vmfs_lab.vms
    m = vmfs_lab.docker(manager)
    m.swarm.init(advertise_addr=manager.address, listen_addr=f"{manager.address}:2377")
    token = m.swarm.attrs["JoinTokens"]["Worker"]
    vmfs_lab.docker(worker).swarm.join(remote_addrs=[f"{manager.address}:2377"],
                                       join_token=token, advertise_addr=worker.address)
    service = m.services.create(
        "portainer/agent:2.21.4", name="phx-vmfs-agent", mode=docker.types.ServiceMode("global"),
        mounts=[docker.types.Mount(path, path, type="bind") for path in AGENT_MOUNTS])
    try:
        yield service
    finally:
        service.remove()
        for vm in vmfs_lab.vms:
            vmfs_lab.docker(vm).swarm.leave(force=True)


def running_tasks(service) -> dict[str, dict]:
    return {t["NodeID"]: t for t in service.tasks(filters={"desired-state": "running"})
            if t["Status"]["State"] == "running"}


def test_a_global_service_with_the_agents_bind_mounts_runs_a_task_on_every_node(vmfs_lab, agent_service):
    manager = vmfs_lab.docker(vmfs_lab.vms[0])
    nodes = {n.id for n in manager.nodes.list()}
    assert len(nodes) == 2
    tasks = wait_until("a running task on every node",
                       lambda: (lambda t: t if set(t) == nodes else None)(running_tasks(agent_service)), 60, every=0.3)
    for task in tasks.values():
        mounts = task["Spec"]["ContainerSpec"]["Mounts"]
        assert sorted((m["Source"], m["Target"], m["Type"]) for m in mounts) == \
            sorted((p, p, "bind") for p in AGENT_MOUNTS)


def agent_container(client):
    return wait_until("the agent's container", lambda: next(iter(client.containers.list(
        filters={"label": "com.docker.swarm.service.name=phx-vmfs-agent"})), None), 60, every=0.3)


def test_inside_the_agent_the_socket_and_volumes_are_that_vms_own(vmfs_lab, agent_service):
    """The busybox stand-in cannot speak HTTP over a unix socket, so identity is shown
    by inode: the socket in the container is the very file the VM's engine listens on,
    and /var/lib/docker/volumes is that VM's, holding a volume made on that VM only."""
    for vm in vmfs_lab.vms:
        client = vmfs_lab.docker(vm)
        v = vmfs_lab.names.vm(vm.vmid)
        volume = client.volumes.create(f"phx-vmfs-probe-{vm.name}")
        try:
            container = agent_container(client)
            code, out = container.exec_run(
                ["/bin/busybox", "stat", "-c", "%F %i", "/var/run/docker.sock",
                 "/var/lib/docker/volumes"])
            assert code == 0, out
            sock, volumes = out.decode().splitlines()
            assert sock == f"socket {os.stat(v.socket).st_ino}"
            assert volumes == f"directory {os.stat(v.data_root / 'volumes').st_ino}"
            code, out = container.exec_run(["/bin/busybox", "ls", "/var/lib/docker/volumes"])
            listed = out.decode().split()
            assert volume.name in listed
            assert not any(name.startswith("phx-vmfs-probe-") and name != volume.name for name in listed)
        finally:
            volume.remove()


def test_nothing_of_a_vms_file_view_shows_in_this_machines_mount_table(vmfs_lab, agent_service):
    """Checked while the VMs run containers (overlay mounts, network namespaces)."""
    names = vmfs_lab.names
    mounts = Path("/proc/self/mountinfo").read_text()
    assert str(names.state_dir) not in mounts and str(names.run_dir) not in mounts
    assert " /var/lib/docker " not in mounts and " /run " not in mounts
    assert not Path("/run/docker.sock").is_symlink()  # the VMs' links are in their own /run
    # libnetwork writes its sandboxes' files (swarm's ingress sandbox) to the hard-coded
    # /var/lib/docker/network/files: that is each VM's data root now, not this machine's.
    for vm in vmfs_lab.vms:
        assert any((names.vm(vm.vmid).data_root / "network" / "files").iterdir()), vm


def https_status(address: str, port: int, path: str) -> tuple[int, str]:
    """(HTTP status, TLS version) of a GET over TLS, certificate not checked (a
    self-signed stand-in), as Phoenix probes Portainer."""
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    conn = http.client.HTTPSConnection(address, port, timeout=5, context=context)
    try:
        conn.request("GET", path)
        version = conn.sock.version()
        response = conn.getresponse()
        response.read()
        return response.status, version
    finally:
        conn.close()


def http_status(address: str, port: int) -> tuple[int, str]:
    conn = http.client.HTTPConnection(address, port, timeout=5)
    try:
        conn.request("GET", "/")
        response = conn.getresponse()
        return response.status, response.read().decode()
    finally:
        conn.close()


def test_portainers_stand_in_answers_https_on_9443_and_http_on_9000(vmfs_lab):
    vm = vmfs_lab.vms[1]
    container = vmfs_lab.docker(vm).containers.run(
        "portainer/portainer-ce:2.21.4", ["-H", "tcp://tasks.agent:9001", "--tlsskipverify"],
        network_mode="host", detach=True, name="phx-vmfs-standin-tls")
    try:
        status, version = wait_until("HTTPS on 9443", lambda: _try(https_status, vm.address, 9443,
                                                                  "/api/system/status"), 60, every=0.3)
        assert status == 200 and version.startswith("TLS")
        assert _try(https_status, vm.address, 9443, "/anything/else")[0] == 200
        status, body = wait_until("HTTP on 9000", lambda: _try(http_status, vm.address, 9000), 60, every=0.3)
        assert (status, body) == (200, "phoenix lab stand-in image\n")
        with pytest.raises(ssl.SSLError):  # 9000 is plain HTTP, not TLS
            https_status(vm.address, 9000, "/")
        container.reload()
        assert container.status == "running"
    finally:
        started = time.monotonic()
        container.stop(timeout=10)
        container.remove()
    assert time.monotonic() - started < 5  # TERM is handled: no 10 s kill timeout


def _try(probe, *args):
    try:
        return probe(*args)
    except OSError:
        return None


# Runs in a private mount namespace where /var/lib is an empty tmpfs: /var/lib/docker
# is missing there (this machine's own is never touched). Brings a 1-VM lab up and down
# and prints what it saw as JSON.
MISSING_VAR_LIB_DOCKER = """
import json, sys
from pathlib import Path
sys.path.insert(0, "tests")
import docker
from conftest import make_lab_config
from phoenix_tasks.lab import control, var_lib_docker
out, subnet, bridge = Path(sys.argv[1]), sys.argv[2], sys.argv[3]
seen = {"missing_before": not Path("/var/lib/docker").exists()}
config = make_lab_config(out, 1, subnet, bridge)
names = control.names_for(config)
try:
    seen["up"] = control.up(config).lab_actions
    seen["recorded"] = json.loads(names.record_file.read_text())[var_lib_docker.RECORD_KEY]
    seen["during"] = sorted(p.name for p in Path("/var/lib/docker").iterdir())
    vm = config.real_vms[0]
    client = docker.DockerClient(base_url=names.vm(vm.vmid).docker_host)
    seen["engine_root"] = client.info()["DockerRootDir"]
    client.volumes.create("phx-probe")
    seen["data_root_volumes"] = sorted(p.name for p in (names.vm(vm.vmid).data_root / "volumes").iterdir())
finally:
    lines = []
    seen["down"] = control.down(names.state_dir, names.bridge, report=lines.append)
    seen["down_report"] = lines
seen["exists_after"] = Path("/var/lib/docker").exists()
print(json.dumps(seen))
"""


def test_a_missing_var_lib_docker_is_made_recorded_and_removed_by_down(tmp_path):
    reason = lab_skip_reason()
    if reason:
        pytest.skip(reason)
    from conftest import bridge_lock, clear_stale_lab
    argv = ["unshare", "--mount", "--propagation", "private", "sh", "-c",
            'mount -n -t tmpfs tmpfs /var/lib && exec "$@"', "sh",
            sys.executable, "-c", MISSING_VAR_LIB_DOCKER,
            str(tmp_path), SCRATCH_SUBNET, SCRATCH_BRIDGE]
    with bridge_lock(SCRATCH_BRIDGE):
        clear_stale_lab(SCRATCH_BRIDGE)
        try:
            result = subprocess.run(argv, capture_output=True, text=True, cwd=REPO, timeout=300,
                                    env={**os.environ, "PYTHONPATH": str(REPO)})
        finally:  # (if the child died before its own lab.down)
            control.down(tmp_path / "state", SCRATCH_BRIDGE)
    assert result.returncode == 0, result.stderr
    seen = json.loads(result.stdout.splitlines()[-1])
    assert seen["missing_before"] is True
    assert f"made {VM_DOCKER_ROOT} (empty): lab VMs mount their data root there" in seen["up"]
    assert seen["recorded"] is True  # in lab.json
    assert seen["during"] == []  # the VMs' data roots are bound over it, never written into it
    assert "phx-probe" in seen["data_root_volumes"]  # the engine writes to its data root
    assert seen["engine_root"].endswith("/vms/1001/docker")
    # Removed unless another lab runs on this machine (its VMs mount it): then left, empty.
    if "removed /var/lib/docker (this lab made it)" in seen["down"]:
        assert seen["exists_after"] is False
    else:
        assert seen["exists_after"] is True
        (line,) = [l for l in seen["down_report"] if "/var/lib/docker" in l]
        assert line.startswith("left /var/lib/docker in place (empty): another lab on this machine")
