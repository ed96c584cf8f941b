"""The ledger (phoenix_tasks.stack.ledger): names, exact argv, what its data holds (never
a secret value), the parse of a `docker config inspect` as docker prints it, and the
Recorder over a real Transport on FakeSwarm (test_stack_lock.py)."""

from __future__ import annotations

import base64
import hashlib
import json
import shlex
from types import SimpleNamespace

import pytest
from invoke import Result
from test_stack_lock import (
    CONFIG,
    HOSTILE,
    MANAGER,
    NS,
    T0,
    FakeSwarm,
    config_item,
    inspect_json,
    transport_on,
)

from phoenix_tasks.portainer.service import Password, render_portainer
from phoenix_tasks.core.secrets import Secret
from phoenix_tasks.stack import digests, ledger
from phoenix_tasks.stack.commands import SEPARATOR
from phoenix_tasks.stack.transaction import referenced_objects
from phoenix_tasks.stack.ledger import (
    CONVERGED,
    ENTRY,
    FAILED,
    INCOMPLETE,
    L_HASH,
    L_KIND,
    L_RESULT,
    L_SEQ,
    RESULT_OF,
    Entry,
    Recorder,
    create_entry_argv,
    create_result_argv,
    entry_data,
    entry_name,
    parse_read,
    read_argv,
    result_data,
    retained,
)
from phoenix_tasks.core.transport import RemoteCommandFailed, shell_command

SECRET_VALUE = "hunter2-but-much-longer-and-secret"


def entry(seq: int = 1, **kw) -> Entry:
    fields = {"namespace": NS, "seq": seq, "kind": "deploy", "env": "dev1", "stack": "thinkheads_ai_app",
              "hash": "6c6452d5835c", "who": "alice@laptop",
              "command": "swarm.deploy --stack thinkheads_ai_app --env dev1", "started": T0,
              "document": "services:\n  api:\n    image: thinkheads/ai-api:1.4.0\n",
              "objects": ("dev1_thinkheads_ai_app_api_settings_8e109b51",),
              "digests": {"thinkheads/ai-api:1.4.0": "thinkheads/ai-api:1.4.0@sha256:" + "a" * 64}}
    fields.update(kw)
    return Entry(**fields)


def entry_item(e: Entry) -> dict:
    """An entry's config as `docker config inspect` prints it, from what the Recorder creates."""
    labels = dict(a.split("=", 1) for a in create_entry_argv(e)[3:-3] if a != "--label")
    return config_item(e.name, labels, entry_data(e).encode())


def result_item(e: Entry) -> dict:
    labels = dict(a.split("=", 1) for a in create_result_argv(e)[3:-3] if a != "--label")
    return config_item(e.name + "-r", labels, result_data(e).encode())


def read_stdout(items: list[dict], clock: int = T0) -> str:
    return f"{clock}\n{SEPARATOR}\n" + (inspect_json(items) if items else "[]\n")


def finished(e: Entry, result: str = CONVERGED, reason: str = "", duration: float = 12.5) -> Entry:
    e.result, e.reason, e.duration_s, e.finished = result, reason, duration, e.started + int(duration)
    return e


# -- names and argv ------------------------------------------------------------------------------

def test_entry_name_is_stable_short_and_per_namespace():
    sha12 = hashlib.sha256(NS.encode()).hexdigest()[:12]
    assert entry_name(NS, 7) == f"phx-ledger-{sha12}-000007"
    assert entry_name(NS, 7) != entry_name("dev2_thinkheads_ai_app", 7)
    assert len(entry_name("x" * 300, 999_999) + "-r") <= 64
    assert entry(7).name == entry_name(NS, 7)


def test_create_entry_argv_exact():
    assert create_entry_argv(entry(3)) == [
        "docker", "config", "create",
        "--label", f"io.phoenix.ledger={NS}",
        "--label", "io.phoenix.ledger.seq=3",
        "--label", "io.phoenix.ledger.kind=deploy",
        "--label", "io.phoenix.ledger.hash=6c6452d5835c",
        "--", entry_name(NS, 3), "-"]


