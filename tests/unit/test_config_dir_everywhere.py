"""--config-dir on every task (issue 22), and its precedence decided in one place,
paths.config_dir: --config-dir, then PHOENIX_CONFIG_DIR, then the default (etc/, or
etc/lab for the lab.* tasks)."""

from __future__ import annotations

import os

import pytest

from phoenix_tasks.core import paths
from phoenix_tasks.__main__ import PhoenixProgram
from phoenix_tasks.collection import ns
from phoenix_tasks.config import validate
from phoenix_tasks.tasks import lab

from conftest import call_task, run_task

TASKS = sorted(ns.task_names)
# Tasks that read no configuration (they take the flag all the same).
READ_NOTHING = {"completion", "lab.config"}


def test_the_collection_is_all_there():
    assert len(TASKS) >= 32 and "swarm.deploy" in TASKS and "lab.up" in TASKS


@pytest.mark.parametrize("name", TASKS)
def test_every_task_takes_config_dir_with_a_value(name):
    args = {a.name: a for a in ns[name].get_arguments()}
    assert "config_dir" in args, f"{name} has no --config-dir"
    assert args["config_dir"].kind is str and args["config_dir"].default is None
    assert not args["config_dir"].positional


@pytest.mark.parametrize("name", TASKS)
def test_inv_help_shows_config_dir(name, capsys):
    PhoenixProgram(name="Phoenix", binary="inv", namespace=ns).run(["inv", "--help", name], exit=False)
    shown = capsys.readouterr().out
    assert f"Usage: inv [--core-opts] {name}" in shown
    assert "--config-dir=STRING" in shown


@pytest.mark.parametrize("name, says", [("swarm.deploy", "configuration directory (default: $PHOENIX_CONFIG_DIR, else etc/)"),
                                        ("lab.up", "lab configuration directory (default: $PHOENIX_CONFIG_DIR, else etc/lab)"),
                                        ("lab.config", "this one reads no configuration")])
def test_the_help_says_what_the_default_is(name, says):
    # (a fresh process: Invoke hands each task's help text to the first parser built)
    shown = run_task({"PATH": os.environ.get("PATH", "/usr/bin:/bin")}, "--help", name, timeout=60).stdout
    assert " ".join(shown.split()).count(says) == 1, shown


@pytest.mark.parametrize("name", sorted(set(TASKS) - READ_NOTHING))
def test_every_reading_task_reads_the_config_dir_it_is_given(name, tmp_path, monkeypatch, capsys):
    # A directory that does not exist: each task stops at its config, exit 1, naming
    # that directory (no connection: nothing is read past the config).
    missing = tmp_path / "given"
    monkeypatch.setenv(paths.CONFIG_DIR_ENV, str(tmp_path / "from-env"))
    flags = {"stack": "web", "env": "prod"} if "stack" in {a.name for a in ns[name].get_arguments()} else {}
    if name == "lab.ssh":
        flags = {"vmid": "101"}
    code, message = call_task(ns[name], config_dir=str(missing), **flags)
    assert code == 1
    said = capsys.readouterr()
    assert str(missing) in said.err + said.out + message
    assert "from-env" not in said.err + said.out


def test_precedence_flag_then_environment_then_default(tmp_path, monkeypatch):
    monkeypatch.setenv(paths.CONFIG_DIR_ENV, str(tmp_path / "env"))
    assert paths.config_dir(str(tmp_path / "flag")) == tmp_path / "flag"
    assert paths.config_dir(str(tmp_path / "flag"), default="etc/lab") == tmp_path / "flag"
    assert paths.config_dir() == tmp_path / "env"
    assert paths.config_dir(None, default="etc/lab") == tmp_path / "env"
    monkeypatch.delenv(paths.CONFIG_DIR_ENV)
    assert paths.config_dir() == paths.default_home() / "etc"
    assert paths.config_dir(None, default="etc/lab") == paths.default_home() / "etc" / "lab"


def test_the_lab_tasks_use_the_same_function(tmp_path, monkeypatch):
    monkeypatch.setenv(paths.CONFIG_DIR_ENV, str(tmp_path / "env"))
    assert lab.lab_config_dir(str(tmp_path / "flag")) == tmp_path / "flag"
    assert lab.lab_config_dir(None) == tmp_path / "env"
    monkeypatch.delenv(paths.CONFIG_DIR_ENV)
    assert lab.lab_config_dir(None) == paths.default_home() / "etc" / "lab"


def test_a_set_but_empty_environment_is_refused_unless_a_flag_is_given(monkeypatch):
    # As before the flag was everywhere: the lab tasks alone fall back to etc/lab.
    monkeypatch.setenv(paths.CONFIG_DIR_ENV, "")
    config, problems = validate()
    assert config is None and "set but empty" in problems[0].message
    config, problems = validate(paths.default_home() / "etc" / "lab")
    assert not any("set but empty" in p.message for p in problems)
    assert lab.lab_config_dir(None) == paths.default_home() / "etc" / "lab"


def test_validate_reads_the_flag_over_the_environment(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv(paths.CONFIG_DIR_ENV, str(tmp_path / "nowhere"))
    assert call_task(ns["validate"], config_dir=str(paths.REPO_ROOT / "etc" / "lab")) == (0, "")
    assert "configuration valid" in capsys.readouterr().out
