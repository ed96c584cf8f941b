"""`pip install .` gives a working Phoenix outside the checkout: `phoenix` (the verb CLI)
and `phoenix-inv` (the tasks), schemas inside the package, configuration from
PHOENIX_CONFIG_DIR / PHOENIX_STACKS_DIR or the working directory.

Offline: the package is built without build isolation (setuptools is in the project's
environment, scripts/setup.sh) and installed without dependencies into a fresh venv
that sees this environment's site-packages for them (a .pth file)."""

from __future__ import annotations

import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
SKIP = shutil.ignore_patterns(".venv", ".git", "__pycache__", "build", "*.egg-info", ".pytest_cache")


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    root = tmp_path_factory.mktemp("install")
    src, venv = root / "src", root / "venv"
    shutil.copytree(REPO, src, ignore=SKIP)
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=120)
    python = venv / "bin" / "python"
    purelib = subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                             check=True, capture_output=True, text=True).stdout.strip()
    Path(purelib, "phoenix_deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    res = subprocess.run([sys.executable, "-m", "pip", "--python", str(python), "install", "-q", "--no-deps",
                          "--no-build-isolation", "--no-index", str(src)],
                         capture_output=True, text=True, timeout=300, cwd=root)
    assert res.returncode == 0, res.stdout + res.stderr
    shutil.rmtree(src)  # nothing may come from the source tree any more
    elsewhere = root / "elsewhere"
    elsewhere.mkdir()
    return venv, elsewhere


def run(installed, *argv, **env):
    venv, cwd = installed
    full_env = {"PATH": f"{venv / 'bin'}:/usr/bin:/bin", "HOME": str(cwd), **env}
    return subprocess.run([str(venv / "bin" / argv[0]), *argv[1:]], capture_output=True, text=True,
                          timeout=120, cwd=cwd, env=full_env)


def test_the_package_is_the_installed_one(installed):
    venv, _ = installed
    res = run(installed, "python", "-c", "import phoenix_tasks, phoenix_tasks.core.paths as p; "
                                         "print(phoenix_tasks.__file__); print(p.IN_CHECKOUT); print(p.SCHEMA_DIR)")
    where, in_checkout, schemas = res.stdout.split()
    assert Path(where).is_relative_to(venv) and in_checkout == "False"
    assert (Path(schemas) / "phoenix_stack.schema.json").is_file()
    assert (Path(schemas) / "compose" / "docker-cli" / "config_schema_v3.8.json").is_file()


def test_phoenix_help_from_another_directory(installed):
    res = run(installed, "phoenix", "help")
    assert res.returncode == 0, res.stderr
    assert res.stdout.startswith("usage: phoenix") and "swarm logs <stack> --env <env>" in res.stdout


def test_phoenix_validate_from_another_directory(installed):
    res = run(installed, "phoenix", "validate", PHOENIX_CONFIG_DIR=str(REPO / "etc"),
              PHOENIX_STACKS_DIR=str(REPO / "stacks"))
    assert res.returncode == 0, res.stdout + res.stderr
    assert f"configuration valid: 3 VMs (2 in the swarm), 3 stacks, from {REPO / 'etc'} and {REPO / 'stacks'}" \
        in res.stdout


def test_without_the_variables_the_working_directory_is_read(installed):
    _, cwd = installed
    res = run(installed, "phoenix", "validate")
    assert res.returncode == 1
    assert "etc: /: configuration directory not found (set PHOENIX_CONFIG_DIR)" in res.stderr
    assert "stacks: /: stacks directory not found (set PHOENIX_STACKS_DIR)" in res.stderr
    shutil.copytree(REPO / "etc", cwd / "etc", ignore=shutil.ignore_patterns("lab"))
    shutil.copytree(REPO / "stacks", cwd / "stacks")
    try:
        res = run(installed, "phoenix", "validate")
        assert res.returncode == 0 and "from etc and stacks" in res.stdout, res.stdout + res.stderr
    finally:
        shutil.rmtree(cwd / "etc")
        shutil.rmtree(cwd / "stacks")


def test_the_tasks_are_there_as_phoenix_inv_and_python_m(installed):
    res = run(installed, "phoenix-inv", "--list")
    assert res.returncode == 0 and "swarm.logs" in res.stdout and "swarm.ps" in res.stdout, res.stderr
    res = run(installed, "python", "-m", "phoenix_tasks", "--help", "swarm.diff")
    assert res.returncode == 0 and "--exit-code" in res.stdout, res.stderr


def test_a_usage_error_still_exits_2(installed):
    res = run(installed, "phoenix", "swarm", "diff", "thinkheads_ai_app", "--env", "dev1", "--no-such-flag",
              PHOENIX_CONFIG_DIR=str(REPO / "etc"), PHOENIX_STACKS_DIR=str(REPO / "stacks"))
    assert res.returncode == 2, res.stdout + res.stderr