def test_create_entry_argv_of_an_rm_has_no_hash():
    argv = create_entry_argv(entry(4, kind="rm", hash=None, document=None))
    assert argv[argv.index("io.phoenix.ledger.kind=rm") + 1:] == [
        "--label", "io.phoenix.ledger.hash=-", "--", entry_name(NS, 4), "-"]


def test_create_result_argv_exact():
    assert create_result_argv(finished(entry(3), FAILED, "web: crashed")) == [
        "docker", "config", "create",
        "--label", f"io.phoenix.ledger.result-of={NS}",
        "--label", "io.phoenix.ledger.seq=3",
        "--label", "io.phoenix.ledger.result=failed",
        "--", entry_name(NS, 3) + "-r", "-"]


def test_remove_and_read_argv():
    assert ledger.remove_argv(["a", "a-r"]) == ["docker", "config", "rm", "--", "a", "a-r"]
    assert read_argv(HOSTILE) == ["sh", "-c", ledger.READ_SCRIPT, "phoenix", HOSTILE]
    assert "dev1" not in ledger.READ_SCRIPT
    assert shlex.split(shell_command(read_argv(HOSTILE)))[-1] == HOSTILE


# -- the data: what was deployed, never a secret value -------------------------------------------

def test_entry_data_names_the_secret_never_its_value():
    rendered = render_portainer(CONFIG, Password("test", Secret(SECRET_VALUE)))
    [secret] = rendered.objects
    assert secret.kind == "secret" and secret.content.reveal() == SECRET_VALUE  # the value is in the render...
    e = Entry(namespace=rendered.namespace, seq=1, kind="deploy", env=rendered.env, stack=rendered.stack,
              hash=rendered.hash, who="alice@laptop", command="portainer.deploy", started=T0,
              document=rendered.text, objects=referenced_objects(rendered.document),
              digests=digests.images_digests(rendered.document))
    finished(e, FAILED, "portainer: task failed")
    data, result = entry_data(e), result_data(e)
    for text in (data, result, json.dumps(e.to_dict(with_document=True))):
        assert SECRET_VALUE not in text  # ...but never in the ledger
        assert base64.b64encode(SECRET_VALUE.encode()).decode() not in text
    stored = json.loads(data)
    assert stored["objects"] == [secret.name]  # it names the secret
    assert stored["document"] == rendered.text  # the document exactly as sent
    assert f"name: {secret.name}" in stored["document"]


def test_entry_data_and_result_data_hold_their_fields():
    e = finished(entry(2), CONVERGED, "", 3.0)
    assert json.loads(entry_data(e)) == {
        "namespace": NS, "kind": "deploy", "env": "dev1", "stack": "thinkheads_ai_app", "hash": "6c6452d5835c",
        "who": "alice@laptop", "command": "swarm.deploy --stack thinkheads_ai_app --env dev1", "started": T0,
        "document": e.document, "objects": ["dev1_thinkheads_ai_app_api_settings_8e109b51"],
        "digests": dict(e.digests), "services": []}
    assert json.loads(result_data(e)) == {"result": "converged", "reason": "", "duration_s": 3.0,
                                          "finished": T0 + 3}
    assert entry_data(e).endswith("}\n") and result_data(e).endswith("}\n")


# -- parse_read ---------------------------------------------------------------------------------

def test_parse_read_joins_entries_and_results_by_seq():
    one, two, three = entry(1), entry(2, hash="bbbbbbbbbbbb"), entry(3, kind="rm", hash=None, document=None,
                                                                    objects=(), digests={})
    finished(one, CONVERGED, duration=20.0)
    finished(three, ledger.REMOVED, duration=4.2)
    # listed as docker lists them: in no order, results among the entries
    stdout = read_stdout([result_item(three), entry_item(two), entry_item(three), result_item(one),
                          entry_item(one)], clock=T0 + 999)
    now, entries = parse_read(stdout)
    assert now == T0 + 999
    assert [(e.seq, e.kind, e.result) for e in entries] == [(1, "deploy", CONVERGED), (2, "deploy", INCOMPLETE),
                                                          (3, "rm", ledger.REMOVED)]
    got = entries[0]
    assert (got.namespace, got.env, got.stack, got.hash, got.who, got.command, got.started) == (
        NS, "dev1", "thinkheads_ai_app", "6c6452d5835c", "alice@laptop",
        "swarm.deploy --stack thinkheads_ai_app --env dev1", T0)
    assert got.document == one.document  # the base64 Data decoded
    assert got.objects == one.objects and got.digests == dict(one.digests)
    assert (got.duration_s, got.finished) == (20.0, T0 + 20)
    assert (entries[1].duration_s, entries[1].finished, entries[1].reason) == (None, None, "")
    assert entries[2].document is None and entries[2].hash is None


