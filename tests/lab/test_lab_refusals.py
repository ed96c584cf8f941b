"""Bad input and faults: a clear error, and nothing half-made."""

from __future__ import annotations

import json
import subprocess

import pytest

from phoenix_tasks.lab import checks, control
from phoenix_tasks.lab.configgen import write_lab_config

from conftest import SCRATCH_BRIDGE, TEST_SUBNET, make_lab_config, run_lab_task

pytestmark = pytest.mark.lab


def bridge_exists(name: str) -> bool:
    return subprocess.run(["ip", "link", "show", "dev", name], capture_output=True).returncode == 0


def test_not_root_is_refused_with_exit_1_and_nothing_made(scratch_config):
    state_dir = scratch_config.hypervisor.lab.state_dir
    result = run_lab_task(["lab.up", "--config-dir", str(scratch_config.config_dir)],
                          user="65534")
    assert result.returncode == 1
    assert "needs root" in result.stderr
    assert "Traceback" not in result.stderr
    assert not state_dir.exists() and not bridge_exists(SCRATCH_BRIDGE)


def test_missing_packages_name_the_apt_get_command(scratch_config):
    result = run_lab_task(["lab.up", "--config-dir", str(scratch_config.config_dir)],
                          env={"PATH": "/nonexistent"})
    assert result.returncode == 1
    assert "apt-get install" in result.stderr and "docker.io" in result.stderr
    assert "openssh-server" in result.stderr and "iproute2" in result.stderr
    assert not scratch_config.hypervisor.lab.state_dir.exists()
    assert not bridge_exists(SCRATCH_BRIDGE)


def test_subnet_overlapping_an_existing_route_is_refused(lab, tmp_path):
    """The session lab's bridge routes TEST_SUBNET: a second lab on it must refuse."""
    config = make_lab_config(tmp_path, 1, TEST_SUBNET, SCRATCH_BRIDGE)
    with pytest.raises(checks.LabRefused, match="overlaps") as refused:
        control.up(config)
    assert "phxtest0" in str(refused.value)
    assert not bridge_exists(SCRATCH_BRIDGE)
    assert not config.hypervisor.lab.state_dir.exists()


def test_vm_ip_outside_the_lab_subnet_is_refused_before_anything(tmp_path):
    etc = tmp_path / "etc"
    write_lab_config(etc, 2, subnet="198.18.78.0/24", bridge=SCRATCH_BRIDGE,
                     state_dir=str(tmp_path / "state"))
    vms = json.loads((etc / "phoenix_vm_configs.json").read_text())
    vms["vms"][2]["network_config"]["ip"] = "198.18.79.12/24"
    (etc / "phoenix_vm_configs.json").write_text(json.dumps(vms))
    result = run_lab_task(["lab.up", "--config-dir", str(etc)])
    assert result.returncode == 1
    assert "outside the lab subnet" in result.stderr
    assert not (tmp_path / "state").exists() and not bridge_exists(SCRATCH_BRIDGE)


def test_a_bridge_that_is_not_the_labs_is_refused(scratch_config):
    subprocess.run(["ip", "link", "add", "name", SCRATCH_BRIDGE, "type", "bridge"], check=True)
    try:
        with pytest.raises(checks.LabRefused, match="not recorded"):
            control.up(scratch_config)
        assert not scratch_config.hypervisor.lab.state_dir.exists()
    finally:
        subprocess.run(["ip", "link", "delete", SCRATCH_BRIDGE], check=True)


def test_proxmox_config_is_refused_by_lab_up():
    result = run_lab_task(["lab.up", "--config-dir", "etc"])
    assert result.returncode == 1
    assert "not 'lab'" in result.stderr


def test_down_never_deletes_a_bridge_this_lab_did_not_create(tmp_path):
    """A configured bridge that exists but was made by someone else (docker0, say) is
    left in place by lab.down, with no lab record and no state-dir pointer."""
    foreign = "phxforeign0"
    subprocess.run(["ip", "link", "add", "name", foreign, "type", "bridge"], check=True)
    try:
        config = make_lab_config(tmp_path, 1, "198.18.91.0/24", foreign)
        result = run_lab_task(["lab.down", "--config-dir", str(config.config_dir)])
        assert result.returncode == 0, result.stderr
        assert bridge_exists(foreign)
        assert "left interface phxforeign0 in place" in result.stdout
    finally:
        subprocess.run(["ip", "link", "delete", foreign], capture_output=True)
