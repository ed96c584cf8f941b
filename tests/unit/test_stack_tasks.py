"""Task wiring of the stack tasks (phoenix_tasks/tasks/stacks.py) over a real Transport
whose connections are invoke MockContexts answering with recorded outputs (an
unrecorded command fails the test), on a lab config written by configgen and a stacks
directory holding the repository's stacks and the lab test stack probe_rollback."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import yaml
from invoke import MockContext, Result

from phoenix_tasks.config import load_config
from phoenix_tasks.stack import commands, digests
from phoenix_tasks.stack.envs import OUTSIDE
from phoenix_tasks.stack.facts import parse_services
from phoenix_tasks.stack.remove import Leftovers, parse_leftovers
from phoenix_tasks.docker.render import render
from phoenix_tasks.swarm import commands as swarm_commands
from phoenix_tasks.tasks import common
from phoenix_tasks.tasks import stacks as stack_tasks
from phoenix_tasks.core.transport import Transport, shell_command

from conftest import call_task
from swarm_recorded import lab_config

REPO = Path(__file__).resolve().parents[2]
STACK_DATA = REPO / "tests" / "data" / "stack"
RB_NAMESPACE = "rb_probe_rollback"
RECORDED_HASH = "71af286c5860"  # the document's hash (the plan, the ledger)
RECORDED_SERVICE_HASH = "e53d35f4cc32"  # io.phoenix.hash of web in services_probe_rollback.txt


class Unreachable:
    """A connection whose every command times out (as SSH to a VM that is down)."""

    def run(self, *a, **kw):
        raise TimeoutError("timed out")


def connect(outputs: dict):
    """Per VM name: {argv tuple: (stdout, exit code)}, or the string "unreachable"."""
    def factory(vm, access):
        if outputs.get(vm.name) == "unreachable":
            return Unreachable()
        runs = {shell_command(argv): Result(stdout=out, exited=code)
                for argv, (out, code) in outputs.get(vm.name, {}).items()}
        return MockContext(run=runs, repeat=True)
    return factory


def two_managers(doc: dict) -> None:
    for vm in doc["vms"]:
        if vm["name"] == "drphoenix":
            vm["swarm_role"] = "manager"


@pytest.fixture
def stacks_dir(tmp_path) -> Path:
    out = tmp_path / "stacks"
    out.mkdir()
    for src in (REPO / "stacks").iterdir():
        shutil.copytree(src, out / src.name)
    shutil.copytree(REPO / "tests" / "data" / "lab_stacks" / "probe_rollback", out / "probe_rollback")
    return out


@pytest.fixture
def wired(tmp_path, stacks_dir, monkeypatch):
    """wired(outputs, edit=None) -> (config, the transports the tasks make)."""
    monkeypatch.setenv("PHOENIX_STACKS_DIR", str(stacks_dir))
    made: list[Transport] = []

    def use(outputs: dict, edit=None):
        etc = lab_config(tmp_path, edit).config_dir  # the config the recordings were taken on
        monkeypatch.setenv("PHOENIX_CONFIG_DIR", str(etc))

        def transport_for(cfg, verbose):
            t = Transport(cfg.hypervisor.vm_access, connect=connect(outputs))
            made.append(t)
            return t

        monkeypatch.setattr(common, "transport_for", transport_for)
        return load_config(etc, stacks_dir), made

    return use


run = call_task  # (exit code, Exit's message) of a task called as `inv` calls it


def recorded_services() -> str:
    return (STACK_DATA / "services_probe_rollback.txt").read_text()


# -- deploy of an unchanged environment: one read, nothing else ---------------------------

def test_recorded_hash_is_the_rendered_hash_of_rb(wired):
    # The unchanged case below depends on it: the recording is of probe_rollback as
    # env rb, and the hash of the document does not include the Phoenix version.
    config, _ = wired({})
    rendered = render(config.stacks["probe_rollback"], "rb")
    assert rendered.hash == RECORDED_HASH
    [web] = parse_services(recorded_services()).values()
    assert web.name == "rb_probe_rollback_web"
    assert web.hash == RECORDED_SERVICE_HASH


def test_deploy_unchanged_is_one_read_and_no_changes(wired, capsys):
    config, made = wired({"portainer": {tuple(commands.stack_services(RB_NAMESPACE)): (recorded_services(), 0)}})
    code, message = run(stack_tasks.deploy, stack="probe_rollback", env="rb", no_resolve=True)
    captured = capsys.readouterr()
    assert code == 0, captured.out + captured.err + message
    assert f"rb_probe_rollback: no changes (hash {RECORDED_HASH}, read from portainer)" in captured.out
    [t] = made
    assert len(t.log) == 1
    [record] = t.log
    assert record.vm == "portainer" and record.mutating is False and record.stdin_bytes == 0
    assert record.display == shell_command(commands.stack_services(RB_NAMESPACE))
    assert t.mutating_commands == []


def test_deploy_dry_run_unchanged_is_the_same_one_read(wired, capsys):
    _, made = wired({"portainer": {tuple(commands.stack_services(RB_NAMESPACE)): (recorded_services(), 0)}})
    code, _ = run(stack_tasks.deploy, stack="probe_rollback", env="rb", dry_run=True, no_resolve=True)
    out = capsys.readouterr().out
    assert code == 0 and "no changes" in out and "dry run: nothing was changed" in out
    assert len(made[0].log) == 1 and made[0].mutating_commands == []


def test_deploy_unchanged_with_digests_is_two_reads_and_takes_no_lock(wired, capsys):
    # The resolve read (a pull on the manager) did not reach the registry: by tag, with a
    # warning, so the document and its hash are the recorded ones: nothing to change, no lock taken.
    image = "thinkheads/ai-inference:1.4.0"
    resolve = tuple(digests.resolve_argv())
    _, made = wired({"portainer": {tuple(commands.stack_services(RB_NAMESPACE)): (recorded_services(), 0),
                                   resolve: (not_found_locally(image, "500 Internal Server Error", NO_DNS), 0)}})
    code, message = run(stack_tasks.deploy, stack="probe_rollback", env="rb")
    captured = capsys.readouterr()
    assert code == 0, captured.out + captured.err + message
    assert f"warning: image {image}: registry docker.io not reached ({NO_DNS}): deployed by tag" in captured.out
    assert f"rb_probe_rollback: no changes (hash {RECORDED_HASH}" in captured.out
    [t] = made
    assert [(r.vm, r.mutating) for r in t.log] == [("portainer", False), ("portainer", False)]
    assert not any("config create" in r.display for r in t.log)


NO_DNS = "dial tcp: lookup registry-1.docker.io: no such host"


def not_found_locally(image: str, status: str, message: str) -> str:
    """The engine's two answers on the resolve stream: the registry's error for the tag,
    and no copy in the manager's engine."""
    from test_stack_digests import error
    return error(status, message) + error("404 Not Found", f"No such image: {image}")