def test_parse_read_of_an_empty_ledger():
    assert parse_read(f"{T0}\n{SEPARATOR}\n[]\n") == (T0, [])


def test_parse_read_ignores_garbage():
    good = entry(5)
    stdout = read_stdout([
        config_item("unlabelled", None),
        config_item("no-seq", {ENTRY: NS, L_KIND: "deploy"}, b"{}"),
        config_item("bad-seq", {ENTRY: NS, L_SEQ: "five"}, b"{}"),
        config_item("neither", {L_SEQ: "6"}, b"{}"),
        # a result whose entry is gone: nothing to attach it to
        config_item(entry_name(NS, 9) + "-r", {RESULT_OF: NS, L_SEQ: "9", L_RESULT: "converged"},
                    result_data(finished(entry(9))).encode()),
        entry_item(good),
    ])
    _, entries = parse_read(stdout)
    assert [e.seq for e in entries] == [5]
    assert entries[0].document == good.document


def test_parse_read_of_undecodable_data_keeps_the_labels_and_no_document():
    item = config_item(entry_name(NS, 2), {ENTRY: NS, L_SEQ: "2", L_KIND: "rollback", L_HASH: "x"})
    item["Spec"]["Data"] = "%%% not base64 %%%"
    not_json = config_item(entry_name(NS, 3), {ENTRY: NS, L_SEQ: "3", L_KIND: "deploy"}, b"\xff\xfe not utf-8")
    _, entries = parse_read(read_stdout([item, not_json]))
    assert [(e.seq, e.kind, e.document, e.result, e.who) for e in entries] == [
        (2, "rollback", None, INCOMPLETE, "?"), (3, "deploy", None, INCOMPLETE, "?")]


def test_parse_read_of_data_that_is_json_but_not_an_object_is_ignored():
    odd = config_item(entry_name(NS, 2), {ENTRY: NS, L_SEQ: "2", L_KIND: "deploy"}, b"[1, 2]")
    _, entries = parse_read(read_stdout([odd, entry_item(entry(3))]))
    assert [(e.seq, e.document) for e in entries] == [(2, None), (3, entry(3).document)]


def test_to_dict_leaves_the_document_out_unless_asked():
    e = entry(1)
    assert "document" not in e.to_dict()
    assert e.to_dict(with_document=True)["document"] == e.document
    assert e.to_dict()["result"] == INCOMPLETE


# -- Recorder over the fake manager ----------------------------------------------------------------

def seed(swarm: FakeSwarm, *entries: Entry) -> None:
    for e in entries:
        item = entry_item(e)
        swarm.add_config(e.name, item["Spec"]["Labels"], entry_data(e).encode())
        if e.result != INCOMPLETE:
            r = result_item(e)
            swarm.add_config(e.name + "-r", r["Spec"]["Labels"], result_data(e).encode())


def test_start_on_an_empty_ledger_writes_record_1():
    swarm = FakeSwarm()
    t = transport_on(swarm)
    e = Recorder(t, MANAGER).start(entry(0, started=0))
    assert (e.seq, e.started) == (1, T0)  # the manager's clock, not ours
    assert swarm.mutating() == [create_entry_argv(e)]
    assert swarm.stdins[-1] == entry_data(e)
    assert [r.mutating for r in t.log] == [False, True]


def test_start_takes_the_highest_seq_plus_one():
    swarm = FakeSwarm()
    seed(swarm, finished(entry(1)), finished(entry(4)), entry(2))  # 3 was cleaned up; 4 is the highest
    e = Recorder(transport_on(swarm), MANAGER).start(entry(0))
    assert e.seq == 5
    assert [a[-2] for a in swarm.mutating()] == [entry_name(NS, 5)]


