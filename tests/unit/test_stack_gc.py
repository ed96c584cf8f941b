"""Clean-up (phoenix_tasks.stack.gc): the parse of its read, the pure plan (what a kept
record or a running service names is never removed; nothing outside the namespace's
objects is ever a candidate), and `collect` over a real Transport on FakeSwarm
(test_stack_lock.py): exact rm commands, and none when nothing is old."""

from __future__ import annotations

import shlex

from test_stack_ledger import finished, seed
from test_stack_lock import HOSTILE, MANAGER, NS, T0, FakeSwarm, transport_on

from phoenix_tasks.stack import gc, ledger
from phoenix_tasks.stack.commands import SEPARATOR
from phoenix_tasks.stack.gc import (
    Collected,
    collect,
    list_argv,
    parse_list,
    plan_collect,
)
from phoenix_tasks.stack.ledger import CONVERGED, FAILED, Entry, entry_name
from phoenix_tasks.docker.render import STACK_NAMESPACE_LABEL, object_labels
from phoenix_tasks.core.transport import shell_command

OTHER_NS = "dev2_thinkheads_ai_app"


def obj(key: str, n: int, ns: str = NS) -> str:
    return f"{ns}_{key}_{n:08x}"


def rec(seq: int, *objects: str, result: str = CONVERGED, kind: str = "deploy") -> Entry:
    e = Entry(namespace=NS, seq=seq, kind=kind, env="dev1", stack="thinkheads_ai_app", hash=f"{seq:012x}",
              who="alice@laptop", command="swarm.deploy", started=T0 + seq,
              document=None if kind == "rm" else f"services: {{}}  # {seq}\n", objects=tuple(objects))
    return finished(e, result) if result != ledger.INCOMPLETE else e


# -- the read -----------------------------------------------------------------------------------

def test_list_argv_passes_the_namespace_as_one_argument():
    assert list_argv(HOSTILE) == ["sh", "-c", gc.LIST_SCRIPT, "phoenix", HOSTILE]
    assert "dev1" not in gc.LIST_SCRIPT
    assert f'"label={STACK_NAMESPACE_LABEL}=$1"' in gc.LIST_SCRIPT
    assert shlex.split(shell_command(list_argv(HOSTILE)))[-1] == HOSTILE


def test_parse_list():
    stdout = (f"config {obj('api_settings', 1)}\n"
              f"config {obj('api_settings', 2)}\n"
              f"secret {obj('token', 3)}\n"
              "\n"
              "volume not_a_kind_we_know\n"
              "config\n"
              f"{SEPARATOR}\n"
              f"config {obj('api_settings', 2)}\n"
              f"  secret {obj('token', 3)}  \n"
              "\n")
    objects, used = parse_list(stdout)
    assert objects == {obj("api_settings", 1): "config", obj("api_settings", 2): "config",
                       obj("token", 3): "secret"}
    assert used == {obj("api_settings", 2), obj("token", 3)}


def test_parse_list_with_no_service():
    assert parse_list(f"config a\n{SEPARATOR}\n") == ({"a": "config"}, set())
    assert parse_list(f"{SEPARATOR}\n") == ({}, set())


# -- the plan -----------------------------------------------------------------------------------

def test_plan_keeps_what_kept_records_and_running_services_name():
    entries = [rec(1, obj("api_settings", 1)), rec(2, obj("api_settings", 2), obj("token", 2)),
               rec(3, obj("api_settings", 3)), rec(4, obj("api_settings", 4), obj("token", 4))]
    objects = {obj("api_settings", n): "config" for n in (1, 2, 3, 4)} | {
        obj("token", 2): "secret", obj("token", 4): "secret", obj("token", 9): "secret"}
    used = {obj("api_settings", 1)}  # a service still runs an old config (its update rolled back)
    old, doomed, kept = plan_collect(entries, 2, objects, used)
    assert [e.seq for e in old] == [1, 2]
    assert kept == 2
    assert doomed == [("config", obj("api_settings", 2)), ("secret", obj("token", 2)), ("secret", obj("token", 9))]


def test_plan_never_touches_names_outside_the_given_objects():
    # an old record names objects that are not the namespace's (or are gone already)
    entries = [rec(1, obj("api_settings", 1, OTHER_NS), "shared_settings_v1"), rec(2), rec(3)]
    old, doomed, _ = plan_collect(entries, 2, {obj("api_settings", 5): "config"}, set())
    assert [e.seq for e in old] == [1]
    assert doomed == [("config", obj("api_settings", 5))]


def test_plan_with_nothing_old_removes_nothing():
    entries = [rec(1, obj("api_settings", 1)), rec(2, obj("api_settings", 2))]
    objects = {obj("api_settings", 1): "config", obj("api_settings", 2): "config"}
    assert plan_collect(entries, 5, objects, set()) == ([], [], 2)


