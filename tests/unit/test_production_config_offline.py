"""Tasks on the production config (etc/, Proxmox IPs) run only under `unshare --net`:
an empty network namespace where any connection fails locally and nothing leaves
the machine. They must fail cleanly, by name, with no traceback."""

import os
import shutil
import subprocess

import pytest

from conftest import REPO, task_argv

pytestmark = pytest.mark.skipif(os.geteuid() != 0 or not shutil.which("unshare"),
                                reason="needs root for `unshare --net` (a test never reaches etc/'s real IPs)")


def run_offline(*args, **extra_env):
    env = {k: v for k, v in os.environ.items() if k not in ("PHOENIX_CONFIG_DIR", "PHOENIX_STACKS_DIR")}
    env.pop("PHOENIX_PORTAINER_ADMIN_PASSWORD_FILE", None)
    env.update(extra_env)
    return subprocess.run(["unshare", "--net", *task_argv(*args)], capture_output=True, text=True, env=env,
                          cwd=REPO, timeout=120)


def test_status_reports_each_vm_unreachable_by_name():
    res = run_offline("swarm.status", "--json")
    assert res.returncode == 1, res.stderr
    assert "Traceback" not in res.stderr
    import json
    doc = json.loads(res.stdout)
    assert doc["degraded"] is True
    assert {(n["name"], n["state"]) for n in doc["nodes"]} == {("portainer", "unreachable"), ("drphoenix", "unreachable")}


def test_join_dry_run_reports_unreachable_and_changes_nothing():
    res = run_offline("swarm.join", "--dry-run")
    assert res.returncode == 1, res.stdout + res.stderr  # the plan cannot converge
    assert "blocked portainer (vmid 1001): unreachable: cannot reach 10.0.0.101:22 over SSH" in res.stdout
    assert "blocked drphoenix (vmid 1002): no manager of the swarm can be reached (portainer" in res.stdout
    assert "dry run: nothing was changed" in res.stdout


def test_sync_all_refuses_a_missing_password_file_before_connecting():
    res = run_offline("sync-all")
    assert res.returncode == 1, res.stdout + res.stderr
    assert res.stderr.strip().splitlines() == [
        "error: Portainer admin password file /etc/phoenix/secrets/portainer_admin_password "
        f"({REPO}/etc/phoenix_hypervisor_config.json: /portainer/admin_password_file): file not found"]
    assert res.stdout == ""


def test_sync_all_on_proxmox_refuses_a_missing_key_then_token_then_names_the_api_it_cannot_reach(tmp_path):
    """The Proxmox provider reads the VM key's public half and the API token before
    any connection; with both, the API at etc/'s host cannot be reached (no network
    here) and that is one line naming host:port, for every verb that reads VMs."""
    password = tmp_path / "pw"
    password.write_text("a-long-enough-password\n")
    password.chmod(0o600)  # a password file others can read is a warning of its own
    home = tmp_path / "home"
    home.mkdir()
    res = run_offline("sync-all", PHOENIX_PORTAINER_ADMIN_PASSWORD_FILE=str(password), HOME=str(home))
    assert (res.returncode, res.stdout) == (1, ""), res.stderr
    assert res.stderr.strip() == (f"error: vm_access.private_key_file {home}/.ssh/phoenix_vm_ed25519 does not "
                                  "exist: cloud-init needs its public half for the VMs (make one with ssh-keygen "
                                  "-t ed25519)")
    (home / ".ssh").mkdir()
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(home / ".ssh" / "phoenix_vm_ed25519")],
                   check=True, timeout=30)
    res = run_offline("sync-all", PHOENIX_PORTAINER_ADMIN_PASSWORD_FILE=str(password), HOME=str(home))
    assert (res.returncode, res.stdout) == (1, ""), res.stderr
    assert res.stderr.strip() == ("error: the environment variable PHOENIX_PROXMOX_API_TOKEN "
                                  "(proxmox.api_token_env) is not set or empty")
    token = "root@pam!phoenix=0b9c1f9e-0000-4000-8000-00000000beef"
    for args in (("sync-all",), ("vm.status",), ("vm.create", "--vmid", "1002", "--dry-run")):
        res = run_offline(*args, PHOENIX_PORTAINER_ADMIN_PASSWORD_FILE=str(password), HOME=str(home),
                          PHOENIX_PROXMOX_API_TOKEN=token)
        assert res.returncode == 1, res.stdout + res.stderr
        assert "error: cannot reach the Proxmox API at 10.0.0.13:8006: " in res.stderr, args
        assert "Traceback" not in res.stderr and "beef" not in res.stdout + res.stderr
