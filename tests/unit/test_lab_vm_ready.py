"""A started VM's dockerd is taken for dead only when its whole pid file names a
process that is gone: on a crowded machine the file is empty for a moment while
dockerd writes it (the 20-VM lab test failed on that once, in CI)."""

import os
import subprocess
import sys
from types import SimpleNamespace

from phoenix_tasks.lab.vm import dockerd_died


def test_a_pid_file_being_written_is_not_a_death(tmp_path):
    pidfile = tmp_path / "docker.pid"
    names = SimpleNamespace(dockerd_pidfile=pidfile)
    assert not dockerd_died(names)  # not written yet
    pidfile.write_text("")
    assert not dockerd_died(names)  # being written
    pidfile.write_text(f"{os.getpid()}\n")
    assert not dockerd_died(names)  # written, and the process runs


def test_a_pid_file_naming_a_process_that_is_gone_is_a_death(tmp_path):
    gone = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True).stdout.strip()
    pidfile = tmp_path / "docker.pid"
    pidfile.write_text(gone + "\n")
    assert dockerd_died(SimpleNamespace(dockerd_pidfile=pidfile))