@pytest.mark.parametrize("answer, flags, blocked", [
    ("manifest for thinkheads/ai-inference:1.4.0 not found: manifest unknown: manifest unknown", {},
     "registry docker.io answered: manifest for thinkheads/ai-inference:1.4.0 not found: manifest unknown"),
    ("unauthorized: authentication required", {"dry_run": True},
     "registry docker.io answered: unauthorized: authentication required"),
    (NO_DNS, {"require_digests": True},
     f"registry docker.io not reached ({NO_DNS}): --require-digests refuses to deploy it by tag"),
])
def test_the_image_gate_blocks_before_any_change(wired, capsys, answer, flags, blocked):
    image = "thinkheads/ai-inference:1.4.0"
    resolve = tuple(digests.resolve_argv())
    _, made = wired({"portainer": {tuple(commands.stack_services(RB_NAMESPACE)): (recorded_services(), 0),
                                   resolve: (not_found_locally(image, "404 Not Found", answer), 0)}})
    code, message = run(stack_tasks.deploy, stack="probe_rollback", env="rb", **flags)
    captured = capsys.readouterr()
    assert code == 1, captured.out + captured.err + message
    assert f"blocked rb_probe_rollback: image {image}: {blocked}" in captured.out, captured.out
    assert "Traceback" not in captured.err
    [t] = made  # the same two reads as an unchanged deploy: no lock, no ledger, nothing created
    assert [(r.vm, r.mutating) for r in t.log] == [("portainer", False), ("portainer", False)]


