"""Stacks per environment against a real lab: render, deploy, wait, remove.

A 3-VM lab (manager, gpu=true worker, cpu worker), its swarm converged by Phoenix,
then the stacks of the repository and the lab test stacks (tests/data/lab_stacks)
deployed as environments.  State is verified through a second channel: the docker
SDK on each VM's own engine socket.  Tests build on each other in file order.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import time

import pytest

from phoenix_tasks.config import load_config
from phoenix_tasks.stack import commands
from phoenix_tasks.tasks import stacks as stack_tasks
from phoenix_tasks.tasks import sync as sync_tasks
from phoenix_tasks.core.transport import Transport

from conftest import REPO, copy_stacks, module_lab, task_runner

pytestmark = pytest.mark.lab

SUBNET, BRIDGE = "198.18.83.0/24", "phxtest4"
APP = "thinkheads_ai_app"


@pytest.fixture(scope="module")
def stacks_dir(tmp_path_factory):
    """The repository's stacks and the lab test stacks, in a directory tests may edit."""
    return copy_stacks(tmp_path_factory.mktemp("stacks"), *sorted((REPO / "tests/data/lab_stacks").glob("probe_*")))


@pytest.fixture(scope="module")
def stack_lab(tmp_path_factory, stacks_dir):
    with module_lab(tmp_path_factory.mktemp("stacklab"), SUBNET, BRIDGE, stacks_dir=stacks_dir) as lab:
        yield lab


@pytest.fixture
def run(stack_lab, monkeypatch, capsys):
    return task_runner(stack_lab.config, monkeypatch, capsys)


def manager(lab):
    return lab.docker(next(v for v in lab.vms if v.name == "portainer"))


def services(lab, prefix=""):
    """{name: service attrs} of the swarm, read on the manager's own socket."""
    return {s.name: s.attrs for s in manager(lab).services.list() if s.name.startswith(prefix)}


def reload(lab):
    """The config read again (a test edited a stack in the module's stacks dir)."""
    lab.config = load_config(lab.config.config_dir, lab.config.stacks_dir)


def test_the_swarm_forms(stack_lab, run):
    code, out, _ = run(sync_tasks.sync_all)
    assert code == 0, out
    assert manager(stack_lab).info()["Swarm"]["Nodes"] == 3


def test_deploy_quartet_dev1(stack_lab, run):
    code, out, t = run(stack_tasks.deploy, stack=APP, env="dev1", dry_run=True)
    assert code == 0, out
    assert "add     dev1_thinkheads_ai_app_api" in out and "dry run: nothing was changed" in out
    assert t.mutating_commands == [] and services(stack_lab, "dev1_") == {}

    code, out, t = run(stack_tasks.deploy, stack=APP, env="dev1")
    assert code == 0, out
    assert "converged: dev1_thinkheads_ai_app deployed" in out
    # lock, ledger entry, the environment's config, the deploy, ledger result, unlock
    shown = [r.display for r in t.mutating_commands]
    assert [d.split(" --label")[0].split(" -- ")[0] for d in shown] == [
        "docker config create", "docker config create", "docker config create",
        "docker stack deploy --compose-file - --prune --with-registry-auth --detach=true",
        "docker config create", "docker config rm"]
    assert "io.phoenix.lock=dev1_thinkheads_ai_app" in shown[0]
    assert "io.phoenix.ledger=dev1_thinkheads_ai_app" in shown[1]
    assert shown[2].endswith(" -- " + next(c.name for c in manager(stack_lab).configs.list()
                                           if c.name.startswith("dev1_thinkheads_ai_app_api_settings_")) + " -")
    assert "io.phoenix.ledger.result-of=dev1_thinkheads_ai_app" in shown[4]
    assert t.mutating_commands[3].stdin_bytes > 0  # the document went on stdin
    found = services(stack_lab)
    assert sorted(n for n in found if n.startswith("dev1_")) == ["dev1_thinkheads_ai_app_api",
                                                                  "dev1_thinkheads_ai_app_inference"]
    labels = found["dev1_thinkheads_ai_app_api"]["Spec"]["Labels"]
    assert labels["io.phoenix.env"] == "dev1" and labels["io.phoenix.stack"] == APP
    assert len(labels["io.phoenix.hash"]) == 12
    m = manager(stack_lab)
    assert [n.name for n in m.networks.list(filters={"label": "com.docker.stack.namespace=dev1_thinkheads_ai_app"})] \
        == ["dev1_thinkheads_ai_app_backend"]
    env_configs = m.configs.list(filters={"label": "com.docker.stack.namespace=dev1_thinkheads_ai_app"})
    assert env_configs and all(c.name.startswith("dev1_thinkheads_ai_app_api_settings_") for c in env_configs)
    # The GPU service's tasks run only on the node labelled gpu=true.
    gpu = stack_lab.docker(next(v for v in stack_lab.vms if v.name == "drphoenix")).info()["Swarm"]["NodeID"]
    tasks = m.services.get("dev1_thinkheads_ai_app_inference").tasks(filters={"desired-state": "running"})
    assert tasks and {t_["NodeID"] for t_ in tasks} == {gpu}

    code, out, t = run(stack_tasks.deploy, stack=APP, env="dev1")
    assert code == 0 and "dev1_thinkheads_ai_app: no changes" in out, out
    # two round trips to one manager: resolve the images' digests, read the stack
    assert t.mutating_commands == [] and len(t.log) == 2 and {r.vm for r in t.log} == {"portainer"}
    assert not any("stack deploy" in r.display for r in t.log)
    code, out, t = run(stack_tasks.deploy, stack=APP, env="dev1", dry_run=True)
    assert code == 0 and "no changes" in out and t.mutating_commands == []


