"""Task wiring of swarm.drain / undrain / prune over Transport with invoke MockContext
connections (recorded outputs, tests/data/swarm/maint; an unrecorded command fails)."""

import json

import pytest
from invoke import MockContext, Result
from invoke.exceptions import Exit

from phoenix_tasks.swarm import commands
from phoenix_tasks.cluster import maintenance
from phoenix_tasks.tasks import common
from phoenix_tasks.tasks import maintenance as maint_tasks
from phoenix_tasks.core.transport import Transport, shell_command

from maint_recorded import CPU, CPU2, DATA, config, nodes, recorded

DRAIN_CPU = commands.node_availability(CPU, "drain")


def tasks_output(*names):
    return [Result(stdout=(DATA / n).read_text() if isinstance(n, str) else n[0], exited=0) for n in names]


def gone_from(node_id: str, name: str = "tasks_before_drain.txt") -> tuple[str]:
    """A recorded tasks read with every task of one node shut down (a drain that finished)."""
    clock, services, tasks = (DATA / name).read_text().split(commands.SEPARATOR)
    doc = json.loads(tasks)
    for t in doc:
        if t["NodeID"] == node_id:
            t["DesiredState"] = "shutdown"
            t["Status"]["State"] = "shutdown"
    return (commands.SEPARATOR.join([clock, services, json.dumps(doc)]),)


def outputs(node_lists=("nodes_before.json",), task_reads=("tasks_before_drain.txt",), extra=None, vms=4):
    """Per VM name: {command: Result or list of Results (one per call, cycling)}."""
    infos = {"portainer": "info_1001.json", "drphoenix": "info_1002.json", "cpuworker": "info_1003.json",
             "cpuworker2": "info_1004.json"}
    out = {name: {shell_command(commands.facts()): Result(stdout=json.dumps(recorded(f)), exited=0)}
           for name, f in list(infos.items())[:vms]}
    out["portainer"][shell_command(commands.inspect_nodes())] = [
        Result(stdout=json.dumps(nodes(n)) if isinstance(n, str) else json.dumps(n), exited=0) for n in node_lists]
    out["portainer"][shell_command(commands.tasks())] = tasks_output(*task_reads)
    for argv, result in (extra or {}).items():
        out["portainer"][shell_command(argv)] = result
    return out


class FakeTime:
    """The flows' clock: each sleep advances it, nothing waits."""

    def __init__(self):
        self.now = 0.0

    def monotonic(self):
        return self.now

    def sleep(self, seconds):
        self.now += seconds


@pytest.fixture
def wired(tmp_path, monkeypatch):
    def use(outs, vms=4):
        cfg = config(tmp_path, nodes=vms)
        monkeypatch.setenv("PHOENIX_CONFIG_DIR", str(cfg.config_dir))
        made = []

        def transport_for(c, verbose):
            t = Transport(c.hypervisor.vm_access,
                          connect=lambda vm, access: MockContext(run=dict(outs.get(vm.name, {})), repeat=True))
            made.append(t)
            return t
        monkeypatch.setattr(common, "transport_for", transport_for)
        monkeypatch.setattr(maintenance, "time", FakeTime())
        return made
    return use


def mutating(made):
    return [r.display for t in made for r in t.mutating_commands]


def test_drain_refused_for_a_service_with_nowhere_to_go_runs_nothing(wired, capsys):
    made = wired(outputs())
    with pytest.raises(Exit) as exc:
        maint_tasks.drain(MockContext(), vmid="1002")
    assert exc.value.code == 1
    captured = capsys.readouterr()
    assert "service gpu: only drphoenix satisfies 'node.labels.gpu==true'" in captured.out
    assert "refused: nothing was changed" in captured.err
    assert mutating(made) == []


def test_drain_applies_waits_and_reads_again(wired, capsys):
    made = wired(outputs(node_lists=("nodes_before.json", "nodes_drained.json"),
                         task_reads=("tasks_before_drain.txt", "tasks_drain_started.txt", "tasks_drain_starting.txt",
                                     "tasks_drained.txt"),
                         extra={tuple(DRAIN_CPU): Result(exited=0)}))
    maint_tasks.drain(MockContext(), vmid="1003")
    out = capsys.readouterr().out
    assert mutating(made) == [shell_command(DRAIN_CPU)]
    assert "  web.2: cpuworker -> drphoenix (running)" in out
    assert out.index("web.2: cpuworker -> drphoenix (assigned)") < out.index("web.2: cpuworker -> drphoenix (running)")
    assert "converged: facts read again, nothing pending" in out


