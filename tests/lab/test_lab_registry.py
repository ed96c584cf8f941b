"""The lab registry: every VM pulls the stand-ins by their real names through its
engine's mirror and gets a RepoDigest, as a real VM does from Docker Hub.

State is read through second channels: the docker SDK on each VM's own socket, the
registry's HTTP API read here with urllib, `ss` for what listens, /proc for processes,
the registry's own request log."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import time
import urllib.request

import docker
import pytest

from phoenix_tasks.lab import control, images, mirror, procs

from conftest import bridge_lock, clear_stale_lab, make_lab_config, module_lab, run_lab_task

pytestmark = pytest.mark.lab

SUBNET, BRIDGE = "198.18.60.0/24", "phxtest5"
SCRATCH_SUBNET, SCRATCH_BRIDGE = "198.18.61.0/24", "phxtest6"
PORTAINER = ("portainer/portainer-ce", "2.21.4")
MANIFEST_V2 = "application/vnd.docker.distribution.manifest.v2+json"
DIRECT = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # the lab only


@pytest.fixture(scope="module")
def reg_lab(tmp_path_factory):
    with module_lab(tmp_path_factory.mktemp("registrylab"), SUBNET, BRIDGE, nodes=2) as lab:
        yield lab


def gateway(lab) -> str:
    return str(lab.config.hypervisor.lab.gateway.ip)


def registry_get(lab, path: str, accept: str | None = None):
    request = urllib.request.Request(f"http://{gateway(lab)}:5000{path}",
                                     headers={"Accept": accept} if accept else {})
    with DIRECT.open(request, timeout=5) as response:
        return response.headers, response.read()


def registry_digest(lab, repository: str, tag: str) -> str:
    headers, _ = registry_get(lab, f"/v2/{repository}/manifests/{tag}", MANIFEST_V2)
    return headers["Docker-Content-Digest"]


def registry_pid(lab) -> int:
    pid = procs.read_pidfile(lab.names.registry_pidfile)
    assert pid and procs.is_running(pid)
    return pid


def client(lab, vm) -> docker.DockerClient:
    return docker.DockerClient(base_url=lab.names.vm(vm.vmid).docker_host, timeout=60)


def pushes_logged(lab) -> int:
    """PUT requests in the registry's own log: every push ends with one (the manifest)."""
    return sum('"PUT ' in line or "http.request.method=PUT" in line
               for line in lab.names.registry_log.read_text(errors="replace").splitlines())


def listening(pid: int) -> set[str]:
    """Local addresses the process pid listens on (TCP), as `ss` sees them."""
    out = subprocess.run(["ss", "-Hltnp"], capture_output=True, text=True, check=True).stdout
    return {line.split()[3] for line in out.splitlines() if f"pid={pid}," in line}


def test_every_vm_pulls_portainer_by_its_real_name_with_the_registrys_digest(reg_lab):
    digest = registry_digest(reg_lab, *PORTAINER)
    for vm in reg_lab.vms:
        started = time.monotonic()
        image = client(reg_lab, vm).images.pull(PORTAINER[0], tag=PORTAINER[1])
        assert time.monotonic() - started < 5, "a pull through the mirror must not wait on DNS"
        assert "portainer/portainer-ce:2.21.4" in image.tags
        assert image.attrs["RepoDigests"] == [f"portainer/portainer-ce@{digest}"], vm
        labels = image.attrs["Config"]["Labels"]
        assert labels["io.phoenix.lab.stand-in"] == "true"
        assert images.VARIANT_LABEL not in labels
    # The registry's own name for it stays on no VM: VMs carry real names only.
    for vm in reg_lab.vms:
        tags = {t for i in client(reg_lab, vm).images.list() for t in i.tags}
        assert not any(t.startswith(f"{gateway(reg_lab)}:5000/") for t in tags), tags


def test_every_stand_in_is_on_every_vm_with_the_registrys_digest(reg_lab):
    for s in images.stand_ins_for_stacks(reg_lab.config.stacks_dir):
        repository, tag = s.image.rsplit(":", 1)
        digest = registry_digest(reg_lab, repository, tag)
        for vm in reg_lab.vms:
            image = client(reg_lab, vm).images.get(s.image)
            assert f"{repository}@{digest}" in image.attrs["RepoDigests"], (vm, s.image)