def test_dev2_runs_beside_dev1_every_name_prefixed(stack_lab, run):
    code, out, _ = run(stack_tasks.deploy, stack=APP, env="dev2")
    assert code == 0, out
    # both publish 18000 in host mode: a warning naming the nodes left, not an error
    assert "host-mode port 18000/tcp is also published by dev1_thinkheads_ai_app_api" in out
    dev2 = services(stack_lab, "dev2_")
    assert sorted(dev2) == ["dev2_thinkheads_ai_app_api", "dev2_thinkheads_ai_app_inference"]
    m = manager(stack_lab)
    ns = {"label": "com.docker.stack.namespace=dev2_thinkheads_ai_app"}
    assert all(n.name.startswith("dev2_") for n in m.networks.list(filters=ns))
    assert all(c.name.startswith("dev2_") for c in m.configs.list(filters=ns))
    assert len(services(stack_lab, "dev1_")) == 2


def test_envs_lists_each_environment_with_its_hash(stack_lab, run):
    code, out, t = run(stack_tasks.envs, json=True)
    assert code == 0, out
    envs = {e["name"]: e for e in json.loads(out)}
    sdk = services(stack_lab)
    for env in ("dev1", "dev2"):
        (stack,) = envs[env]["stacks"]
        assert stack["stack"] == APP and stack["converged"] is True
        assert stack["hash"] == sdk[f"{env}_thinkheads_ai_app_api"]["Spec"]["Labels"]["io.phoenix.hash"]
        assert [s["name"] for s in stack["services"]] == [f"{env}_thinkheads_ai_app_api",
                                                          f"{env}_thinkheads_ai_app_inference"]
    assert t.mutating_commands == [] and len(t.log) == 1


def test_a_changed_variable_and_a_changed_config_file_roll_the_services(stack_lab, run, stacks_dir):
    before = services(stack_lab, "dev1_")
    manifest = stacks_dir / APP / "phoenix.json"
    doc = json.loads(manifest.read_text())
    doc["environments"]["dev1"] = {"variables": {"LOG_LEVEL": "warning"}}
    manifest.write_text(json.dumps(doc))
    (stacks_dir / APP / "config" / "api_settings.yaml").write_text("request_timeout_s: 60\n")
    reload(stack_lab)
    code, out, _ = run(stack_tasks.diff, stack=APP, env="dev1")
    assert code == 0 and "~ env: [" in out and "LOG_LEVEL=warning" in out and "~ configs:" in out, out
    code, out, _ = run(stack_tasks.deploy, stack=APP, env="dev1")
    assert code == 0, out
    after = services(stack_lab, "dev1_")
    for name in before:
        assert after[name]["Spec"]["Labels"]["io.phoenix.hash"] != before[name]["Spec"]["Labels"]["io.phoenix.hash"]
        assert "LOG_LEVEL=warning" in after[name]["Spec"]["TaskTemplate"]["ContainerSpec"]["Env"]
    api = after["dev1_thinkheads_ai_app_api"]["Spec"]["TaskTemplate"]["ContainerSpec"]["Configs"]
    old = before["dev1_thinkheads_ai_app_api"]["Spec"]["TaskTemplate"]["ContainerSpec"]["Configs"]
    assert api[0]["ConfigName"] != old[0]["ConfigName"]
    assert api[0]["ConfigName"].startswith("dev1_thinkheads_ai_app_api_settings_")
    # dev2 untouched
    assert services(stack_lab, "dev2_")["dev2_thinkheads_ai_app_api"]["Version"] == \
        services(stack_lab, "dev2_")["dev2_thinkheads_ai_app_api"]["Version"]