def test_plan_of_an_empty_ledger_keeps_only_what_services_use():
    objects = {"a": "config", "b": "secret"}
    assert plan_collect([], 5, objects, {"b"}) == ([], [("config", "a")], 0)


def test_plan_keeps_objects_of_failed_and_incomplete_records_in_the_window():
    entries = [rec(1, "c1"), rec(2, "c2"), rec(3, "c3", result=FAILED), rec(4, "c4", result=ledger.INCOMPLETE)]
    old, doomed, kept = plan_collect(entries, 3, {"c1": "config", "c2": "config", "c3": "config",
                                                  "c4": "config"}, set())
    assert [e.seq for e in old] == [1] and doomed == [("config", "c1")] and kept == 3


# -- collect over the fake manager --------------------------------------------------------------------

def fill(swarm: FakeSwarm) -> None:
    labels = object_labels(NS, "dev1", "thinkheads_ai_app")
    for n in (1, 2, 3, 4):
        swarm.add_config(obj("api_settings", n), labels, b"settings\n")
    for n in (2, 4):
        swarm.secrets[obj("token", n)] = {"labels": labels}
    other = object_labels(OTHER_NS, "dev2", "thinkheads_ai_app")
    swarm.add_config(obj("api_settings", 1, OTHER_NS), other, b"settings\n")
    swarm.secrets[obj("token", 1, OTHER_NS)] = {"labels": other}
    seed(swarm, rec(1, obj("api_settings", 1)),
         rec(2, obj("api_settings", 2), obj("token", 2), result=ledger.INCOMPLETE),
         rec(3, obj("api_settings", 3)),
         rec(4, obj("api_settings", 4), obj("token", 4)))


def test_collect_removes_old_records_and_what_nothing_kept_uses():
    swarm = FakeSwarm()
    fill(swarm)
    swarm.used = [f"config {obj('api_settings', 3)}"]
    t = transport_on(swarm)
    done = collect(t, MANAGER, NS, keep=1)
    assert swarm.mutating() == [
        # the incomplete record #2 has no result config: naming one would fail the rm
        ["docker", "config", "rm", "--", entry_name(NS, 1), entry_name(NS, 1) + "-r",
         entry_name(NS, 2), entry_name(NS, 3), entry_name(NS, 3) + "-r"],
        ["docker", "config", "rm", "--", obj("api_settings", 1), obj("api_settings", 2)],
        ["docker", "secret", "rm", "--", obj("token", 2)],
    ]
    assert done.records == [1, 2, 3] and done.kept == 1
    assert done.objects == [f"config {obj('api_settings', 1)}", f"config {obj('api_settings', 2)}",
                            f"secret {obj('token', 2)}"]
    assert done.describe() == ("clean-up: removed 3 old ledger record(s) and 3 config(s)/secret(s) no kept "
                               "deploy uses (1 deploys kept)")
    # what is left: the kept record, what it and the running service use, the other environment's
    assert sorted(swarm.configs) == sorted([
        entry_name(NS, 4), entry_name(NS, 4) + "-r", obj("api_settings", 3), obj("api_settings", 4),
        obj("api_settings", 1, OTHER_NS)])
    assert sorted(swarm.secrets) == sorted([obj("token", 4), obj("token", 1, OTHER_NS)])
    # reads first: the ledger, then the namespace's objects
    assert [r.mutating for r in t.log] == [False, False, True, True, True]


def test_collect_with_nothing_old_runs_no_rm():
    swarm = FakeSwarm()
    fill(swarm)
    swarm.used = [f"config {obj('api_settings', n)}" for n in (1, 2, 3)] + [f"secret {obj('token', 2)}"]
    t = transport_on(swarm)
    done = collect(t, MANAGER, NS, keep=4)
    assert t.mutating_commands == [] and swarm.mutating() == []
    assert done == Collected(records=[], objects=[], kept=4)
    assert done.empty and done.describe() == "clean-up: nothing to remove (4 deploys kept)"


def test_collect_reports_objects_only_when_their_rm_worked():
    swarm = FakeSwarm()
    fill(swarm)
    del swarm.configs[obj("api_settings", 2)]  # listed, then gone before the rm: the rm fails
    original = swarm.run

    def stale_list(command, **kw):
        res = original(command, **kw)
        if command.startswith("sh -c") and "docker secret ls" in command:
            res.stdout = f"config {obj('api_settings', 2)}\n" + res.stdout
        return res

    swarm.run = stale_list
    done = collect(transport_on(swarm), MANAGER, NS, keep=2)
    assert ["docker", "config", "rm", "--", obj("api_settings", 1), obj("api_settings", 2)] in swarm.mutating()
    assert all(not o.startswith("config ") for o in done.objects)
    assert done.objects == [f"secret {obj('token', 2)}"]
    assert done.records == [1, 2]