def test_diff_unchanged(wired, capsys):
    _, made = wired({"portainer": {tuple(commands.stack_services(RB_NAMESPACE)): (recorded_services(), 0)}})
    code, _ = run(stack_tasks.diff, stack="probe_rollback", env="rb")
    assert code == 0
    assert capsys.readouterr().out == f"rb_probe_rollback: no changes (hash {RECORDED_HASH}, read from portainer)\n"
    assert len(made[0].log) == 1 and made[0].mutating_commands == []


# -- managers: the first unreachable, then none -----------------------------------------------

def test_first_manager_unreachable_falls_to_the_second(wired, capsys):
    config, made = wired({"portainer": "unreachable",
                          "drphoenix": {tuple(commands.stack_services(RB_NAMESPACE)): (recorded_services(), 0)}},
                         edit=two_managers)
    assert [vm.name for vm in config.managers] == ["portainer", "drphoenix"]
    code, message = run(stack_tasks.deploy, stack="probe_rollback", env="rb", no_resolve=True)
    captured = capsys.readouterr()
    assert code == 0, captured.out + captured.err + message
    assert f"rb_probe_rollback: no changes (hash {RECORDED_HASH}, read from drphoenix)" in captured.out
    [t] = made
    assert [(r.vm, r.mutating) for r in t.log] == [("portainer", False), ("drphoenix", False)]
    assert "Traceback" not in captured.err


def test_every_manager_unreachable_is_one_line_and_exit_1(wired, capsys):
    config, made = wired({"portainer": "unreachable", "drphoenix": "unreachable"}, edit=two_managers)
    code, message = run(stack_tasks.deploy, stack="probe_rollback", env="rb")
    captured = capsys.readouterr()
    assert code == 1
    assert message == ""
    assert "Traceback" not in captured.err + captured.out
    lines = captured.err.splitlines()
    # the config's own warning (2 managers) first, then the one error line
    assert lines[:-1] == [f"{config.vm_file}: /vms: warning: 2 managers: an even number adds no fault "
                          "tolerance over 1 (Raft needs a majority)"]
    assert lines[-1] == (
        "error: no configured manager answers as a swarm manager ("
        "portainer (vmid 1001): cannot reach 198.18.90.11:22 over SSH: timed out; "
        "drphoenix (vmid 1002): cannot reach 198.18.90.12:22 over SSH: timed out): "
        "run `inv sync-all` or `inv swarm.init` first")
    assert "no changes" not in captured.out
    [t] = made
    # The stack read tries each manager in order; the digests are resolved at the same
    # time on the first one (read_resolve_gate): portainer is asked twice, at once.
    assert sorted(r.vm for r in t.log) == ["drphoenix", "portainer", "portainer"]
    assert t.mutating_commands == []


def test_a_manager_that_is_not_in_a_swarm_is_passed_over(wired, capsys):
    argv = tuple(commands.stack_services(RB_NAMESPACE))
    no_swarm = ("Error response from daemon: This node is not a swarm manager. Use \"docker swarm init\" or "
                "\"docker swarm join\" to connect this node to swarm and try again.\n")
    _, made = wired({"portainer": {argv: (no_swarm, 1)}, "drphoenix": {argv: (recorded_services(), 0)}},
                    edit=two_managers)
    code, _ = run(stack_tasks.diff, stack="probe_rollback", env="rb")
    assert code == 0
    assert "read from drphoenix" in capsys.readouterr().out


# -- render: no connection ----------------------------------------------------------------------

def test_render_prints_yaml_and_makes_no_transport(wired, capsys):
    _, made = wired({})
    code, _ = run(stack_tasks.render_, stack="thinkheads_ai_app", env="dev1")
    captured = capsys.readouterr()
    assert code == 0
    doc = yaml.safe_load(captured.out)
    assert sorted(doc["services"]) == ["api", "inference"]
    for service in doc["services"].values():
        assert service["deploy"]["labels"]["io.phoenix.env"] == "dev1"
        assert service["deploy"]["labels"]["io.phoenix.stack"] == "thinkheads_ai_app"
    assert made == []


def test_render_of_rb_is_what_the_recorded_deploy_sent(wired, capsys):
    config, made = wired({})
    code, _ = run(stack_tasks.render_, stack="probe_rollback", env="rb")
    assert code == 0
    out = capsys.readouterr().out
    assert out == render(config.stacks["probe_rollback"], "rb").text
    assert yaml.safe_load(out)["services"]["web"]["deploy"]["labels"]["io.phoenix.hash"] == RECORDED_SERVICE_HASH
    assert made == []