def test_docker_pull_in_an_ssh_session_goes_through_the_mirror_with_both_clis(reg_lab):
    vm = reg_lab.vms[1]
    with reg_lab.ssh(vm) as conn:
        for cli in ("docker", "/usr/bin/docker"):  # this machine's newest, and Debian's 20.10
            out = conn.run(f"{cli} pull qdrant/qdrant:v1.12.4", hide=True, in_stream=False).stdout
            assert "Digest: sha256:" in out and "qdrant/qdrant:v1.12.4" in out


def test_an_image_the_registry_lacks_is_manifest_unknown_from_docker_hub_s_name(reg_lab):
    """The mirror has no such tag, so the engine falls back to Docker Hub, as any
    engine with a mirror does; in the lab that name is the lab registry's storage on
    TLS (lab /etc/hosts, lab CA): the answer of a registry that was reached, without a
    packet leaving the lab."""
    with pytest.raises(docker.errors.APIError) as e:
        client(reg_lab, reg_lab.vms[0]).images.pull("portainer/portainer-ce", tag="2.99.0")
    assert "manifest unknown" in e.value.explanation, e.value.explanation


def test_the_registry_answers_on_the_lab_bridge_address_only(reg_lab):
    pid = registry_pid(reg_lab)
    assert procs.cmdline(pid) == ["docker-registry", "serve", str(reg_lab.names.registry_config)]
    assert listening(pid) == {f"{gateway(reg_lab)}:5000"}
    headers, body = registry_get(reg_lab, "/v2/")
    assert json.loads(body) == {}
    for address in ("127.0.0.1", reg_lab.vms[0].address):  # loopback; a VM's own address
        with pytest.raises(OSError):
            socket.create_connection((address, 5000), timeout=2).close()
    status = control.registry_status(reg_lab.config)
    assert status.up and status.pid == pid and status.address == f"{gateway(reg_lab)}:5000"


def test_a_second_up_changes_nothing_and_pushes_nothing(reg_lab):
    pid = registry_pid(reg_lab)
    digests = {s.image: registry_digest(reg_lab, *s.image.rsplit(":", 1))
               for s in images.stand_ins_for_stacks(reg_lab.config.stacks_dir)}
    image_ids = {vm.vmid: sorted(i.id for i in client(reg_lab, vm).images.list())
                 for vm in reg_lab.vms}
    pushes = pushes_logged(reg_lab)
    assert pushes > 0  # the log does show pushes: lab.up pushed every stand-in once

    result = control.up(reg_lab.config)
    assert not result.changed, result
    assert registry_pid(reg_lab) == pid
    assert pushes_logged(reg_lab) == pushes
    assert {image: registry_digest(reg_lab, *image.rsplit(":", 1)) for image in digests} == digests
    assert {vm.vmid: sorted(i.id for i in client(reg_lab, vm).images.list())
            for vm in reg_lab.vms} == image_ids


def test_a_pushed_variant_moves_the_tag_and_lab_up_moves_it_back(reg_lab):
    old = registry_digest(reg_lab, *PORTAINER)
    new = mirror.push_variant(reg_lab.config, "portainer/portainer-ce:2.21.4", "v2")
    assert new != old and registry_digest(reg_lab, *PORTAINER) == new
    vm = reg_lab.vms[1]
    # A VM that pulled before still has the old image; a fresh pull resolves to the new digest.
    assert client(reg_lab, vm).images.get("portainer/portainer-ce:2.21.4").attrs["RepoDigests"] == \
        [f"portainer/portainer-ce@{old}"]
    pulled = client(reg_lab, vm).images.pull(*PORTAINER)
    assert pulled.attrs["RepoDigests"] == [f"portainer/portainer-ce@{new}"]
    assert pulled.attrs["Config"]["Labels"][images.VARIANT_LABEL] == "v2"

    # lab.up puts the lab's own stand-in back and every VM pulls it (a third digest:
    # every import has its own creation time).
    result = control.up(reg_lab.config)
    assert [a for a in result.lab_actions if a.startswith("push")] == [
        f"push stand-in portainer/portainer-ce:2.21.4 to the lab registry {gateway(reg_lab)}:5000 (changed)"]
    assert all(r.actions == (f"{r.vm}: pull stand-in image portainer/portainer-ce:2.21.4 "
                             "(lab registry)",) for r in result.vms), result.vms
    back = registry_digest(reg_lab, *PORTAINER)
    assert back not in (old, new)
    for vm in reg_lab.vms:
        image = client(reg_lab, vm).images.get("portainer/portainer-ce:2.21.4")
        assert image.attrs["RepoDigests"] == [f"portainer/portainer-ce@{back}"]
        assert images.VARIANT_LABEL not in image.attrs["Config"]["Labels"]
    assert not control.up(reg_lab.config).changed


