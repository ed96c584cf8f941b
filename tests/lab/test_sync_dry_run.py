"""sync-all --dry-run on a lab that does not exist yet: reads, plans, creates nothing."""

import subprocess
import sys

import pytest

from conftest import REPO, lab_skip_reason

pytestmark = pytest.mark.lab


def test_dry_run_of_a_new_lab_creates_nothing(tmp_path):
    reason = lab_skip_reason()
    if reason:
        pytest.skip(reason)
    from phoenix_tasks.lab.configgen import write_lab_config
    write_lab_config(tmp_path / "etc", 2, subnet="198.18.96.0/24", bridge="phxtest9", state_dir=str(tmp_path / "state"))
    netns_before = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    res = subprocess.run([sys.executable, "-m", "invoke", "--search-root", str(REPO), "sync-all", "--dry-run"],
                         capture_output=True, text=True, env={"PHOENIX_CONFIG_DIR": str(tmp_path / "etc"),
                                                             "PATH": "/usr/sbin:/usr/bin:/sbin:/bin"}, timeout=120)
    assert res.returncode == 0, res.stdout + res.stderr
    assert "vms: 2 to create or start: portainer (vmid 1001), drphoenix (vmid 1002)" in res.stdout
    assert "dry run: nothing was changed" in res.stdout
    assert not (tmp_path / "state").exists()
    assert subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout == netns_before
    assert "phxtest9" not in subprocess.run(["ip", "-br", "link"], capture_output=True, text=True).stdout