def test_a_service_that_exits_non_zero_fails_the_deploy_with_its_error_and_logs(stack_lab, run):
    code, out, _ = run(stack_tasks.deploy, stack="probe_fail", env="t1", timeout="60")
    assert code == 1, out
    assert "failed: t1_probe_fail_broken: task " in out and "(exit code 3)" in out
    assert "last log lines of t1_probe_fail_broken" in out and "exiting with 3 after 1 s" in out
    tasks = manager(stack_lab).services.get("t1_probe_fail_broken").tasks()
    assert any(t["Status"]["State"] == "failed" and t["Status"]["ContainerStatus"]["ExitCode"] == 3 for t in tasks)
    # Run again: nothing to deploy, but the service is not running: not "done" either.
    code, out, t = run(stack_tasks.deploy, stack="probe_fail", env="t1", timeout="60")
    assert code == 1 and "t1_probe_fail: no changes" in out and "not every service has converged" in out, out
    assert "(exit code 3)" in out and not any("stack deploy" in r.display for r in t.log)


def test_a_one_shot_job_completes_and_the_deploy_succeeds(stack_lab, run):
    code, out, _ = run(stack_tasks.deploy, stack="probe_job", env="t1", timeout="60")
    assert code == 0, out
    assert "t1_probe_job_once: converged 1/1 completed" in out
    (task,) = manager(stack_lab).services.get("t1_probe_job_once").tasks()
    assert task["Status"]["State"] == "complete"


def test_an_update_swarm_rolls_back_is_a_failure(stack_lab, run, stacks_dir):
    code, out, _ = run(stack_tasks.deploy, stack="probe_rollback", env="rb", timeout="60")
    assert code == 0, out
    manifest = stacks_dir / "probe_rollback" / "phoenix.json"
    manifest.write_text(manifest.read_text().replace('"EXIT_CODE": ""', '"EXIT_CODE": "4"'))
    reload(stack_lab)
    code, out, _ = run(stack_tasks.deploy, stack="probe_rollback", env="rb", timeout="60")
    assert code == 1, out
    # Whichever Phoenix sees first is the truth: the new task's failure, or the rollback
    # Swarm starts because of it.  Either way the deploy failed, and Swarm rolls back.
    assert "Swarm rolled the update back" in out or "(exit code 4)" in out, out
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        svc = manager(stack_lab).services.get("rb_probe_rollback_web").attrs
        if (svc.get("UpdateStatus") or {}).get("State") == "rollback_completed":
            break
        time.sleep(1)
    assert svc["UpdateStatus"]["State"] == "rollback_completed"