def test_a_killed_registry_is_started_again_by_up_with_its_images(reg_lab):
    pid = registry_pid(reg_lab)
    digest = registry_digest(reg_lab, *PORTAINER)
    dockerds = [procs.read_pidfile(reg_lab.names.vm(vm.vmid).dockerd_pidfile) for vm in reg_lab.vms]
    os.kill(pid, signal.SIGKILL)
    assert procs.wait_gone([pid], 10) == []
    assert not control.registry_status(reg_lab.config).up
    result = run_lab_task(["lab.status", "--config-dir", str(reg_lab.config.config_dir)])
    assert result.returncode == 1 and f"registry {gateway(reg_lab)}:5000: down" in result.stdout

    result = control.up(reg_lab.config)
    assert result.lab_actions == (f"lab registry: start on {gateway(reg_lab)}:5000",)
    assert all(r.actions == () for r in result.vms)  # storage kept: nothing pushed or pulled
    assert registry_pid(reg_lab) != pid
    assert registry_digest(reg_lab, *PORTAINER) == digest
    assert [procs.read_pidfile(reg_lab.names.vm(vm.vmid).dockerd_pidfile)
            for vm in reg_lab.vms] == dockerds
    result = run_lab_task(["lab.status", "--config-dir", str(reg_lab.config.config_dir)])
    assert result.returncode == 0 and f"registry {gateway(reg_lab)}:5000: up" in result.stdout


def test_an_engine_started_without_the_mirror_is_restarted_with_it(reg_lab):
    """A lab brought up before the registry existed: its engines' daemon.json lacks the
    mirror.  lab.up restarts just those engines, which then pull through it."""
    vm = reg_lab.vms[0]
    v = reg_lab.names.vm(vm.vmid)
    config = json.loads(v.daemon_json.read_text())
    old = {k: val for k, val in config.items() if k not in ("registry-mirrors", "insecure-registries")}
    v.daemon_json.write_text(json.dumps(old, indent=2) + "\n")
    pid = procs.read_pidfile(v.dockerd_pidfile)

    result = control.up(reg_lab.config)
    (restarted,) = [r for r in result.vms if r.vm.vmid == vm.vmid]
    assert restarted.actions == (f"{vm}: restart dockerd (pid {pid} daemon.json changed)",)
    assert all(r.actions == () for r in result.vms if r.vm.vmid != vm.vmid)
    info = client(reg_lab, vm).info()
    assert info["RegistryConfig"]["Mirrors"] == [f"http://{gateway(reg_lab)}:5000/"]
    assert procs.read_pidfile(v.dockerd_pidfile) != pid
    assert not control.up(reg_lab.config).changed


def test_down_leaves_no_registry_process_or_state(tmp_path):
    from conftest import lab_skip_reason
    if lab_skip_reason():
        pytest.skip(lab_skip_reason())
    config = make_lab_config(tmp_path, 1, SCRATCH_SUBNET, SCRATCH_BRIDGE)
    names = control.names_for(config)
    with bridge_lock(SCRATCH_BRIDGE):
        clear_stale_lab(SCRATCH_BRIDGE)
        try:
            control.up(config)
            pid = procs.read_pidfile(names.registry_pidfile)
            assert pid and procs.is_running(pid) and listening(pid)
            # From the state dir alone, as after a lost config.
            result = run_lab_task(["lab.down", "--state-dir", str(names.state_dir)])
            assert result.returncode == 0, result.stderr
            assert f"stopped the lab registry (pid {pid})" in result.stdout
            assert procs.wait_gone([pid], 5) == []
            assert not names.registry_dir.exists() and not names.state_dir.exists()
            out = subprocess.run(["ss", "-Hltn"], capture_output=True, text=True).stdout
            assert f"{config.hypervisor.lab.gateway.ip}:5000" not in out
            assert not any(str(names.registry_config) in " ".join(procs.cmdline(p))
                           for p in procs.all_pids())
        finally:
            control.down(names.state_dir, SCRATCH_BRIDGE)