def test_start_retries_with_the_next_seq_when_the_name_exists():
    swarm = FakeSwarm()
    seed(swarm, finished(entry(1)))
    rival = entry(2, who="bob@ci")
    swarm.before_create = lambda name: seed(swarm, rival) if name == entry_name(NS, 2) and not \
        swarm.configs.get(name) else None
    e = Recorder(transport_on(swarm), MANAGER).start(entry(0, who="alice@laptop"))
    assert e.seq == 3
    assert [a[-2] for a in swarm.mutating()] == [entry_name(NS, 2), entry_name(NS, 3)]
    assert json.loads(swarm.configs[entry_name(NS, 2)]["data"])["who"] == "bob@ci"  # never overwritten
    assert json.loads(swarm.configs[entry_name(NS, 3)]["data"])["who"] == "alice@laptop"


def test_start_raises_other_failures():
    swarm = FakeSwarm()
    original = swarm.run

    def full(command, **kw):
        if command.startswith("docker config create"):
            swarm.commands.append(shlex.split(command))
            return Result(stderr="Error response from daemon: config data too large\n", exited=1)
        return original(command, **kw)

    swarm.run = full
    with pytest.raises(RemoteCommandFailed, match="config data too large"):
        Recorder(transport_on(swarm), MANAGER).start(entry(0))
    assert len([a for a in swarm.commands if a[:3] == ["docker", "config", "create"]]) == 1  # no retry loop


def test_finish_writes_the_result_and_reads_back(monkeypatch):
    ticks = iter([500.0, 512.34])
    monkeypatch.setattr(ledger, "time", SimpleNamespace(monotonic=lambda: next(ticks)))
    swarm = FakeSwarm()
    t = transport_on(swarm)
    rec = Recorder(t, MANAGER)
    e = rec.start(entry(0))
    done = rec.finish(e, FAILED, "x" * 3000)
    assert done is e
    assert (e.result, e.duration_s, e.finished) == (FAILED, 12.3, T0 + 12)
    assert e.reason == "x" * 2000
    assert swarm.mutating()[-1] == create_result_argv(e) and swarm.stdins[-1] == result_data(e)
    assert create_result_argv(e)[-2] == entry_name(NS, 1) + "-r"
    # what a later `swarm.history` reads
    _, [back] = ledger.read(t, MANAGER, NS)
    assert (back.seq, back.result, back.reason, back.duration_s, back.finished) == (1, FAILED, "x" * 2000, 12.3,
                                                                                    T0 + 12)
    assert back.document == e.document


def test_an_entry_without_result_reads_as_incomplete():
    swarm = FakeSwarm()
    t = transport_on(swarm)
    Recorder(t, MANAGER).start(entry(0))  # the run was killed here
    _, [back] = ledger.read(t, MANAGER, NS)
    assert back.result == INCOMPLETE and back.finished is None


# -- retained ---------------------------------------------------------------------------------

def test_retained_keeps_the_last_k():
    es = [entry(i) for i in range(1, 6)]
    kept, old = retained(es, 2)
    assert [e.seq for e in kept] == [4, 5] and [e.seq for e in old] == [1, 2, 3]


def test_retained_with_fewer_records_than_k_keeps_all():
    es = [entry(1), entry(2)]
    assert retained(es, 5) == (es, [])
    assert retained([], 3) == ([], [])


def test_retained_with_k_zero_keeps_all():
    es = [entry(1), entry(2)]
    assert retained(es, 0) == (es, [])


def test_retained_always_keeps_the_last_converged_deploy():
    # a run of failures must not push out the deploy a rollback goes back to
    es = [finished(entry(1)), finished(entry(2), FAILED), finished(entry(3), FAILED), finished(entry(4), FAILED)]
    kept, old = retained(es, 2)
    assert [e.seq for e in kept] == [1, 3, 4] and [e.seq for e in old] == [2]
    es.append(finished(entry(5)))
    kept, old = retained(es, 2)
    assert [e.seq for e in kept] == [4, 5] and [e.seq for e in old] == [1, 2, 3]