def test_rm_quartet_removes_dev1_only_and_an_immediate_redeploy_works(stack_lab, run):
    m = manager(stack_lab)
    code, out, t = run(stack_tasks.rm, stack=APP, env="dev1", dry_run=True)
    assert code == 0 and "docker stack rm dev1_thinkheads_ai_app" in out and t.mutating_commands == [], out
    assert len(services(stack_lab, "dev1_")) == 2
    code, out, t = run(stack_tasks.rm, stack=APP, env="dev1")
    assert code == 0 and "removed: dev1_thinkheads_ai_app" in out, out
    ns = {"label": "com.docker.stack.namespace=dev1_thinkheads_ai_app"}
    assert services(stack_lab, "dev1_") == {}
    assert m.networks.list(filters=ns) == [] and m.configs.list(filters=ns) == []
    assert len(services(stack_lab, "dev2_")) == 2 and m.configs.list(filters={
        "label": "com.docker.stack.namespace=dev2_thinkheads_ai_app"})
    code, out, t = run(stack_tasks.rm, stack=APP, env="dev1")
    assert code == 0 and "no changes" in out and t.mutating_commands == [], out
    code, out, t = run(stack_tasks.rm, stack=APP, env="dev1", dry_run=True)
    assert code == 0 and "no changes" in out and t.mutating_commands == []
    code, out, _ = run(stack_tasks.deploy, stack=APP, env="dev1")  # right after the rm
    assert code == 0, out
    assert len(services(stack_lab, "dev1_")) == 2


def test_rm_keeps_volumes_unless_asked_then_removes_them_on_every_node(stack_lab, run):
    code, out, _ = run(stack_tasks.deploy, stack="qdrant_service", env="vt", timeout="120")
    assert code == 0, out

    def volumes():
        return {v.name: [x.name for x in stack_lab.docker(v).volumes.list(
            filters={"label": "com.docker.stack.namespace=vt_qdrant_service"})] for v in stack_lab.vms}

    assert sum(volumes().values(), []) == ["vt_qdrant_service_qdrant_storage"]
    code, out, _ = run(stack_tasks.rm, stack="qdrant_service", env="vt")
    assert code == 0 and "volumes are kept" in out, out
    assert sum(volumes().values(), []) == ["vt_qdrant_service_qdrant_storage"]
    code, out, t = run(stack_tasks.rm, stack="qdrant_service", env="vt", volumes=True)
    assert code == 0 and "remove volumes vt_qdrant_service_qdrant_storage" in out, out
    assert sum(volumes().values(), []) == []
    code, out, t = run(stack_tasks.rm, stack="qdrant_service", env="vt", volumes=True)
    assert code == 0 and "no changes" in out and t.mutating_commands == [], out


def test_bad_input_is_refused_before_any_connection(stack_lab, run):
    for flags, words in (
        (dict(stack="nope", env="dev1"), "no stack 'nope'"),
        (dict(stack=APP, env="Dev1"), "environment name 'Dev1' is not valid"),
        (dict(stack=APP, env="dev1; rm -rf /"), "is not valid"),
        (dict(stack=APP, env=None), "--env is required"),
        (dict(stack=APP, env="x" * 25), "at most 24 characters"),
    ):
        code, out, t = run(stack_tasks.deploy, **flags)
        assert code == 1 and t is None, (flags, out)  # no transport was even made
        assert words in out, (flags, out)


def test_the_stdin_channel_carries_data_and_secrets_stay_out_of_the_log(stack_lab):
    from phoenix_tasks.core.secrets import Secret
    vm0 = stack_lab.vms[0]
    big = "x" * 200_000 + "\n"
    with Transport(stack_lab.config.hypervisor.vm_access) as t:
        assert t.run(vm0, ["wc", "-c"], mutating=False, stdin=big).stdout.strip() == str(len(big))
        res = t.run(vm0, ["cat"], mutating=False, stdin=Secret("s3cret-value"))
    assert res.stdout == "***"  # what comes back is scrubbed too
    assert all("s3cret" not in r.display for r in t.log)


def test_the_deploy_command_works_with_the_debian_20_10_cli(stack_lab):
    """A fresh Debian 12 has docker.io's 20.10 CLI, with no --detach on stack deploy."""
    cli = "/usr/bin/docker"
    if not shutil.which(cli):
        pytest.skip("Debian's docker.io CLI is not at /usr/bin/docker")
    version = subprocess.run([cli, "version", "--format", "{{.Client.Version}}"], capture_output=True,
                             text=True).stdout.strip()
    assert version.startswith("20.10")
    argv = commands.stack_deploy("old_cli", version)
    assert "--detach=true" not in argv
    doc = "version: '3.8'\nservices:\n  web:\n    image: thinkheads/ai-api:1.4.0\n"
    vm0 = stack_lab.vms[0]
    with Transport(stack_lab.config.hypervisor.vm_access) as t:
        res = t.run(vm0, [cli, *argv[1:]], mutating=True, stdin=doc, check=False)
        assert res.ok, res.stderr
        t.run(vm0, [cli, "stack", "rm", "old_cli"], mutating=True)
    assert "old_cli_web" not in services(stack_lab)  # removed (the service goes at once)
    m = manager(stack_lab)
    deadline = time.monotonic() + 60  # its network goes asynchronously: wait, so later tests see none
    while m.networks.list(filters={"label": "com.docker.stack.namespace=old_cli"}) and time.monotonic() < deadline:
        time.sleep(0.5)
    assert m.networks.list(filters={"label": "com.docker.stack.namespace=old_cli"}) == []