def test_drain_times_out_naming_what_still_runs(wired, capsys):
    made = wired(outputs(node_lists=("nodes_before.json", "nodes_drained.json"),
                         task_reads=("tasks_before_drain.txt", "tasks_drain_started.txt"),
                         extra={tuple(DRAIN_CPU): Result(exited=0)}))
    with pytest.raises(Exit) as exc:
        maint_tasks.drain(MockContext(), vmid="1003", timeout="10")
    assert exc.value.code == 1
    err = capsys.readouterr().err
    assert "failed: cpuworker (vmid 1003): not drained after 10 s: still on cpuworker: agent task l4yi2cvtke8f" in err
    assert mutating(made) == [shell_command(DRAIN_CPU)]


def test_drain_without_wait_returns_after_the_update(wired, capsys):
    made = wired(outputs(node_lists=("nodes_before.json", "nodes_drained.json"),
                         extra={tuple(DRAIN_CPU): Result(exited=0)}))
    maint_tasks.drain(MockContext(), vmid="1003", wait=False)
    assert mutating(made) == [shell_command(DRAIN_CPU)]
    assert sum(r.display == shell_command(commands.tasks()) for r in made[0].log) == 1  # the plan's read only


def test_a_drained_node_is_no_changes_and_one_tasks_read(wired, capsys):
    made = wired(outputs(node_lists=("nodes_drained.json",), task_reads=("tasks_drained.txt",)))
    maint_tasks.drain(MockContext(), vmid="1003")
    out = capsys.readouterr().out
    assert "drain cpuworker: no changes" in out and "nothing runs on cpuworker" in out
    assert mutating(made) == []


def test_undrain_and_a_vmid_that_is_no_swarm_vm(wired, capsys):
    undrain = commands.node_availability(CPU, "active")
    made = wired(outputs(node_lists=("nodes_drained.json", "nodes_before.json"), extra={tuple(undrain): Result(exited=0)}))
    maint_tasks.undrain(MockContext(), vmid="1003")
    assert mutating(made) == [shell_command(undrain)]
    with pytest.raises(Exit) as exc:
        maint_tasks.undrain(MockContext(), vmid="9000")  # the template
    assert "has no swarm_role" in exc.value.message


def test_prune_dry_run_names_the_node_and_changes_nothing(wired, capsys):
    made = wired(outputs(), vms=3)
    with pytest.raises(Exit) as exc:  # blocked: still up, and no --force
        maint_tasks.prune(MockContext(), dry_run=True, verbose=True)
    assert exc.value.code == 1
    out = capsys.readouterr().out
    assert "still up (ready)" in out
    assert "node cpuworker2 (175axxtoqigg)  drain" in out
    assert f"docker node update --availability drain -- {CPU2}" in out
    assert "dry run: nothing was changed" in out
    assert mutating(made) == []


def test_prune_with_force_drains_and_removes_a_node_not_in_config(wired, capsys):
    drain2 = commands.node_availability(CPU2, "drain")
    rm2 = commands.node_rm(CPU2, force=True)
    after = [n for n in nodes() if n["ID"] != CPU2]
    made = wired(outputs(node_lists=("nodes_before.json", after), task_reads=("tasks_before_drain.txt", gone_from(CPU2)),
                         extra={tuple(drain2): Result(exited=0), tuple(rm2): Result(exited=0)}), vms=3)
    maint_tasks.prune(MockContext(), force=True)
    assert mutating(made) == [shell_command(drain2), shell_command(rm2)]
    assert "converged: facts read again, nothing pending" in capsys.readouterr().out


def test_remove_retries_while_raft_still_lists_a_demoted_manager():
    calls = []

    class T:
        def run(self, where, argv, *, mutating, check=True):
            calls.append(argv)
            failed = len(calls) < 3
            text = "Error response from daemon: node x is a cluster manager and is a member of the raft cluster. " \
                   "It must be demoted to worker before removal" if failed else ""
            from phoenix_tasks.core.transport import CommandResult
            return CommandResult(where, "docker node rm -- x", 1 if failed else 0, "", text)

    action = maintenance.Action(kind="remove", where="portainer", summary="", argv=("docker", "node", "rm", "--", "x"))
    maintenance._remove(T(), action, clock=lambda: 0.0, sleep=lambda s: None)
    assert len(calls) == 3
