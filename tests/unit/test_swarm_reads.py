"""How often a run reads each VM (issue 13): one command per VM when converged (the
manager's node list comes with its `docker info`), and in a cold run only the VMs a
phase changed are read again, not every VM after every phase."""

import json
from collections import Counter

from invoke import Result

from phoenix_tasks.core.argv import display_command
from phoenix_tasks.swarm import commands
from phoenix_tasks.swarm.apply import converge
from phoenix_tasks.swarm.facts import parse_facts, read_facts
from phoenix_tasks.swarm.plan import Options
from phoenix_tasks.core.transport import Transport, shell_command

from swarm_recorded import CONVERGED, MANAGER_ID, converged_outputs, lab_config, mock_connections, nodes, recorded

SEP = commands.NODES_SEPARATOR


def vm_named(config, name):
    return next(vm for vm in config.swarm_vms if vm.name == name)


def manager_output(node_list) -> str:
    """What commands.facts() prints on a manager: its info, the separator, its nodes."""
    return f"{json.dumps(recorded('info_manager.json'))}\n{SEP}\n{json.dumps(node_list)}\n"


def test_facts_is_one_fixed_script_shown_by_its_name():
    argv = commands.facts()
    assert argv[:2] == ["sh", "-c"] and "docker info --format '{{json .}}'" in argv[2]
    assert display_command(argv) == "sh -c <docker info, and the node list on a manager>"
    assert "ControlAvailable" in argv[2] and SEP in argv[2]


def test_parse_facts_reads_a_managers_node_list_with_its_info(tmp_path):
    config = lab_config(tmp_path)
    portainer = vm_named(config, "portainer")
    engine, listed = parse_facts(portainer, manager_output(nodes()))
    assert engine.is_manager and engine.node_id == MANAGER_ID
    assert sorted(n.hostname for n in listed.values()) == ["cpuworker", "drphoenix", "portainer"]


def test_parse_facts_worker_empty_list_and_half_a_list(tmp_path):
    config = lab_config(tmp_path)
    worker, portainer = vm_named(config, "cpuworker"), vm_named(config, "portainer")
    engine, listed = parse_facts(worker, json.dumps(recorded("info_worker_cpu.json")) + "\n")
    assert engine.state == "active" and not engine.is_manager and listed is None
    # The manager's list could not be read (the script printed the separator only), or
    # a node left between `ls` and `inspect` (not JSON): not a list; asked again later.
    for tail in ("", "[{\"ID\": \"x\""):
        engine, listed = parse_facts(portainer, f"{json.dumps(recorded('info_manager.json'))}\n{SEP}\n{tail}")
        assert engine.is_manager and listed is None
    # A worker never claims a node list, whatever follows its info.
    assert parse_facts(worker, f"{json.dumps(recorded('info_worker_cpu.json'))}\n{SEP}\n[]")[1] is None


def test_a_converged_read_is_one_command_per_vm(tmp_path):
    config = lab_config(tmp_path)
    outputs = converged_outputs()
    outputs["portainer"][tuple(commands.facts())] = (manager_output(nodes()), 0)
    t = Transport(config.hypervisor.vm_access, connect=mock_connections(outputs))
    f = read_facts(t, config)
    assert f.control.name == "portainer" and len(f.nodes) == 3
    per_vm = Counter(r.vm for r in t.log)
    assert per_vm == {"portainer": 1, "drphoenix": 1, "cpuworker": 1}
    assert not t.mutating_commands


def test_a_manager_whose_list_did_not_come_with_its_info_is_asked_again(tmp_path):
    config = lab_config(tmp_path)
    outputs = converged_outputs()
    outputs["portainer"][tuple(commands.facts())] = (json.dumps(recorded("info_manager.json")) + f"\n{SEP}\n", 0)
    t = Transport(config.hypervisor.vm_access, connect=mock_connections(outputs))
    f = read_facts(t, config)
    assert f.control.name == "portainer" and len(f.nodes) == 3
    assert [r.display for r in t.log if r.vm == "portainer"][1] == display_command(commands.inspect_nodes())