# -- names and flags refused before any connection ------------------------------------------------

NAME_TASKS = [stack_tasks.deploy, stack_tasks.rm, stack_tasks.diff, stack_tasks.render_]


@pytest.mark.parametrize("task", NAME_TASKS, ids=lambda t: t.name)
@pytest.mark.parametrize("flags, expected", [
    ({"stack": "nope", "env": "dev1"}, "error: no stack 'nope' in "),
    ({"stack": "probe_rollback", "env": "Dev1"}, "error: environment name 'Dev1' is not valid"),
    ({"stack": "probe_rollback", "env": "dev1; rm -rf /"}, "error: environment name 'dev1; rm -rf /' is not valid"),
    ({"stack": "probe_rollback"}, "--env is required"),
    ({"env": "dev1"}, "--stack is required"),
    ({"stack": "Bad-Stack", "env": "dev1"}, "error: stack name 'Bad-Stack' is not valid"),
], ids=["unknown-stack", "upper-case-env", "hostile-env", "no-env", "no-stack", "bad-stack-name"])
def test_bad_names_exit_1_with_no_transport(wired, capsys, task, flags, expected):
    _, made = wired({})
    code, message = run(task, **flags)
    assert code == 1
    assert expected in message
    assert made == []
    assert capsys.readouterr().out == ""


def test_unknown_stack_lists_the_stacks(wired):
    config, _ = wired({})
    _, message = run(stack_tasks.deploy, stack="nope", env="dev1")
    assert message == (f"error: no stack 'nope' in {config.stacks_dir} "
                       "(stacks: portainer_service, probe_rollback, qdrant_service, thinkheads_ai_app)")


@pytest.mark.parametrize("value", ["abc", "0", "-5", "86401"])
def test_bad_timeout_exit_1_with_no_transport(wired, value):
    _, made = wired({})
    code, message = run(stack_tasks.deploy, stack="probe_rollback", env="rb", timeout=value)
    assert code == 1
    assert message == f"error: --timeout must be a number of seconds (1 to 86400), not {value!r}"
    assert "--timeout" in message
    assert made == []


def test_bad_timeout_on_rm_too(wired):
    _, made = wired({})
    code, message = run(stack_tasks.rm, stack="probe_rollback", env="rb", timeout="abc")
    assert code == 1 and "--timeout" in message and made == []


# -- envs ------------------------------------------------------------------------------------------

def _json_lines(*docs) -> str:
    return "".join(json.dumps(d, separators=(",", ":")) + "\n" for d in docs)


APP_LABELS = {"com.docker.stack.namespace": "dev1_app", "io.phoenix.env": "dev1", "io.phoenix.stack": "app",
              "io.phoenix.hash": "abc123abc123", "io.phoenix.version": "0.1.0"}
SERVICES_OUTPUT = (
    _json_lines({"Name": "dev1_app", "Namespace": "", "Orchestrator": "Swarm", "Services": "2"},
                {"Name": "legacy", "Namespace": "", "Orchestrator": "Swarm", "Services": "1"})
    + swarm_commands.SERVICES_SEPARATOR + "\n"
    + _json_lines(
        {"ID": "k1", "Image": "thinkheads/api:1.0.0", "Mode": "replicated", "Name": "dev1_app_api",
         "Ports": "", "Replicas": "2/2"},
        {"ID": "k2", "Image": "thinkheads/worker:1.0.0", "Mode": "replicated", "Name": "dev1_app_worker",
         "Ports": "", "Replicas": "1/2"},
        {"ID": "k3", "Image": "nginx:1.27", "Mode": "replicated", "Name": "legacy_web",
         "Ports": "*:8080->80/tcp", "Replicas": "1/1"},
        {"ID": "k4", "Image": "busybox:1.36", "Mode": "global", "Name": "adhoc", "Ports": "",
         "Replicas": "3/3"})
    + swarm_commands.LABELS_SEPARATOR + "\n"
    + _json_lines(
        {"name": "dev1_app_api", "labels": APP_LABELS},
        {"name": "dev1_app_worker", "labels": APP_LABELS},
        {"name": "legacy_web", "labels": {"com.docker.stack.namespace": "legacy",
                                          "com.docker.stack.image": "nginx:1.27"}},
        {"name": "adhoc", "labels": {}})
)


