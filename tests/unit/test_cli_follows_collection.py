"""bin/phoenix keeps a table of verbs and of the options that take a value (bash, so
that a usage error costs no Python start-up), generated from the task collection, the
one source (`python -m phoenix_tasks.completion --write`); these tests hold it to the
collection: the table is what the generator writes now, every task is a verb, and every
option of a task that takes a value is known to bin/phoenix as one (else its value
could be read as a flag or a stack)."""

from __future__ import annotations

import re

import pytest

from phoenix_tasks.collection import ns
from phoenix_tasks.completion import CHANGES_NOTHING, cli_table, with_table, verbs_of

from test_phoenix_cli import PHOENIX, phoenix, routed, stub  # noqa: F401 - stub is a fixture

VERBS = verbs_of(ns)


def value_opts() -> set[str]:
    m = re.search(r"^value_opts=\((.*?)\)", PHOENIX.read_text(), re.S | re.M)
    return set(m[1].split())


def label(v) -> str:
    return f"{v.verb} {v.action}".strip()


def test_the_table_in_bin_phoenix_is_generated_from_the_collection():
    script = PHOENIX.read_text()
    assert with_table(script, cli_table(ns)) == script, (
        "bin/phoenix's table is stale: run `.venv/bin/python -m phoenix_tasks.completion --write`")


def test_the_verbs_that_change_nothing_are_tasks_without_a_dry_run():
    for name in CHANGES_NOTHING:
        assert name in ns.task_names
        assert "dry_run" not in {a.name for a in ns[name].get_arguments(ignore_unknown_help=True)}


def test_a_new_flag_reaches_bin_phoenix_without_an_edit_in_bash(tmp_path):
    # A task grows an option that takes a value: the table generated for it knows it.
    from invoke import Collection, task

    @task(auto_shortflags=False)
    def status(c, json=False, verbose=False, since_when=None, config_dir=None):
        pass

    extra = Collection()
    for name, t in ns.tasks.items():
        extra.add_task(t, name)
    sub = Collection("vm")
    sub.add_task(status)
    extra.add_collection(sub)
    table = cli_table(extra)
    assert "--since-when" in re.search(r"^value_opts=\((.*?)\)", table, re.M)[1].split()
    assert "' --config-dir --json --since-when --verbose '" in table


@pytest.mark.parametrize("verb", VERBS, ids=label)
def test_every_task_is_a_verb(verb, stub):  # noqa: F811
    words = [verb.verb] + ([verb.action] if verb.action else []) + (["bash"] if verb.verb == "completion" else [])
    task = {"sync": "sync-all", "validate": "validate", "completion": "completion"}.get(
        verb.verb, f"{verb.verb}.{verb.action}")
    assert routed(phoenix(*words, inv=stub))[0] == task


@pytest.mark.parametrize("verb", [v for v in VERBS if v.verb != "lab"], ids=label)
def test_every_value_taking_option_is_known_to_bin_phoenix(verb):
    # (the lab tasks' options are in bin/phoenix's lab cases, with their short forms)
    missing = set(verb.value_flags) - value_opts()
    assert not missing, f"bin/phoenix value_opts lacks {sorted(missing)} ({label(verb)})"


@pytest.mark.parametrize("verb", [v for v in VERBS if v.verb not in ("lab", "completion")], ids=label)
@pytest.mark.parametrize("flag, option", [("--dry-run", "--dry-run"), ("-v", "--verbose")])
def test_global_flags_are_passed_exactly_to_the_tasks_that_take_them(verb, flag, option, stub):  # noqa: F811
    words = [verb.verb] + ([verb.action] if verb.action else [])
    r = phoenix(flag, *words, inv=stub)
    if option in verb.flags:
        assert r.returncode == 0 and option in routed(r), r.stderr
    else:
        assert r.returncode == 2 and r.stdout == "", (verb, flag, r.stdout)
