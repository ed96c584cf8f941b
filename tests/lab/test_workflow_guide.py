"""docs/swarm_workflow_guide.md, run as written: every `phoenix ...` command of its bash
blocks, in order, through bin/phoenix, on a lab that does not exist before the first
`sync all` (the guide's one-time setup creates it).  The Portainer admin password is
configured, and its value must appear in no command's output."""

import os
import subprocess

import docker
import pytest

from conftest import REPO, bridge_lock, clear_stale_lab, lab_skip_reason, make_lab_config
from guide_commands import GUIDE, guide_commands

pytestmark = pytest.mark.lab

SUBNET, BRIDGE = "198.18.62.0/24", "phxtest7"
PASSWORD = "guide-test-admin-password-7f3a"


def test_the_guide_runs_as_written(tmp_path):
    reason = lab_skip_reason()
    if reason:
        pytest.skip(reason)
    from phoenix_tasks.lab import control
    config = make_lab_config(tmp_path, 3, SUBNET, BRIDGE)
    password = tmp_path / "portainer_admin_password"
    password.write_text(PASSWORD + "\n")
    password.chmod(0o600)
    env = {**os.environ, "PHOENIX_CONFIG_DIR": str(config.config_dir),
           "PHOENIX_PORTAINER_ADMIN_PASSWORD_FILE": str(password)}
    env.pop("PHOENIX_STACKS_DIR", None)
    commands = guide_commands(GUIDE.read_text())
    assert len(commands) >= 10
    with bridge_lock(BRIDGE):
        clear_stale_lab(BRIDGE)
        try:
            outputs = []
            for command in commands:
                r = subprocess.run([str(REPO / "bin" / "phoenix"), *command.argv], capture_output=True,
                                   text=True, env=env, timeout=900, cwd=tmp_path)
                outputs.append((command, r))
                assert r.returncode == command.exits, (
                    f"{command} (guide line {command.line}) exited {r.returncode}, the guide says "
                    f"{command.exits}\n{r.stdout}\n{r.stderr}")
                assert "Traceback" not in r.stderr, f"{command}\n{r.stderr}"
                assert PASSWORD not in r.stdout + r.stderr, f"{command} printed the admin password"
            by_text = {}
            for command, r in outputs:
                by_text.setdefault(str(command), []).append(r)
            first, second = by_text["phoenix sync all"][:2]
            assert "sync-all: converged (changes applied)" in first.stdout
            assert "sync-all: converged (no changes)" in second.stdout
            assert "vms: no changes" in second.stdout and "swarm init/join/labels: no changes" in second.stdout
            assert "prod_portainer_service: no changes" in second.stdout
            deploys = by_text["phoenix swarm deploy thinkheads_ai_app --env dev1"]
            assert "converged: dev1_thinkheads_ai_app deployed" in deploys[0].stdout
            assert "dev1_thinkheads_ai_app: no changes" in deploys[1].stdout
            assert "answers on https://198.18.62.11:9443" in by_text["phoenix portainer status"][0].stdout
            # Second channel: the manager's own engine.
            names = control.names_for(config)
            manager = docker.DockerClient(base_url=names.vm(1001).docker_host)
            running = {s.name for s in manager.services.list()}
            assert {"prod_portainer_service_portainer", "prod_portainer_service_agent"} <= running
            assert not any(name.startswith("dev1_") for name in running)  # the guide removed dev1
            assert [s.name for s in manager.secrets.list()
                    if s.name.startswith("prod_portainer_service_portainer_admin_password_")]
        finally:
            control.down(config.hypervisor.lab.state_dir, config.hypervisor.lab.bridge)
