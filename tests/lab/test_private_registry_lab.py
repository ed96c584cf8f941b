"""A private registry that requires a login (issue 19), against a real lab.

The lab's private registry (phoenix_tasks/lab/private_registry.py: Debian's
docker-registry with htpasswd, on TLS, under its own name registry.phoenix.lab that
every lab engine resolves and whose CA it trusts) serves a stand-in pushed there from
the manager's engine, which then forgets it.  A stack runs it on a worker.  The deploy,
as a user runs it, in three states: without credentials, with wrong ones (both blocked,
naming the registry and "unauthorized", nothing changed), with the right ones (deployed,
a worker pulls the image with the manager's credentials and runs the task).  The
password appears in no output.  State is verified through the docker SDK.
"""

from __future__ import annotations

import json

import pytest

from phoenix_tasks.config import load_config
from phoenix_tasks.lab import private_registry
from phoenix_tasks.lab.naming import LabNames
from phoenix_tasks.tasks import stacks as stack_tasks
from phoenix_tasks.tasks import sync as sync_tasks

from conftest import copy_stacks, module_lab, running_tasks, task_runner

pytestmark = pytest.mark.lab

SUBNET, BRIDGE = "198.18.102.0/24", "phxh19c"
USER, PASSWORD = "deploy", "lab-Registry-pa55"
IMAGE = f"{private_registry.SERVER}/thinkheads/private-api:1.0"
STACK = "private_app"
NS = f"p1_{STACK}"
COMPOSE = f"""\
version: "3.8"
services:
  web:
    image: {IMAGE}
    deploy:
      replicas: 1
      placement:
        constraints: [node.role == worker]
"""


@pytest.fixture(scope="module")
def stacks_dir(tmp_path_factory):
    out = copy_stacks(tmp_path_factory.mktemp("stacks"))
    (out / STACK).mkdir()
    (out / STACK / "docker-compose.yml").write_text(COMPOSE)
    (out / STACK / "phoenix.json").write_text(json.dumps({
        "description": "Test stack: an image from the lab's private registry.",
        "environments": {"default": {"variables": {}}}}))
    return out


@pytest.fixture(scope="module")
def private_lab(tmp_path_factory, stacks_dir):
    with module_lab(tmp_path_factory.mktemp("privatelab"), SUBNET, BRIDGE, stacks_dir=stacks_dir) as lab:
        names = LabNames(BRIDGE, lab.config.hypervisor.lab.state_dir)
        gateway = lab.config.hypervisor.lab.gateway.ip
        private_registry.start(names, gateway, {USER: PASSWORD})
        try:
            yield lab
        finally:
            private_registry.stop(names)


@pytest.fixture
def run(private_lab, monkeypatch, capsys):
    return task_runner(private_lab.config, monkeypatch, capsys)


def manager(lab):
    return lab.docker(next(v for v in lab.vms if v.name == "portainer"))


def set_registries(lab, entries):
    hv_file = lab.config.hypervisor_file
    hv = json.loads(hv_file.read_text())
    hv.pop("registries", None)
    if entries:
        hv["registries"] = entries
    hv_file.write_text(json.dumps(hv, indent=2))
    lab.config = load_config(lab.config.config_dir, lab.config.stacks_dir)


def test_the_swarm_forms_and_the_image_is_in_the_private_registry_only(private_lab, run):
    code, out, _ = run(sync_tasks.sync_all)
    assert code == 0, out
    client = manager(private_lab)
    stand_in = client.images.get("thinkheads/ai-api:1.4.0")
    stand_in.tag(IMAGE.rsplit(":", 1)[0], "1.0")
    pushed = client.images.push(IMAGE.rsplit(":", 1)[0], tag="1.0",
                                auth_config={"username": USER, "password": PASSWORD})
    assert '"error"' not in pushed, pushed
    client.images.remove(IMAGE)
    # no login: the registry refuses a pull (the engine resolves the name, trusts the CA)
    with pytest.raises(Exception, match="no basic auth credentials"):
        client.images.pull(IMAGE)


def test_without_credentials_the_deploy_is_blocked(private_lab, run):
    set_registries(private_lab, [])
    code, out, _ = run(stack_tasks.deploy, stack=STACK, env="p1")
    assert code == 1, out
    assert f"blocked {NS}: image {IMAGE}: registry {private_registry.SERVER} answered: " in out, out
    assert "unauthorized" in out.lower() and "Traceback" not in out, out
    assert not [s for s in manager(private_lab).services.list() if s.name.startswith(NS)]


def test_with_wrong_credentials_the_deploy_is_blocked(private_lab, run, tmp_path):
    pw = tmp_path / "pw"
    pw.write_text("not-the-password\n")
    set_registries(private_lab, [{"server": private_registry.SERVER, "username": USER, "password_file": str(pw)}])
    code, out, _ = run(stack_tasks.deploy, stack=STACK, env="p1", verbose=True)
    assert code == 1, out
    assert f"blocked {NS}: registry {private_registry.SERVER}: docker login refused: " in out, out
    assert "unauthorized" in out.lower() and "not-the-password" not in out, out
    assert not [s for s in manager(private_lab).services.list() if s.name.startswith(NS)]


def test_with_the_right_credentials_a_worker_runs_the_task(private_lab, run, tmp_path):
    pw = tmp_path / "pw"
    pw.write_text(PASSWORD + "\n")
    set_registries(private_lab, [{"server": private_registry.SERVER, "username": USER, "password_file": str(pw)}])
    code, out, _ = run(stack_tasks.deploy, stack=STACK, env="p1", verbose=True, timeout="120")
    assert code == 0, out
    assert PASSWORD not in out and "ledger: record #1 deploy converged" in out, out
    client = manager(private_lab)
    [task] = running_tasks(client, f"{NS}_web")
    node = client.nodes.get(task["NodeID"])
    assert node.attrs["Spec"]["Role"] == "worker"
    assert task["Spec"]["ContainerSpec"]["Image"].startswith(IMAGE + "@sha256:")
    # again: no changes, and the login rode on the digests' read (no command more)
    code, out, _ = run(stack_tasks.deploy, stack=STACK, env="p1")
    assert code == 0 and f"{NS}: no changes" in out, out
