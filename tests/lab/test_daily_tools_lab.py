"""The daily reads against a real lab: swarm.logs (merged, one service, --follow ended
by SIGINT with nothing left on the VM), swarm.ps (a rejected task's reason and node),
swarm.diff --exit-code.  State is made and checked through a second channel: the docker
SDK on the manager's own socket, and the VM's process list over the lab's own SSH."""

from __future__ import annotations

import json
import shlex
import signal
import time

import pytest

from phoenix_tasks.stack import logs as logs_mod
from phoenix_tasks.stack import ps as ps_mod
from phoenix_tasks.stack.diff_report import CHANGES_EXIT
from phoenix_tasks.tasks import observe
from phoenix_tasks.tasks import stacks as stack_tasks
from phoenix_tasks.tasks import swarm as swarm_tasks

from conftest import module_lab, start_task, task_env, task_runner

pytestmark = pytest.mark.lab

SUBNET, BRIDGE = "198.18.131.0/24", "phxh23b"
APP = "thinkheads_ai_app"
SERVING = "stand-in for thinkheads/ai-api:1.4.0: serving on 8000"


@pytest.fixture(scope="module")
def daily_lab(tmp_path_factory):
    with module_lab(tmp_path_factory.mktemp("daily"), SUBNET, BRIDGE, nodes=2) as lab:
        yield lab


@pytest.fixture
def run(daily_lab, monkeypatch, capsys):
    return task_runner(daily_lab.config, monkeypatch, capsys)


def manager_vm(lab):
    return next(v for v in lab.vms if v.swarm_role == "manager")


def remote_follows(lab, namespace: str) -> list[str]:
    """`docker service logs --follow` processes of `namespace`, from the VM's own process list."""
    res = lab.ssh(manager_vm(lab)).run("ps -eo pid,args", hide=True, warn=True, in_stream=False)
    return [line for line in res.stdout.splitlines() if "service logs --follow" in line and namespace in line]


def test_swarm_and_environment_come_up(daily_lab, run):
    for task in (swarm_tasks.init, swarm_tasks.join, swarm_tasks.label):
        code, out, _ = run(task)
        assert code == 0, out
    code, out, _ = run(stack_tasks.deploy, stack=APP, env="dev1", no_resolve=True)
    assert code == 0, out
    names = {s.name for s in daily_lab.docker(manager_vm(daily_lab)).services.list()}
    assert {"dev1_thinkheads_ai_app_api", "dev1_thinkheads_ai_app_inference"} <= names


def test_logs_of_every_service_carry_dockers_prefix(daily_lab, run):
    code, out, t = run(observe.logs, stack=APP, env="dev1")
    assert code == 0, out
    api = [line for line in out.splitlines() if line.startswith("dev1_thinkheads_ai_app_api.1.")]
    assert any(line.endswith(f"| {SERVING}") and "@portainer" in line for line in api), out
    assert any(line.startswith("dev1_thinkheads_ai_app_inference.1.") and "serving on 8080" in line
               for line in out.splitlines()), out
    assert t.mutating_commands == []


def test_logs_of_one_service(daily_lab, run):
    code, out, _ = run(observe.logs, stack=APP, env="dev1", service="api", timestamps=True)
    assert code == 0, out
    lines = [line for line in out.splitlines() if line.strip()]
    assert lines and all(" dev1_thinkheads_ai_app_api.1." in line for line in lines), out
    assert SERVING in out


def test_unknown_environment_is_one_line(daily_lab, run):
    code, out, _ = run(observe.logs, stack=APP, env="dev9")
    assert code == 1
    assert out.strip() == ("error: environment 'dev9' of stack 'thinkheads_ai_app' is not on the swarm "
                           "(no service of dev9_thinkheads_ai_app; `phoenix swarm envs` lists what is)")


def test_follow_streams_and_sigint_ends_it_with_nothing_left_on_the_vm(daily_lab):
    config = daily_lab.config
    proc = start_task(task_env(config.config_dir, stacks_dir=config.stacks_dir), "swarm.logs",
                      "--stack", APP, "--env", "dev1", "--follow")
    try:
        seen = []
        for line in proc.stdout:  # the serving line is in the log already: it comes first
            seen.append(line)
            if SERVING in line:
                break
        assert any(SERVING in line for line in seen), seen + [proc.stderr.read()]
        assert remote_follows(daily_lab, "dev1_thinkheads_ai_app"), "the follow does not run on the VM"
        proc.send_signal(signal.SIGINT)
        code = proc.wait(timeout=2)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    stderr = proc.stderr.read()
    assert code == 0, stderr
    assert "Traceback" not in stderr
    left = remote_follows(daily_lab, "dev1_thinkheads_ai_app")
    for _ in range(50):  # sshd hangs the terminal up as the channel closes: let it finish
        if not left:
            break
        time.sleep(0.1)
        left = remote_follows(daily_lab, "dev1_thinkheads_ai_app")
    assert left == []