def snapshot(lab):
    """What a dry run must leave as it is: every engine's swarm state and the manager's
    nodes and services (their specs), networks, configs and secrets."""
    m = manager(lab)
    engines = {v.name: lab.docker(v).info()["Swarm"]["LocalNodeState"] for v in lab.vms}
    # specs, not version indexes: Swarm bumps those itself (node status, update status)
    return (engines,
            sorted((n.id, json.dumps(n.attrs["Spec"], sort_keys=True)) for n in m.nodes.list()),
            sorted((s.name, json.dumps(s.attrs["Spec"], sort_keys=True)) for s in m.services.list()),
            sorted(n.name for n in m.networks.list()), sorted(c.name for c in m.configs.list()),
            sorted(s.name for s in m.secrets.list()))


@pytest.mark.parametrize("args", [
    ["sync", "all", "--dry-run"], ["swarm", "init", "--dry-run"], ["swarm", "join", "--dry-run"],
    ["--dry-run", "swarm", "label"], ["swarm", "deploy", APP, "--env", "dev9", "--dry-run"],
    ["swarm", "deploy", APP, "--env", "dev1", "--dry-run"], ["swarm", "rm", APP, "--env", "dev2", "--dry-run"],
    ["-v", "swarm", "rm", APP, "--env", "dev2", "--volumes", "--dry-run"],
])
def test_every_dry_run_through_bin_phoenix_changes_nothing(stack_lab, args):
    before = snapshot(stack_lab)
    env = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "PHOENIX_CONFIG_DIR": str(stack_lab.config.config_dir),
           "PHOENIX_STACKS_DIR": str(stack_lab.config.stacks_dir)}
    res = subprocess.run([str(REPO / "bin" / "phoenix"), *args], capture_output=True, text=True, env=env, timeout=300)
    assert res.returncode in (0, 1), res.stdout + res.stderr  # 1: a plan with blocked items
    assert "dry run: nothing was changed" in res.stdout or "no changes" in res.stdout, res.stdout + res.stderr
    assert "Traceback" not in res.stderr
    assert snapshot(stack_lab) == before


def test_lab_down_dry_run_is_refused_and_the_lab_stays(stack_lab):
    env = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "PHOENIX_CONFIG_DIR": str(stack_lab.config.config_dir)}
    res = subprocess.run([str(REPO / "bin" / "phoenix"), "lab", "down", "--dry-run"], capture_output=True,
                         text=True, env=env, timeout=120)
    assert res.returncode == 2 and "has no --dry-run" in res.stderr
    assert all(stack_lab.docker(v).info()["Swarm"]["LocalNodeState"] == "active" for v in stack_lab.vms)


def test_a_node_label_that_looks_like_markup_is_shown_as_text(stack_lab, run):
    from phoenix_tasks.tasks import swarm as swarm_tasks
    node = manager(stack_lab).nodes.get(
        stack_lab.docker(next(v for v in stack_lab.vms if v.name == "cpuworker")).info()["Swarm"]["NodeID"])
    spec = node.attrs["Spec"]
    spec["Labels"] = {**spec.get("Labels", {}), "note": "[/x][red]boom[/red]"}
    node.update(spec)
    try:
        code, out, _ = run(swarm_tasks.status)
        assert "Traceback" not in out and "note=[/x][red]boom[/red]" in out, out
        code, out, _ = run(swarm_tasks.label, dry_run=True)
        assert code == 0 and "Traceback" not in out, out
    finally:
        node.reload()
        spec = node.attrs["Spec"]
        spec["Labels"].pop("note", None)
        node.update(spec)