def test_envs_json(wired, capsys):
    _, made = wired({"portainer": {tuple(swarm_commands.services()): (SERVICES_OUTPUT, 0)}})
    code, _ = run(stack_tasks.envs, json=True)
    assert code == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc == [
        {"name": "dev1", "stacks": [
            {"stack": "app", "namespace": "dev1_app", "hash": "abc123abc123", "converged": False,
             "services": [
                 {"name": "dev1_app_api", "mode": "replicated", "running": 2, "desired": 2, "hash": "abc123abc123"},
                 {"name": "dev1_app_worker", "mode": "replicated", "running": 1, "desired": 2, "hash": "abc123abc123"},
             ]}]},
        {"name": "(not deployed by Phoenix)", "stacks": [
            {"stack": "legacy", "namespace": "legacy", "hash": None, "converged": True,
             "services": [{"name": "legacy_web", "mode": "replicated", "running": 1, "desired": 1, "hash": None}]}]},
    ]
    assert doc[-1]["name"] == OUTSIDE
    [t] = made
    assert len(t.log) == 1 and t.mutating_commands == []


def test_envs_table(wired, capsys):
    wired({"portainer": {tuple(swarm_commands.services()): (SERVICES_OUTPUT, 0)}})
    code, _ = run(stack_tasks.envs)
    out = capsys.readouterr().out
    assert code == 0
    assert "dev1_app_api" in out and "abc123abc123" in out and "legacy_web" in out and "1/2" in out
    assert "adhoc" not in out


# -- rm ----------------------------------------------------------------------------------------------

def test_parse_leftovers():
    text = ("service q1w2e3r4t5y6u7i8o9p0asdfg\n"
            "service zxcvbnmasdfghjklqwertyuio\n"
            "network wxfsxihp4jaa\n"
            "config 9a8b7c6d5e4f3g2h1i0jklmno\n"
            "secret 1a2b3c4d5e6f7g8h9i0jklmno\n"
            "\n"
            "network \n"
            "volume dev1_app_data\n"
            "  \n")
    left = parse_leftovers(text)
    assert left == Leftovers(services=("q1w2e3r4t5y6u7i8o9p0asdfg", "zxcvbnmasdfghjklqwertyuio"),
                             networks=("wxfsxihp4jaa",), configs=("9a8b7c6d5e4f3g2h1i0jklmno",),
                             secrets=("1a2b3c4d5e6f7g8h9i0jklmno",))
    assert left.empty is False
    assert left.describe() == "2 services, 1 network, 1 config, 1 secret"
    assert parse_leftovers("network wxfsxihp4jaa\nnetwork jrknkdeiy1vo\n").describe() == "2 networks"
    nothing = parse_leftovers("")
    assert nothing == Leftovers() and nothing.empty and nothing.describe() == "nothing"


def test_rm_of_an_environment_with_nothing_left(wired, capsys):
    _, made = wired({"portainer": {tuple(commands.leftovers("dev1_probe_rollback")): ("", 0)}})
    code, message = run(stack_tasks.rm, stack="probe_rollback", env="dev1")
    out = capsys.readouterr().out
    assert code == 0, message
    assert "dev1_probe_rollback: no changes (nothing of it is on the swarm)" in out
    [t] = made
    assert len(t.log) == 1 and t.mutating_commands == []
    assert t.log[0].display == shell_command(commands.leftovers("dev1_probe_rollback"))


def test_rm_dry_run_shows_the_plan_and_changes_nothing(wired, capsys):
    left = "service q1w2e3r4t5y6u7i8o9p0asdfg\nnetwork jrknkdeiy1vo\n"
    _, made = wired({"portainer": {tuple(commands.leftovers(RB_NAMESPACE)): (left, 0)}})
    code, _ = run(stack_tasks.rm, stack="probe_rollback", env="rb", dry_run=True)
    out = capsys.readouterr().out
    assert code == 0
    assert "docker stack rm rb_probe_rollback (1 service, 1 network)" in out
    assert "dry run: nothing was changed" in out
    assert len(made[0].log) == 1 and made[0].mutating_commands == []


def test_require_digests_with_no_resolve_is_refused_before_any_connection(wired):
    _, made = wired({})
    code, message = run(stack_tasks.deploy, stack="probe_rollback", env="rb", no_resolve=True, require_digests=True)
    assert code == 1
    assert message == "error: --require-digests needs the digests resolved: it cannot go with --no-resolve"
    assert made == []
