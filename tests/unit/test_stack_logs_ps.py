"""swarm.logs and swarm.ps: exact argv, parsers over recorded output, the selection of
tasks, and the task wiring (names refused before any connection; recorded answers)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from invoke import MockContext, Result

from phoenix_tasks.stack import logs, ps
from phoenix_tasks.tasks import common, observe
from phoenix_tasks.core.transport import Transport, shell_command

from conftest import call_task
from swarm_recorded import lab_config

REPO = Path(__file__).resolve().parents[2]
RECORDED = REPO / "tests" / "data" / "ps" / "dev1_rejected_pending.txt"
NS = "dev1_thinkheads_ai_app"


# -- argv ------------------------------------------------------------------------------

def test_service_logs_argv_is_exact():
    assert logs.service_logs("dev1_app_api") == ["docker", "service", "logs", "--timestamps", "--", "dev1_app_api"]
    assert logs.service_logs("dev1_app_api", follow=True, tail="20", since="10m") == [
        "docker", "service", "logs", "--follow", "--timestamps", "--tail", "20", "--since", "10m", "--", "dev1_app_api"]


def test_a_hostile_name_stays_one_argument_after_the_separator():
    cmd = shell_command(logs.service_logs("dev1; rm -rf /"))
    assert cmd == "docker service logs --timestamps -- 'dev1; rm -rf /'"


def test_service_names_and_ps_read_take_the_namespace_as_data():
    assert logs.service_names(NS) == ["docker", "service", "ls", "--filter",
                                      f"label=com.docker.stack.namespace={NS}", "--format", "{{.Name}}"]
    argv = ps.read_argv("x; reboot")
    assert argv[:2] == ["sh", "-c"] and argv[-1] == "x; reboot" and "x; reboot" not in argv[2]


@pytest.mark.parametrize("value, expected", [(None, None), ("all", None), ("20", "20"), (" 007", "7"), (5, "5")])
def test_tail_accepts_a_count(value, expected):
    assert logs.check_tail(value) == expected


@pytest.mark.parametrize("value", ["-1", "ten", "1e3", "", "9999999999"])
def test_tail_refuses_anything_else(value):
    with pytest.raises(logs.LogsError, match="--tail must be a whole number"):
        logs.check_tail(value)


@pytest.mark.parametrize("value", ["10m", "1h30m", "45s", "2026-12-08", "2026-12-08T04:00:00Z",
                                   "2026-12-08T04:00:00.5+01:00", "1765166400"])
def test_since_accepts_docker_forms(value):
    assert logs.check_since(value) == value


@pytest.mark.parametrize("value", ["yesterday", "10 m", "--all", "10m;ls", "-5m"])
def test_since_refuses_anything_else(value):
    with pytest.raises(logs.LogsError, match="--since must be a duration"):
        logs.check_since(value)


# -- lines -----------------------------------------------------------------------------

API = "2026-12-08T04:44:22.832268083Z dev1_app_api.1.sa1av6w3d1zo@portainer    | serving on 8000"
API2 = "2026-12-08T04:44:25.000000000Z dev1_app_api.1.sa1av6w3d1zo@portainer    | GET /health"
INF = "2026-12-08T04:44:23.5Z dev1_app_inference.1.jkinug2cu8zn@drphoenix    | serving on 8080"


def test_a_line_keeps_dockers_prefix_and_loses_the_timestamp_unless_asked():
    line = logs.parse_line(API)
    assert line.text() == "dev1_app_api.1.sa1av6w3d1zo@portainer    | serving on 8000"
    assert line.text(timestamps=True) == API


def test_a_line_without_a_timestamp_is_passed_as_it_is():
    line = logs.parse_line("error from daemon in stream: no such task")
    assert line.time_ns is None and line.text(timestamps=True) == "error from daemon in stream: no such task"


def test_services_are_merged_by_time():
    merged = logs.merge([f"{API}\n{API2}\n", f"{INF}\n"])
    assert [m.message for m in merged] == ["serving on 8000", "serving on 8080", "GET /health"]


def test_a_line_without_time_stays_after_its_predecessor():
    merged = logs.merge([f"{API}\nplain\n{API2}\n", f"{INF}\n"])
    assert [m.message for m in merged] == ["serving on 8000", "plain", "serving on 8080", "GET /health"]


# -- ps: recorded on the lab (a running api and inference, a service whose image is
# missing (rejected on drphoenix, twice), one whose constraint no node meets (pending)) --

def recorded() -> ps.PsRead:
    return ps.parse_read(RECORDED.read_text())


def test_parse_reads_every_task_with_node_state_error_and_digest():
    read = recorded()
    by_service = {}
    for t in read.tasks:
        by_service.setdefault(t.service.removeprefix(NS + "_"), []).append(t)
    [api] = by_service["api"]
    assert (api.slot, api.node, api.desired_state, api.state) == (1, "portainer", "running", "running")
    assert api.image == "thinkheads/ai-api:1.4.0" and api.digest.startswith("sha256:7e131faa72c6")
    ghosts = by_service["ghost"]
    assert len(ghosts) >= 2 and all(g.state == "rejected" and g.node == "drphoenix" for g in ghosts)
    assert all(g.error == "No such image: phoenix/missing:1" and g.digest is None for g in ghosts)
    [nowhere] = by_service["nowhere"]
    assert nowhere.state == "pending" and nowhere.node == "" and "no suitable node" in nowhere.error
    assert nowhere.name == f"{NS}_nowhere.1"


def test_default_selection_is_current_tasks_and_the_last_failed_of_each_slot():
    read = recorded()
    chosen = ps.current_and_last_failed(read.tasks)
    ghosts = [t for t in chosen if t.service.endswith("_ghost")]
    old = [t for t in ghosts if not t.current]
    assert len(old) == 1  # the newest of the older rejected ones only
    assert old[0].state_since_ns == max(t.state_since_ns for t in read.tasks
                                        if t.service.endswith("_ghost") and not t.current)
    assert all(t in chosen for t in read.tasks if t.current)


def test_json_shape_is_stable():
    read = recorded()
    doc = ps.to_json(NS, "portainer", read.now, ps.current_and_last_failed(read.tasks))
    assert set(doc) == {"namespace", "read_from", "tasks"}
    assert set(doc["tasks"][0]) == {"id", "name", "service", "slot", "node", "desired_state", "state",
                                    "state_age_s", "current", "error", "message", "image", "digest", "exit_code"}
    json.dumps(doc)


def test_ages_are_short_words():
    assert [ps.age_text(s) for s in (None, 3, 125, 7300, 200000)] == ["-", "3 s", "2 min", "2 h", "2 d"]


def test_an_unexpected_answer_is_one_error():
    with pytest.raises(ps.PsUnreadable):
        ps.parse_read("garbage")


# -- task wiring -------------------------------------------------------------------------

@pytest.fixture
def wired(tmp_path, monkeypatch):
    stacks = tmp_path / "stacks"
    shutil.copytree(REPO / "stacks", stacks)
    monkeypatch.setenv("PHOENIX_STACKS_DIR", str(stacks))
    made: list[Transport] = []

    def use(outputs: dict):
        etc = lab_config(tmp_path).config_dir
        monkeypatch.setenv("PHOENIX_CONFIG_DIR", str(etc))

        def connect(vm, access):
            runs = {shell_command(argv): Result(stdout=out, exited=code)
                    for argv, (out, code) in outputs.get(vm.name, {}).items()}
            return MockContext(run=runs, repeat=True)

        def transport_for(cfg, verbose):
            t = Transport(cfg.hypervisor.vm_access, connect=connect)
            made.append(t)
            return t

        monkeypatch.setattr(common, "transport_for", transport_for)
        return made

    return use


run = call_task  # (exit code, Exit's message) of a task called as `inv` calls it


def test_unknown_service_is_one_line_before_any_connection(wired):
    made = wired({})
    code, message = run(observe.logs, stack="thinkheads_ai_app", env="dev1", service="nope")
    assert code == 1 and message == ("error: stack 'thinkheads_ai_app' has no service 'nope' "
                                     "(services: api, inference)")
    assert made == []


def test_bad_tail_is_refused_before_any_connection(wired, capsys):
    made = wired({})
    code, _ = run(observe.logs, stack="thinkheads_ai_app", env="dev1", tail="lots")
    assert code == 1 and "--tail must be a whole number" in capsys.readouterr().err
    assert made == []


def test_an_environment_not_on_the_swarm_is_one_line(wired):
    made = wired({"portainer": {tuple(logs.service_names("dev9_thinkheads_ai_app")): ("", 0)}})
    code, message = run(observe.logs, stack="thinkheads_ai_app", env="dev9")
    assert code == 1 and message.startswith("error: environment 'dev9' of stack 'thinkheads_ai_app' is not on the swarm")
    assert made[0].mutating_commands == []


def test_logs_of_every_service_are_read_and_merged(wired, capsys):
    api, inf = f"{NS}_api", f"{NS}_inference"
    made = wired({"portainer": {
        tuple(logs.service_names(NS)): (f"{api}\n{inf}\n", 0),
        tuple(logs.service_logs(api, tail="5")): (API + "\n" + API2 + "\n", 0),
        tuple(logs.service_logs(inf, tail="5")): (INF + "\n", 0)}})
    code, message = run(observe.logs, stack="thinkheads_ai_app", env="dev1", tail="5")
    assert code == 0, message
    lines = capsys.readouterr().out.splitlines()
    assert [line.split("|")[1].strip() for line in lines] == ["serving on 8000", "serving on 8080", "GET /health"]
    assert made[0].mutating_commands == []


def test_ps_prints_the_rejected_reason_and_json(wired, capsys):
    made = wired({"portainer": {tuple(ps.read_argv(NS)): (RECORDED.read_text(), 0)}})
    code, message = run(observe.ps, stack="thinkheads_ai_app", env="dev1", json=True)
    assert code == 0, message
    doc = json.loads(capsys.readouterr().out)
    rejected = [t for t in doc["tasks"] if t["state"] == "rejected"]
    assert rejected and rejected[0]["node"] == "drphoenix" and rejected[0]["error"].startswith("No such image")
    assert made[0].mutating_commands == []
