"""Issue 21, item 7: a lock's reason is one bounded line, text from the cluster is
cleaned before it is printed, and a rollback to a record that did not converge needs
--force.  Task wiring as in test_stack_tasks (recorded outputs, no VM)."""

from __future__ import annotations

import base64
import json

from phoenix_tasks.core.cluster_text import clean
from phoenix_tasks.stack import ledger
from phoenix_tasks.stack import lock as lock_mod
from phoenix_tasks.stack.commands import SEPARATOR
from phoenix_tasks.tasks import stacks as stack_tasks

from test_stack_tasks import run, stacks_dir, wired  # noqa: F401  (fixtures)

NS = "rb_probe_rollback"


def test_clean_strips_control_characters_and_bounds_length():
    assert clean("a\x1b[31mb\nc\x9bd") == "a [31mb c d"
    long = clean("x" * 120_000)
    assert long.startswith("x" * 200) and long.endswith("... (119800 more characters)")


def test_lock_reason_with_escape_or_huge_is_refused_before_any_connection(wired):
    _, made = wired({})
    code, message = run(stack_tasks.lock_, stack="probe_rollback", env="rb", reason="deploy\x1b[2J\nnow")
    assert code == 1 and "--reason holds control characters (\\n \\x1b)" in message
    code, message = run(stack_tasks.lock_, stack="probe_rollback", env="rb", reason="r" * 201)
    assert code == 1 and "--reason is 201 characters; at most 200" in message
    assert made == []


def _config(labels: dict, data: dict | None = None, name: str = "x") -> dict:
    spec = {"Name": name, "Labels": labels}
    if data is not None:
        spec["Data"] = base64.b64encode(json.dumps(data).encode()).decode()
    return {"Spec": spec}


def test_a_lock_read_from_the_cluster_is_printed_clean():
    labels = {lock_mod.LABEL: NS, lock_mod.L_GEN: "1", lock_mod.L_HOLDER: "eve\x1b]0;owned\x07@host",
              lock_mod.L_COMMAND: "swarm.lock: " + "z" * 5000, lock_mod.L_SINCE: "1", lock_mod.L_EXPIRES: "9"}
    _, [gen] = lock_mod.parse_read(f"5\n{SEPARATOR}\n" + json.dumps([_config(labels)]))
    assert "\x1b" not in gen.holder and "\x07" not in gen.holder
    assert len(gen.command) < 300 and gen.command.endswith("more characters)")


def ledger_read(result: str, reason: str = "") -> str:
    entry = ledger.Entry(namespace=NS, seq=1, kind="deploy", env="rb", stack="probe_rollback", hash="abc",
                         who="me\x1b[31m@there", command="swarm.deploy", started=1, document="services: {}\n")
    result_entry = ledger.Entry(**{**entry.__dict__, "result": result, "reason": reason, "finished": 2})
    items = [_config({ledger.ENTRY: NS, ledger.L_SEQ: "1", ledger.L_KIND: "deploy"},
                     json.loads(ledger.entry_data(entry))),
             _config({ledger.RESULT_OF: NS, ledger.L_SEQ: "1", ledger.L_RESULT: result},
                     json.loads(ledger.result_data(result_entry)))]
    return f"5\n{SEPARATOR}\n" + json.dumps(items)


def test_a_ledger_record_read_from_the_cluster_is_clean():
    _, [entry] = ledger.parse_read(ledger_read(ledger.FAILED, "boom\x1b[2J" + "!" * 5000))
    assert entry.who == "me [31m@there"
    assert "\x1b" not in entry.reason and len(entry.reason) < 2100


def test_rollback_to_a_failed_record_needs_force(wired):
    _, made = wired({"portainer": {tuple(ledger.read_argv(NS)): (ledger_read(ledger.FAILED, "exit 3"), 0)}})
    code, message = run(stack_tasks.rollback, stack="probe_rollback", env="rb", to="1")
    assert code == 1
    assert "record #1 is a deploy that did not converge (failed: exit 3)" in message
    assert "run with --force" in message
    [t] = made
    assert t.mutating_commands == []


def test_a_huge_replica_count_is_refused_before_any_connection(wired, stacks_dir, capsys):  # noqa: F811
    """Issue 21, item 1: the deploy that made dockerd grow to 22 GB now stops at render."""
    _, made = wired({})
    compose = stacks_dir / "qdrant_service" / "docker-compose.yml"
    compose.write_text(compose.read_text().replace("      replicas: 1\n", "      replicas: ${N:-99999999999999999}\n"))
    code, _ = run(stack_tasks.deploy, stack="qdrant_service", env="dev9")
    err = capsys.readouterr().err
    assert code == 1
    assert ("docker-compose.yml: /services/qdrant/deploy/replicas: replicas 99999999999999999 is out of range: "
            "0 to 100") in err
    assert made == []
