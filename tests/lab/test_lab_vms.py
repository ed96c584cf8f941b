"""Each lab VM answers SSH with its own engine and hostname; stand-in images serve."""

from __future__ import annotations

import ssl
import time
import urllib.request

import pytest

pytestmark = pytest.mark.lab


def test_ssh_into_each_vm_runs_docker_info_on_that_vms_own_engine(lab):
    engine_ids = set()
    for vm in lab.vms:
        with lab.ssh(vm) as conn:
            result = conn.run("docker info --format '{{.Name}} {{.ID}}'", hide=True, in_stream=False)
            hostname = conn.run("hostname", hide=True, in_stream=False).stdout.strip()
        name, engine_id = result.stdout.split()
        # Second channel: the engine on this VM's own socket.
        info = lab.docker(vm).info()
        assert (name, engine_id) == (vm.name, info["ID"]), vm
        assert info["Name"] == vm.name
        assert hostname == vm.name
        engine_ids.add(engine_id)
    assert len(engine_ids) == len(lab.vms) == 3


def test_vm_network_is_its_configured_ip_and_gateway(lab):
    vm = lab.vms[0]
    with lab.ssh(vm) as conn:
        addr = conn.run("ip -4 -o addr show dev eth0", hide=True, in_stream=False).stdout
        route = conn.run("ip -4 route show default", hide=True, in_stream=False).stdout
    assert str(vm.network.ip) in addr
    assert f"via {vm.network.gw}" in route


def test_every_stack_image_is_a_stand_in_on_every_vm(lab):
    from phoenix_tasks.lab.images import stand_ins_for_stacks
    wanted = {s.image for s in stand_ins_for_stacks(lab.config.stacks_dir)}
    assert {"portainer/portainer-ce:2.21.4", "qdrant/qdrant:v1.12.4"} <= wanted
    for vm in lab.vms:
        tags = {t for image in lab.docker(vm).images.list() for t in image.tags}
        assert wanted <= tags, vm


def test_stand_in_ignores_its_arguments_and_answers_http_on_the_services_ports(lab):
    vm = lab.vms[1]
    client = lab.docker(vm)
    container = client.containers.run(
        "portainer/portainer-ce:2.21.4",
        ["-H", "tcp://tasks.agent:9001", "--tlsskipverify", "; rm -rf /"],
        network_mode="host", detach=True, name="phx-test-standin")
    try:
        bodies = {}
        deadline = time.monotonic() + 20
        # 9443 ends in 443: HTTPS with a self-signed certificate, as Portainer serves it.
        unverified = ssl.create_default_context()
        unverified.check_hostname, unverified.verify_mode = False, ssl.CERT_NONE
        for url in (f"http://{vm.address}:9000/", f"https://{vm.address}:9443/api/system/status"):
            while True:
                try:  # the VM's own address on the lab bridge
                    with urllib.request.urlopen(url, timeout=2, context=unverified) as r:
                        bodies[url] = (r.status, r.read().decode())
                    break
                except OSError:
                    if time.monotonic() > deadline:
                        raise
                    time.sleep(0.2)
        http, https = bodies.values()
        assert http == (200, "phoenix lab stand-in image\n")
        assert https[0] == 200 and "s_server" in https[1]  # openssl's status page
        container.reload()
        assert container.status == "running"
    finally:
        started = time.monotonic()
        container.stop(timeout=10)
        container.remove()
    assert time.monotonic() - started < 5  # TERM is handled: no 10 s kill timeout
