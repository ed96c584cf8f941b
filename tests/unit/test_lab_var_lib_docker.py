"""/var/lib/docker on the host (the lab VMs' mount point for their data root): made
when missing, removed only when this lab made it and nothing else uses it."""

from __future__ import annotations

import pytest

from phoenix_tasks.lab import var_lib_docker as vld


@pytest.fixture
def paths(tmp_path):
    """(the directory as /var/lib/docker, a run root like /run/phoenix-lab)."""
    return tmp_path / "var-lib-docker", tmp_path / "run-root"


def test_a_missing_directory_is_made_empty_once(paths):
    path, _ = paths
    assert vld.missing(path) and vld.problem(path) is None
    assert vld.make(path) is True
    assert path.is_dir() and list(path.iterdir()) == [] and (path.stat().st_mode & 0o777) == 0o711
    assert vld.make(path) is False and not vld.missing(path)


def test_a_file_or_a_dangling_link_there_is_a_problem(tmp_path):
    (tmp_path / "file").write_text("x")
    assert "is not a directory" in vld.problem(tmp_path / "file")
    (tmp_path / "link").symlink_to(tmp_path / "nowhere")
    assert "symlink to nothing" in vld.problem(tmp_path / "link")
    assert not vld.missing(tmp_path / "link")  # never made over a link
    (tmp_path / "dir").mkdir()
    (tmp_path / "good-link").symlink_to(tmp_path / "dir")
    assert vld.problem(tmp_path / "good-link") is None


def test_removed_when_this_lab_made_it_and_it_is_empty(paths):
    path, run_root = paths
    vld.make(path)
    run_root.mkdir()  # this lab's own run dir is already gone
    assert vld.remove_if_made(True, path, run_root) == (True, f"removed {path} (this lab made it)")
    assert not path.exists()
    assert vld.remove_if_made(True, path, run_root) == (False, "")  # twice: nothing to say


def test_never_removed_when_this_lab_did_not_make_it(paths):
    path, run_root = paths
    vld.make(path)
    assert vld.remove_if_made(False, path, run_root) == (False, "")
    assert path.is_dir()


def test_left_in_place_when_something_wrote_to_it(paths):
    path, run_root = paths
    vld.make(path)
    (path / "volumes").mkdir()
    removed, line = vld.remove_if_made(True, path, run_root)
    assert not removed and "no longer empty" in line and (path / "volumes").is_dir()


def test_left_in_place_while_another_lab_runs(paths):
    """Removing it would detach the bind mounts in that lab's VMs."""
    path, run_root = paths
    vld.make(path)
    (run_root / "ab12").mkdir(parents=True)
    removed, line = vld.remove_if_made(True, path, run_root)
    assert not removed and path.is_dir()
    assert line == f"left {path} in place (empty): another lab on this machine ({run_root / 'ab12'}) mounts it in its VMs"