def test_ps_shows_a_rejected_task_with_its_reason_and_node(daily_lab, run):
    client = daily_lab.docker(manager_vm(daily_lab))
    worker = next(v for v in daily_lab.vms if v.swarm_role == "worker")
    svc = client.services.create(  # an image that exists nowhere, on the worker: rejected there
        "phoenix/missing:1", name="ps1_thinkheads_ai_app_api",
        labels={"com.docker.stack.namespace": "ps1_thinkheads_ai_app"},
        constraints=[f"node.hostname == {worker.name}"])
    try:
        for _ in range(300):
            if any(t["Status"]["State"] == "rejected" for t in svc.tasks()):
                break
            time.sleep(0.1)
        code, out, t = run(observe.ps, stack=APP, env="ps1", json=True)
        assert code == 0, out
        doc = json.loads(out)
        rejected = [row for row in doc["tasks"] if row["state"] == "rejected"]
        assert rejected, doc
        assert rejected[0]["node"] == worker.name
        assert rejected[0]["error"] == "No such image: phoenix/missing:1"
        assert rejected[0]["service"] == "ps1_thinkheads_ai_app_api"
        assert t.mutating_commands == []
        code, out, _ = run(observe.ps, stack=APP, env="ps1")
        assert code == 0 and "No such image: phoenix/missing:1" in out and worker.name in out
    finally:
        svc.remove()


def test_ps_lists_the_running_tasks_with_their_nodes(daily_lab, run):
    code, out, _ = run(observe.ps, stack=APP, env="dev1", json=True)
    assert code == 0, out
    tasks = {row["service"]: row for row in json.loads(out)["tasks"] if row["current"]}
    client = daily_lab.docker(manager_vm(daily_lab))
    nodes = {n.id: n.attrs["Description"]["Hostname"] for n in client.nodes.list()}
    for name in ("dev1_thinkheads_ai_app_api", "dev1_thinkheads_ai_app_inference"):
        [running] = [t for t in client.services.get(name).tasks() if t["Status"]["State"] == "running"]
        assert tasks[name]["state"] == "running" and tasks[name]["node"] == nodes[running["NodeID"]]


def test_diff_exit_code_says_whether_a_deploy_would_change_something(daily_lab, run):
    code, out, t = run(stack_tasks.diff, stack=APP, env="dev1", exit_code=True)
    assert code == 0 and "no changes" in out, out
    code, out, t = run(stack_tasks.diff, stack=APP, env="dev2", exit_code=True)
    assert code == CHANGES_EXIT, out
    assert "add dev2_thinkheads_ai_app_api" in out and t.mutating_commands == []
    assert not [s for s in daily_lab.docker(manager_vm(daily_lab)).services.list() if s.name.startswith("dev2_")]


def test_the_reads_parse_with_debians_20_10_cli_too(daily_lab):
    """The SSH sessions get the newest docker CLI first in PATH; a Debian 12 control
    target has only docker.io's 20.10 at /usr/bin/docker: the same commands, run with it."""
    conn = daily_lab.ssh(manager_vm(daily_lab))

    def old_cli(argv):
        res = conn.run("PATH=/usr/bin:/bin " + shlex.join(argv), hide=True, warn=True, in_stream=False)
        assert res.exited == 0, res.stderr
        return res.stdout

    version = old_cli(["docker", "version", "--format", "{{.Client.Version}}"]).strip()
    if not version.startswith("20.10"):
        pytest.skip(f"/usr/bin/docker is {version}, not the 20.10 CLI")
    read = ps_mod.parse_read(old_cli(ps_mod.read_argv("dev1_thinkheads_ai_app")))
    running = {t.service: t.node for t in read.tasks if t.current and t.state == "running"}
    assert running.keys() == {"dev1_thinkheads_ai_app_api", "dev1_thinkheads_ai_app_inference"}
    [line] = [m for m in logs_mod.merge([old_cli(logs_mod.service_logs("dev1_thinkheads_ai_app_api"))])
              if m.message == SERVING]
    assert line.time_ns is not None and line.prefix.startswith("dev1_thinkheads_ai_app_api.1.")
