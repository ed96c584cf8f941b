"""Task wiring: the swarm tasks over Transport with invoke MockContext connections
(recorded outputs; an unrecorded command fails the test)."""

import json

import pytest
from invoke import MockContext, Result
from invoke.exceptions import CommandTimedOut, Exit

from phoenix_tasks.core import engine_api
from phoenix_tasks.swarm import commands, events
from phoenix_tasks.tasks import common
from phoenix_tasks.tasks import swarm as swarm_tasks
from phoenix_tasks.core.transport import Transport, shell_command

from swarm_recorded import GPU_ID, converged_outputs, lab_config, nodes, recorded

TOKEN = "SWMTKN-1-0123456789abcdefghijklmnopqrstuvwxyz0123456789abcdef-abcdefghijklmnopqrstuvwxy"


@pytest.fixture
def wired(tmp_path, monkeypatch):
    """Point the tasks at a recorded lab config and capture the transports they make."""
    config = lab_config(tmp_path)
    monkeypatch.setenv("PHOENIX_CONFIG_DIR", str(config.config_dir))
    made = []

    def use(outputs):
        def transport_for(cfg, verbose):
            t = Transport(cfg.hypervisor.vm_access, connect=connect(outputs),
                          echo=(lambda line: print(line)) if verbose else None)
            made.append(t)
            return t
        monkeypatch.setattr(common, "transport_for", transport_for)
        return made

    return use


def connect(outputs):
    def factory(vm, access):
        if outputs.get(vm.name) == "unreachable":
            return Unreachable()
        if outputs.get(vm.name) == "hung":
            return Hung()
        runs = {shell_command(argv): Result(stdout=out, exited=code, stderr=err[0] if err else "")
                for argv, (out, code, *err) in outputs.get(vm.name, {}).items()}
        return MockContext(run=runs, repeat=True)
    return factory


class Unreachable:
    def run(self, *a, **kw):
        raise TimeoutError("timed out")


class Hung:
    """SSH answers, the engine does not: every command runs into its deadline."""

    timeouts: list = []

    def run(self, command, **kw):
        self.timeouts.append(kw["timeout"])
        raise CommandTimedOut(Result(command=command, exited=-1), timeout=kw["timeout"])


def test_converged_label_run_says_no_changes_and_mutates_nothing(wired, capsys):
    made = wired(converged_outputs())
    swarm_tasks.label(MockContext())
    out = capsys.readouterr().out
    assert "swarm labels: no changes" in out
    [t] = made
    assert t.mutating_commands == []
    # At most 2 remote commands on the manager, 1 on each worker.
    per_vm = {}
    for record in t.log:
        per_vm[record.vm] = per_vm.get(record.vm, 0) + 1
    assert per_vm == {"portainer": 2, "drphoenix": 1, "cpuworker": 1}


def test_dry_run_prints_plan_and_runs_no_mutating_command(wired, capsys):
    outputs = converged_outputs()
    drifted = nodes(lambda by: by["drphoenix"]["Spec"].update(Labels={"gpu": "false", "zone": "compute"}))
    outputs["portainer"][tuple(commands.inspect_nodes())] = (json.dumps(drifted), 0)
    made = wired(outputs)
    swarm_tasks.label(MockContext(), dry_run=True, verbose=True)
    out = capsys.readouterr().out
    assert "1 change" in out and "gpu=true (was false)" in out
    assert f"docker node update --label-add gpu=true -- {GPU_ID}" in out
    assert "dry run: nothing was changed" in out
    assert made[0].mutating_commands == []


