"""`inv validate` end to end: clean configs pass with one summary line, warnings do not
fail, the output is `FILE: /pointer: message`, and PHOENIX_CONFIG_DIR / PHOENIX_STACKS_DIR
are honoured (in-process and by the real task)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from phoenix_tasks.core import paths
from phoenix_tasks.config import ConfigInvalid, Problem, load_config, validate
from test_config_corpus import REPO, apply_patch, base_tree, run_validate

VM_FILE = "etc/phoenix_vm_configs.json"
SUMMARY = re.compile(r"^configuration valid: \d+ VMs \(\d+ in the swarm\), \d+ stacks, from \S+ and \S+(; \d+ warnings?)?$")


def _set(root: Path, file: str, pointer: str, value) -> None:
    apply_patch(root, root, {"file": file, "op": "set", "pointer": pointer, "value": value})


@pytest.mark.parametrize("base, summary", [
    ("etc", "configuration valid: 3 VMs (2 in the swarm), 3 stacks, from etc and stacks"),
    ("etc/lab", "configuration valid: 4 VMs (3 in the swarm), 3 stacks, from etc and stacks"),
])
def test_shipped_configs_validate_clean(tmp_path, base, summary):
    root = base_tree(tmp_path / "tree", base)
    run = run_validate(root)
    assert (run.returncode, run.stderr) == (0, ""), run.stderr
    assert run.stdout.splitlines() == [summary]
    assert run.net_attempts == []


@pytest.mark.parametrize("config_dir", ["etc", "etc/lab"])
def test_repo_config_dirs_have_no_problem_at_all(config_dir):
    config, problems = validate(REPO / config_dir, REPO / "stacks")
    assert problems == []
    assert config is not None


def test_default_dirs_are_the_checkout(monkeypatch):
    monkeypatch.delenv(paths.CONFIG_DIR_ENV, raising=False)
    monkeypatch.delenv(paths.STACKS_DIR_ENV, raising=False)
    assert paths.config_dir() == REPO / "etc"
    assert paths.stacks_dir() == REPO / "stacks"


def test_env_vars_choose_the_dirs(monkeypatch, tmp_path):
    root = base_tree(tmp_path / "tree", "etc/lab")
    monkeypatch.setenv(paths.CONFIG_DIR_ENV, str(root / "etc"))
    monkeypatch.setenv(paths.STACKS_DIR_ENV, str(root / "stacks"))
    config = load_config()
    assert config.config_dir == root / "etc"
    assert config.stacks_dir == root / "stacks"
    assert config.hypervisor.provider == "lab"
    assert config.stacks["qdrant_service"].directory == root / "stacks" / "qdrant_service"


def test_explicit_dirs_win_over_env_vars(monkeypatch, tmp_path):
    monkeypatch.setenv(paths.CONFIG_DIR_ENV, str(tmp_path / "nowhere"))
    monkeypatch.setenv(paths.STACKS_DIR_ENV, str(tmp_path / "nowhere"))
    config = load_config(REPO / "etc", REPO / "stacks")
    assert config.hypervisor.provider == "proxmox"


def test_env_vars_point_the_real_task_at_a_broken_copy(tmp_path):
    """The task reads the env vars' dirs, not the checkout's (which is valid)."""
    root = base_tree(tmp_path / "tree")
    _set(root, VM_FILE, "/vms/2/vmid", 1001)
    run = run_validate(root)
    assert run.returncode == 1
    assert f"{VM_FILE}: /vms/2/vmid: duplicate vmid 1001: already used by /vms/1" in run.lines


def test_output_lines_are_file_pointer_message_exactly(tmp_path):
    root = base_tree(tmp_path / "tree")
    _set(root, VM_FILE, "/vms/2/name", "portainer")
    _set(root, "etc/phoenix_hypervisor_config.json", "/network/gateway", "10.0.1.1")
    run = run_validate(root)
    assert run.returncode == 1
    assert run.stdout == ""
    assert run.lines == [
        "etc/phoenix_hypervisor_config.json: /network/gateway: gateway 10.0.1.1 is outside 10.0.0.0/24",
        "etc/phoenix_vm_configs.json: /vms/2/name: duplicate name 'portainer': already used by /vms/1",
        "2 errors; nothing else was checked against a VM",
    ]


def test_even_number_of_managers_is_a_warning_only(tmp_path):
    root = base_tree(tmp_path / "tree")
    _set(root, VM_FILE, "/vms/2/swarm_role", "manager")
    run = run_validate(root)
    assert run.returncode == 0, run.stderr
    assert run.lines == [
        f"{VM_FILE}: /vms: warning: 2 managers: an even number adds no fault tolerance over 1 (Raft needs a majority)"
    ]
    [summary] = run.stdout.splitlines()
    assert SUMMARY.match(summary) and summary.endswith("; 1 warning")
    assert run.net_attempts == []


def test_warnings_are_shown_with_errors_and_not_counted_as_errors(tmp_path):
    root = base_tree(tmp_path / "tree")
    _set(root, VM_FILE, "/vms/2/swarm_role", "manager")
    _set(root, VM_FILE, "/vms/1/cores", 0)
    run = run_validate(root)
    assert run.returncode == 1
    assert f"{VM_FILE}: /vms/1/cores: 0 is less than the minimum of 1" in run.lines
    assert "1 error; nothing else was checked against a VM" in run.lines


def test_problem_render():
    here = Path.cwd()
    assert Problem(here / "etc" / "x.json", "/vms/1/name", "bad").render() == "etc/x.json: /vms/1/name: bad"
    assert Problem(here / "etc" / "x.json", "", "bad").render() == "etc/x.json: /: bad"
    assert Problem(Path("/elsewhere/x.json"), "/a~1b", "odd", "warning").render() == "/elsewhere/x.json: /a~1b: warning: odd"


def test_load_config_raises_with_every_problem(tmp_path):
    root = base_tree(tmp_path / "tree")
    _set(root, VM_FILE, "/vms/2/vmid", 1001)
    _set(root, VM_FILE, "/vms/2/name", "portainer")
    with pytest.raises(ConfigInvalid) as info:
        load_config(root / "etc", root / "stacks")
    assert [(p.pointer, p.severity) for p in info.value.problems] == [("/vms/2/name", "error"), ("/vms/2/vmid", "error")]
    assert str(info.value) == "configuration is invalid: 2 errors"


def test_variable_in_a_compose_comment_needs_no_value(tmp_path):
    root = base_tree(tmp_path / "tree")
    compose = root / "stacks" / "qdrant_service" / "docker-compose.yml"
    compose.write_text("# set $QDRANT_SECRET_IN_A_COMMENT and ${ALSO_A_COMMENT} before deploying\n" + compose.read_text())
    config, problems = validate(root / "etc", root / "stacks")
    assert problems == []


def test_duplicate_keys_anywhere_are_found(tmp_path):
    root = base_tree(tmp_path / "tree")
    f = root / "stacks" / "qdrant_service" / "phoenix.json"
    f.write_text(f.read_text().replace('"QDRANT_LOG_LEVEL": "WARN",', '"QDRANT_LOG_LEVEL": "WARN", "QDRANT_LOG_LEVEL": "DEBUG",'))
    _, problems = validate(root / "etc", root / "stacks")
    assert [(p.pointer, p.message) for p in problems] == [(
        "/environments/prod/variables/QDRANT_LOG_LEVEL",
        "key 'QDRANT_LOG_LEVEL' appears more than once in this object (JSON keeps only the last value)",
    )]


def test_schemas_name_themselves_in_every_config_file():
    for f in [*REPO.glob("etc/*.json"), *REPO.glob("etc/lab/*.json"), *REPO.glob("stacks/*/phoenix.json")]:
        ref = json.loads(f.read_text())["$schema"]
        assert (f.parent / ref).resolve().is_file(), f


@pytest.mark.parametrize("name", ["PHOENIX_CONFIG_DIR", "PHOENIX_STACKS_DIR"])
def test_a_config_variable_set_but_empty_is_an_error_not_the_default(monkeypatch, name):
    monkeypatch.setenv(name, "")
    config, problems = validate()
    assert config is None
    (problem,) = problems
    assert problem.render() == f"{name}: /: the environment variable {name} is set but empty; " \
                               "unset it to use the default, or name a directory"
