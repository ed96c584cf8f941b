"""Shared fixtures: the lab session (a real 3-VM lab, up once per session) and helpers
that read each VM's engine through the docker SDK on its socket: a second channel, so
integration tests do not verify state through the code they test."""

from __future__ import annotations

import contextlib
import fcntl
import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent

# The test suite's lab: its own subnet, bridge and state dir, so it never touches the
# user's lab (198.18.42.0/24 on phxlab0, /var/lib/phoenix-lab).
TEST_SUBNET = "198.18.77.0/24"
TEST_BRIDGE = "phxtest0"
SCRATCH_SUBNET = "198.18.78.0/24"  # short-lived labs that tests bring up and down
SCRATCH_BRIDGE = "phxtest1"


def lab_skip_reason() -> str | None:
    """Why lab tests cannot run here (None: they can)."""
    if os.geteuid() != 0:
        return "lab tests need root (network namespaces, a bridge, Docker engines)"
    from phoenix_tasks.lab import checks
    missing = checks.missing_packages()
    if missing:
        return f"lab tests need Debian packages: apt-get install {' '.join(missing)}"
    return None


@dataclass
class Lab:
    """A running lab and ways to reach its VMs that do not go through the lab code."""

    config: object  # phoenix_tasks.core.model.Config

    @property
    def names(self):
        from phoenix_tasks.lab import control
        return control.names_for(self.config)

    @property
    def vms(self):
        return self.config.real_vms

    def socket(self, vm) -> Path:
        return self.names.vm(vm.vmid).socket

    def docker(self, vm):
        """docker.DockerClient on the VM's own engine socket."""
        import docker
        return docker.DockerClient(base_url=f"unix://{self.socket(vm)}", timeout=30)

    def ssh(self, vm):
        """fabric.Connection with the lab's key and known_hosts; unknown host keys are
        rejected (paramiko RejectPolicy), as the transport's 'strict' policy does."""
        import fabric
        import paramiko
        access = self.config.hypervisor.vm_access
        conn = fabric.Connection(
            host=vm.address, user=access.user, port=access.port,
            connect_timeout=access.connect_timeout_s,
            config=fabric.Config(overrides={"load_ssh_configs": False}),
            connect_kwargs={"key_filename": str(access.private_key_file),
                            "look_for_keys": False, "allow_agent": False})
        conn.client.load_host_keys(str(access.known_hosts_file))
        conn.client.set_missing_host_key_policy(paramiko.RejectPolicy())
        return conn


def copy_stacks(out: Path, *extra: Path) -> Path:
    """The repository's stacks (and `extra` stack directories) copied into `out`, a
    directory a test may edit; returns `out`."""
    import shutil
    for src in [*sorted((REPO / "stacks").iterdir()), *extra]:
        shutil.copytree(src, out / src.name)
    return out


@pytest.fixture(scope="module")
def stacks_dir(tmp_path_factory):
    """A module's own copy of the repository's stacks (a module may define its own)."""
    return copy_stacks(tmp_path_factory.mktemp("stacks"))


def make_lab_config(out: Path, nodes: int, subnet: str, bridge: str, stacks_dir: Path | None = None):
    from phoenix_tasks.config import load_config
    from phoenix_tasks.lab.configgen import write_lab_config
    write_lab_config(out / "etc", nodes, subnet=subnet, bridge=bridge,
                     state_dir=str(out / "state"))
    return load_config(out / "etc", stacks_dir)


def lab_with_password(out: Path, nodes: int, subnet: str, bridge: str, password: str,
                      stacks_dir: Path | None = None):
    """make_lab_config's lab (config in out/etc) and Portainer's admin password in
    out/pw: (config, the password file)."""
    config = make_lab_config(out, nodes, subnet, bridge, stacks_dir)
    pw = out / "pw"
    pw.write_text(password + "\n")
    pw.chmod(0o600)  # as an operator keeps it: mode 0644 is a warning (issue 21)
    return config, pw


def task_env(config_dir: Path, password: Path | None = None, *, stacks_dir: Path | None = None,
             runtime_dir: Path | None = None) -> dict[str, str]:
    """The environment of a task run as a user runs it, in a child process: the config
    dir, Portainer's password file, the stacks dir, and XDG_RUNTIME_DIR/TMPDIR (another
    control machine: a cluster lock file of its own).  Output unbuffered, so a test can
    follow it while the task runs."""
    env = {"PHOENIX_CONFIG_DIR": str(config_dir), "PYTHONUNBUFFERED": "1",
           "PATH": os.environ.get("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")}
    if password is not None:
        env["PHOENIX_PORTAINER_ADMIN_PASSWORD_FILE"] = str(password)
    if stacks_dir is not None:
        env["PHOENIX_STACKS_DIR"] = str(stacks_dir)
    if runtime_dir is not None:
        env["XDG_RUNTIME_DIR"] = env["TMPDIR"] = str(runtime_dir)
    return env


def task_argv(name: str, *flags: str) -> list[str]:
    return [sys.executable, "-m", "invoke", "--search-root", str(REPO), name, *flags]


def run_task(env: dict[str, str], name: str, *flags: str, timeout: float = 900) -> subprocess.CompletedProcess[str]:
    return subprocess.run(task_argv(name, *flags), capture_output=True, text=True, timeout=timeout, env=env)


def start_task(env: dict[str, str], name: str, *flags: str) -> subprocess.Popen:
    return subprocess.Popen(task_argv(name, *flags), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=env)


def wait_until(what: str, check, timeout_s: float = 60, every: float = 0.5):
    """Poll check() every `every` s until it returns something true, and return that; fail
    the test naming `what` when it is still false after `timeout_s` (the one polling
    helper of the tests: checked once more at the deadline, so a loaded machine that
    sleeps past it does not fail a check that holds)."""
    deadline = time.monotonic() + timeout_s
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"not within {timeout_s:.0f} s: {what}")
        time.sleep(every)