def test_join_fetches_token_in_memory_and_never_prints_it(wired, capsys):
    outputs = converged_outputs()
    outputs["cpuworker"] = {tuple(commands.facts()): (json.dumps(recorded("info_inactive.json")), 0)}
    outputs["portainer"][tuple(commands.join_token("worker"))] = (TOKEN + "\n", 0)
    from phoenix_tasks.core.secrets import Secret
    # The join (an Engine API request on dial-stdio's stdin) fails, as it would with a
    # bad token; the engine's answer even echoes the token.
    body = json.dumps({"message": f"invalid join token {TOKEN}"})
    answer = (f"HTTP/1.1 400 Bad Request\r\nContent-Type: application/json\r\n"
              f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n{body}")
    outputs["cpuworker"][engine_api.DIAL_STDIO] = (answer, 0)
    made = wired(outputs)
    with pytest.raises(Exit) as exc:
        swarm_tasks.join(MockContext(), verbose=True)
    assert exc.value.code == 1
    captured = capsys.readouterr()
    everything = captured.out + captured.err + repr(made[0].log)
    assert TOKEN not in everything
    assert "POST /swarm/join" in everything and "the token in the request body" in everything
    assert "failed: cpuworker (vmid 1003)" in captured.err
    assert "invalid join token ***" in captured.err


def test_status_json_and_degraded_exit(wired, capsys):
    outputs = converged_outputs()
    outputs["cpuworker"] = "unreachable"
    wired(outputs)
    with pytest.raises(Exit) as exc:
        swarm_tasks.status(MockContext(), json=True)
    assert exc.value.code == 1
    doc = json.loads(capsys.readouterr().out)
    assert doc["degraded"] is True
    by_name = {n["name"]: n for n in doc["nodes"]}
    assert set(by_name) == {"portainer", "drphoenix", "cpuworker"}
    assert by_name["cpuworker"]["state"] == "unreachable" and by_name["cpuworker"]["reachable"] is False
    assert by_name["drphoenix"]["labels"] == {"gpu": "true", "zone": "compute"}
    assert by_name["portainer"]["role"] == "manager" and by_name["portainer"]["leader"] is True
    assert {"vmid", "name", "role", "state", "availability", "labels"} <= set(by_name["portainer"])
    assert doc["stacks"] == []


def test_status_healthy_exit_zero(wired, capsys):
    wired(converged_outputs())
    swarm_tasks.status(MockContext())
    out = capsys.readouterr().out
    assert "cluster: healthy" in out and "leader: portainer" in out


def test_tokens_masked_unless_revealed(wired, capsys):
    outputs = converged_outputs()
    outputs["portainer"][tuple(commands.join_token("worker"))] = (TOKEN + "\n", 0)
    outputs["portainer"][tuple(commands.join_token("manager"))] = (TOKEN.replace("a", "b") + "\n", 0)
    outputs["portainer"][tuple(events.read_argv())] = ("", 0)  # no rotation recorded
    wired(outputs)
    swarm_tasks.tokens(MockContext())
    out = capsys.readouterr().out
    assert "worker: ***" in out and "manager: ***" in out and TOKEN not in out
    swarm_tasks.tokens(MockContext(), reveal=True)
    assert f"worker: {TOKEN}" in capsys.readouterr().out


def test_bad_vmid_flag_is_refused_before_any_connection(wired, capsys):
    made = wired({})
    with pytest.raises(Exit) as exc:
        swarm_tasks.join(MockContext(), vmid="9999")
    assert "--vmid 9999" in str(exc.value.message)
    with pytest.raises(Exit):
        swarm_tasks.label(MockContext(), vmid="abc")
    for digits in ("²", "١٠٠١", "1001\n", " 1001"):  # isdigit() says yes to the first two
        with pytest.raises(Exit) as exc:
            swarm_tasks.join(MockContext(), vmid=digits)
        assert exc.value.code == 1 and "no swarm VM with that vmid" in str(exc.value.message)
    assert made == []


def test_a_hung_engine_is_reported_by_name_and_the_others_are_read(wired, capsys):
    outputs = converged_outputs()
    outputs["cpuworker"] = "hung"
    wired(outputs)
    Hung.timeouts.clear()
    with pytest.raises(Exit) as exc:
        swarm_tasks.status(MockContext(), json=True)
    assert exc.value.code == 1
    doc = json.loads(capsys.readouterr().out)
    by_name = {n["name"]: n for n in doc["nodes"]}
    assert by_name["cpuworker"]["state"] == "unreachable" and by_name["cpuworker"]["reachable"] is False
    assert by_name["cpuworker"]["detail"] == ("`sh -c <docker info, and the node list on a manager>` did not finish within 15 s "
                                              "(the engine or the VM's sshd may be hung)")
    assert by_name["portainer"]["state"] == by_name["drphoenix"]["state"] == "member"
    assert Hung.timeouts == [15.0]  # a read: vm_access.read_timeout_s, by default (writes: command_timeout_s)


def test_label_with_a_hung_engine_labels_the_others_and_names_it(wired, capsys):
    outputs = converged_outputs()
    drifted = nodes(lambda by: by["drphoenix"]["Spec"].update(Labels={"gpu": "false", "zone": "compute"}))
    outputs["portainer"][tuple(commands.inspect_nodes())] = (json.dumps(drifted), 0)
    update = commands.node_update_labels(GPU_ID, {"gpu": "true"}, [])
    outputs["portainer"][tuple(update)] = ("", 0)
    outputs["cpuworker"] = "hung"
    made = wired(outputs)
    with pytest.raises(Exit) as exc:
        swarm_tasks.label(MockContext())
    captured = capsys.readouterr()
    assert exc.value.code == 1
    assert [r.display for r in made[0].mutating_commands] == [shell_command(update)]
    assert "cpuworker (vmid 1003)" in captured.out + captured.err
    assert "did not finish within 15 s" in captured.out + captured.err


def test_status_names_a_hung_engine_by_name_vmid_and_state_under_the_table(wired, capsys):
    outputs = converged_outputs()
    outputs["cpuworker"] = "hung"
    wired(outputs)
    with pytest.raises(Exit) as exc:
        swarm_tasks.status(MockContext())
    assert exc.value.code == 1
    text = " ".join(capsys.readouterr().out.split())
    assert ("cpuworker (vmid 1003): unreachable: `sh -c <docker info, and the node list on a manager>` did not finish within 15 s "
            "(the engine or the VM's sshd may be hung)") in text