class Cluster:
    """A fake 3-VM cluster that changes as a cold run's commands land: every facts read
    answers the state now; init, join and label updates change that state."""

    def __init__(self, config):
        self.config = config
        self.joined: set[str] = set()
        self.labelled = False
        self.ran: list[tuple[str, str]] = []

    def node_list(self):
        def edit(by_name):
            for name, n in by_name.items():
                if not self.labelled:
                    n["Spec"]["Labels"] = {}
        return [n for n in nodes(edit) if n["Description"]["Hostname"] in self.joined]

    def answer(self, vm, command):
        self.ran.append((vm.name, command))
        if command == shell_command(commands.facts()):
            if vm.name not in self.joined:
                return json.dumps(recorded("info_inactive.json")), 0
            if vm.name == "portainer":
                return manager_output(self.node_list()), 0
            return json.dumps(recorded(CONVERGED[vm.name])), 0
        if command.startswith(shell_command(commands.only_if_inactive([]))) and "docker swarm init" in command:
            self.joined.add(vm.name)  # in no swarm yet: the guard runs the init
        elif command.startswith("docker swarm join-token"):
            return "SWMTKN-1-fake\n", 0
        elif command == "docker system dial-stdio":  # POST /swarm/join
            self.joined.add(vm.name)
            return "HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n", 0
        elif command.startswith("docker swarm join"):
            self.joined.add(vm.name)
        elif command.startswith("docker node update"):
            self.labelled = True  # the fake labels every node at the first update
        else:
            raise AssertionError(f"unexpected command on {vm.name}: {command}")
        return "", 0

    def connect(self, vm, access):
        cluster = self

        class Connection:
            def run(self, command, **kw):
                stdout, exited = cluster.answer(vm, command)
                return Result(command=command, stdout=stdout, stderr="", exited=exited)

            def close(self):
                pass

        return Connection()


def test_a_cold_run_reads_again_only_the_vms_a_phase_changed(tmp_path):
    config = lab_config(tmp_path)
    cluster = Cluster(config)
    t = Transport(config.hypervisor.vm_access, connect=cluster.connect)
    outcome = converge(t, config, Options())
    assert not outcome.failed and not outcome.pending, (outcome.failed, outcome.pending)
    assert Counter(a.kind for a in outcome.applied)["init"] == 1
    assert Counter(a.kind for a in outcome.applied)["join"] == 2
    reads = Counter(name for name, command in cluster.ran if command == shell_command(commands.facts()))
    # portainer: the first read, then once after each of init, join and labels (its node
    # list); each worker: the first read and once after its join.  Reading every VM after
    # every phase (and again right before init) was 5, 4 and 4.
    assert reads == {"portainer": 4, "drphoenix": 2, "cpuworker": 2}
    assert not [c for _, c in cluster.ran if c == shell_command(commands.inspect_nodes())]
    assert outcome.facts.control.name == "portainer" and len(outcome.facts.nodes) == 3
    assert all(n.labels for n in outcome.facts.nodes.values())


def test_a_converge_given_fresh_facts_does_not_read_them_again(tmp_path):
    config = lab_config(tmp_path)
    outputs = converged_outputs()
    outputs["portainer"][tuple(commands.facts())] = (manager_output(nodes()), 0)
    t = Transport(config.hypervisor.vm_access, connect=mock_connections(outputs))
    first = converge(t, config, Options(), dry_run=True)
    assert first.plan.empty
    seen = len(t.log)
    again = converge(t, config, Options(), facts=first.facts)
    assert again.plan.empty and again.facts is first.facts and len(t.log) == seen


def test_a_pending_engine_is_read_again_until_it_settles(tmp_path):
    """Another control machine's `swarm init` under way shows as `pending` for a moment:
    read again, never planned from (it would be called a join that never finished, and
    its node advised to leave)."""
    config = lab_config(tmp_path)
    outputs = converged_outputs()
    pending = json.loads(json.dumps(recorded("info_inactive.json")))
    pending["Swarm"]["LocalNodeState"] = "pending"
    answers = [json.dumps(pending) + "\n", json.dumps(pending) + "\n", manager_output(nodes())]
    outputs["portainer"][tuple(commands.facts())] = (answers[0], 0)

    class Settling:
        def __init__(self):
            self.reads = 0

        def connect(self, vm, access):
            inner = mock_connections(outputs)(vm, access)
            if vm.name != "portainer":
                return inner
            me = self

            class Connection:
                def run(self, command, **kw):
                    if command == shell_command(commands.facts()):
                        me.reads += 1
                        return Result(command=command, stdout=answers[min(me.reads, 3) - 1], exited=0)
                    return inner.run(command, **kw)
            return Connection()

    settling = Settling()
    slept = []
    t = Transport(config.hypervisor.vm_access, connect=settling.connect)
    f = read_facts(t, config, sleep=slept.append)
    assert settling.reads == 3 and slept == [0.5, 0.5]
    assert f.engines[f.control.vmid].state == "active" and f.control.name == "portainer" and len(f.nodes) == 3


def test_a_join_that_never_finished_is_still_pending_after_the_settle_time(tmp_path):
    config = lab_config(tmp_path)
    outputs = converged_outputs()
    pending = json.loads(json.dumps(recorded("info_worker_cpu.json")))
    pending["Swarm"]["LocalNodeState"] = "pending"
    outputs["cpuworker"][tuple(commands.facts())] = (json.dumps(pending), 0)
    t = Transport(config.hypervisor.vm_access, connect=mock_connections(outputs))
    slept = []
    f = read_facts(t, config, sleep=slept.append)
    assert slept == [0.5] * 10  # 5 s, then taken as it is
    assert f.engines[1003].state == "pending"
