"""One environment cannot reach another's secrets (issue 21, item 2), on a real lab.

A 2-VM lab, its swarm and Portainer (with its admin password secret) made by
sync-all.  A stack `thief`, deployed as `dev9`, names Portainer's admin password
secret (of Portainer's environment) as an external secret: the deploy is refused
before anything changes, and the swarm, read through the docker SDK on the manager's
own socket, holds exactly what it held before.  Listed in the stack's phoenix.json
`shares`, the same secret passes, and the plan shows the share.  The broken stack does
not block a command on another stack (item 7).
"""

from __future__ import annotations

import json
import shutil

import pytest

from conftest import module_lab, run_task, task_env

pytestmark = pytest.mark.lab

SUBNET, BRIDGE = "198.18.125.0/24", "phxh21x"
PASSWORD = "cross-env-lab-password-7d1e"
COMPOSE = """services:
  reader:
    image: portainer/agent:2.21.4
    secrets: [stolen]
    deploy:
      replicas: 1
secrets:
  stolen:
    external: true
    name: {secret}
"""


@pytest.fixture(scope="module")
def lab(tmp_path_factory, stacks_dir):
    out = tmp_path_factory.mktemp("crossenv")
    with module_lab(out, SUBNET, BRIDGE, nodes=2, stacks_dir=stacks_dir) as lab:
        pw = out / "pw"
        pw.write_text(PASSWORD + "\n")
        pw.chmod(0o600)
        lab.env = task_env(lab.config.config_dir, pw, stacks_dir=stacks_dir)
        res = run_task(lab.env, "sync-all")
        assert res.returncode == 0, res.stdout + res.stderr
        yield lab


def manager(lab):
    return lab.docker(next(vm for vm in lab.vms if vm.swarm_role == "manager"))


def swarm_objects(client) -> dict[str, list[str]]:
    """Every service, secret, config and network of the swarm, by name (docker SDK)."""
    return {"services": sorted(s.name for s in client.services.list()),
            "secrets": sorted(s.name for s in client.secrets.list()),
            "configs": sorted(c.name for c in client.configs.list()),
            "networks": sorted(n.name for n in client.networks.list())}


def write_thief(stacks_dir, secret: str, shares: dict | None = None) -> None:
    d = stacks_dir / "thief"
    d.mkdir(exist_ok=True)
    (d / "docker-compose.yml").write_text(COMPOSE.format(secret=secret))
    manifest = {"description": "reads another environment's secret",
                "environments": {"dev9": {"variables": {}}}}
    if shares:
        manifest["shares"] = shares
    (d / "phoenix.json").write_text(json.dumps(manifest))


def test_another_environments_secret_is_refused_and_nothing_changes(lab, stacks_dir):
    client = manager(lab)
    penv = lab.config.hypervisor.portainer.env
    (secret,) = [s for s in swarm_objects(client)["secrets"]
                 if s.startswith(f"{penv}_portainer_service_portainer_admin_password_")]
    before = swarm_objects(client)
    write_thief(stacks_dir, secret)
    try:
        res = run_task(lab.env, "swarm.deploy", "--stack", "thief", "--env", "dev9", "--no-resolve")
        output = res.stdout + res.stderr
        assert res.returncode == 1, output
        assert (f"thief/docker-compose.yml: /secrets/stolen: external secret {secret!r} belongs to environment "
                f"{penv!r}, not 'dev9'") in output
        assert "nothing was done" in output
        assert PASSWORD not in output

        # The unrelated stack does not block a command on another one: a warning only.
        other = run_task(lab.env, "swarm.rm", "--stack", "qdrant_service", "--env", "dev9", "--dry-run")
        assert other.returncode == 0, other.stdout + other.stderr
        assert "stack 'thief' is left out: this command does not use it" in other.stderr

        after = swarm_objects(client)
        assert after == before
        assert not [n for names in after.values() for n in names if n.startswith("dev9_")]
    finally:
        shutil.rmtree(stacks_dir / "thief")


def test_a_listed_share_passes_and_the_plan_shows_it(lab, stacks_dir):
    client = manager(lab)
    penv = lab.config.hypervisor.portainer.env
    (secret,) = [s for s in swarm_objects(client)["secrets"]
                 if s.startswith(f"{penv}_portainer_service_portainer_admin_password_")]
    before = swarm_objects(client)
    write_thief(stacks_dir, secret, shares={"secrets": [secret]})
    try:
        res = run_task(lab.env, "swarm.deploy", "--stack", "thief", "--env", "dev9", "--dry-run", "--no-resolve")
        output = res.stdout + res.stderr
        assert res.returncode == 0, output
        assert (f"shares secret {secret!r} of environment {penv!r} (listed in phoenix.json /shares/secrets)"
                in res.stdout), output
        assert PASSWORD not in output
        assert swarm_objects(client) == before
    finally:
        shutil.rmtree(stacks_dir / "thief")
