"""bin/phoenix keeps a table of verbs and of the options that take a value (bash, so
that a usage error costs no Python start-up); this test holds that table to the task
collection, the one source: every task is a verb, and every option of a task that takes
a value is known to bin/phoenix as one (else its value could be read as a flag or a
stack)."""

from __future__ import annotations

import re

import pytest

from phoenix_tasks.collection import ns
from phoenix_tasks.completion import verbs_of

from test_phoenix_cli import PHOENIX, phoenix, routed, stub  # noqa: F401 - stub is a fixture

VERBS = verbs_of(ns)


def value_opts() -> set[str]:
    m = re.search(r"^value_opts=\((.*?)\)", PHOENIX.read_text(), re.S | re.M)
    return set(m[1].split())


def label(v) -> str:
    return f"{v.verb} {v.action}".strip()


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