def running_tasks(manager, service: str) -> list[dict]:
    """A service's tasks that run now (docker SDK, on a manager's own socket)."""
    return [t for t in manager.services.get(service).tasks(filters={"desired-state": "running"})
            if t["Status"]["State"] == "running"]


@contextlib.contextmanager
def module_lab(out: Path, subnet: str, bridge: str, nodes: int = 3, stacks_dir: Path | None = None):
    """A lab of its own for one test module (its own subnet and bridge), held under the
    bridge's lock and torn down at the end whatever happened."""
    reason = lab_skip_reason()
    if reason:
        pytest.skip(reason)
    from phoenix_tasks.lab import control
    config = make_lab_config(out, nodes, subnet, bridge, stacks_dir)
    with bridge_lock(bridge):
        clear_stale_lab(bridge)
        try:
            control.up(config)
            yield Lab(config)
        finally:
            control.down(config.hypervisor.lab.state_dir, config.hypervisor.lab.bridge)


def call_task(task, **flags) -> tuple[int, str]:
    """A task called in-process as `inv` calls it (with a MockContext): (its exit code,
    the message of its Exit, "" when none)."""
    from invoke import MockContext
    from invoke.exceptions import Exit
    try:
        task(MockContext(), **flags)
    except Exit as exc:
        return exc.code, exc.message or ""
    return 0, ""


def task_runner(config, monkeypatch, capsys):
    """Run a task in-process against `config` (as `inv` would, with MockContext);
    returns go(task, **flags) -> (exit code, stdout + stderr, the last Transport made)."""
    from phoenix_tasks.tasks import common
    monkeypatch.setenv("PHOENIX_CONFIG_DIR", str(config.config_dir))
    monkeypatch.setenv("PHOENIX_STACKS_DIR", str(config.stacks_dir))
    made = []
    real = common.transport_for

    def spy(cfg, verbose):
        t = real(cfg, verbose)
        made.append(t)
        return t

    monkeypatch.setattr(common, "transport_for", spy)

    def go(task, **flags):
        made.clear()
        code, message = call_task(task, **flags)  # inv prints the message on stderr
        captured = capsys.readouterr()
        return code, captured.out + captured.err + message, (made[-1] if made else None)

    return go


@contextlib.contextmanager
def bridge_lock(bridge: str, wait_s: float = 900):
    """Hold the test suite's claim on `bridge` for as long as a lab on it is in use.

    Two pytest sessions on one machine (two engineers, or CI and a developer) would
    otherwise tear down each other's lab as "stale".  flock is released by the kernel
    when a killed session dies, so a lab found on the bridge while holding the lock
    really is stale."""
    lock_dir = Path("/run/lock") if Path("/run/lock").is_dir() else Path("/tmp")
    path = lock_dir / f"phoenix-lab-test-{bridge}.lock"
    with open(path, "a") as f:
        deadline = time.monotonic() + wait_s
        while True:
            try:
                fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    pytest.fail(f"another test session holds {path} for over {wait_s:.0f} s")
                time.sleep(0.5)
        try:
            yield
        finally:
            path.unlink(missing_ok=True)
            fcntl.flock(f, fcntl.LOCK_UN)


def clear_stale_lab(bridge: str) -> None:
    """Tear down a lab left on `bridge` by a killed earlier session (found through the
    state-dir pointer in its run dir)."""
    from phoenix_tasks.lab import control
    old = control.state_dir_of_bridge(bridge)
    if old is not None:
        control.down(old, bridge)


@pytest.fixture(scope="session")
def lab(tmp_path_factory):
    """A 3-VM lab (manager, gpu worker, cpu worker), up for the whole session and torn
    down at its end, also when tests or the bring-up fail."""
    with module_lab(tmp_path_factory.mktemp("lab"), TEST_SUBNET, TEST_BRIDGE) as running:
        yield running


@pytest.fixture
def scratch_config(tmp_path):
    """Config of a 2-VM lab that one test brings up itself; torn down afterwards
    whatever the test did."""
    reason = lab_skip_reason()
    if reason:
        pytest.skip(reason)
    from phoenix_tasks.lab import control
    config = make_lab_config(tmp_path, 2, SCRATCH_SUBNET, SCRATCH_BRIDGE)
    with bridge_lock(SCRATCH_BRIDGE):
        clear_stale_lab(SCRATCH_BRIDGE)
        try:
            yield config
        finally:
            control.down(config.hypervisor.lab.state_dir, config.hypervisor.lab.bridge)


def run_lab_task(args: list[str], *, env: dict | None = None,
                 user: str | None = None) -> subprocess.CompletedProcess[str]:
    """Run `inv lab.<task> ...` in a child process, as the CLI does (exit code, stderr).

    The lab collection is loaded directly, so this does not depend on how tasks.py
    composes collections.  user: run as that user (setpriv) to test refusals."""
    code = ("from invoke import Collection, Program; "
            "from phoenix_tasks.tasks import lab; "
            "ns = Collection(); ns.add_collection(lab.ns); "
            "Program(namespace=ns, binary='inv').run()")
    argv = [sys.executable, "-c", code, *args]
    if user:
        env = {"HOME": "/", **(env or {})}
        argv = ["setpriv", f"--reuid={user}", f"--regid={user}", "--clear-groups", *argv]
    full_env = {**os.environ, "PYTHONPATH": str(REPO), **(env or {})}
    return subprocess.run(argv, capture_output=True, text=True, env=full_env, cwd=REPO,
                          timeout=300)
