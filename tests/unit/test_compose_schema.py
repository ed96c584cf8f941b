"""Compose files against the vendored Compose specification and docker stack deploy's
v3 schemas (config/compose_schema.py); the corpus holds the end-to-end cases
(tests/corpus/compose_*)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from phoenix_tasks.config import compose_schema
from phoenix_tasks.config.checks import _environments
from phoenix_tasks.core.paths import SCHEMA_DIR

REPO = Path(__file__).resolve().parents[2]
STACK_DIRS = sorted(d for root in ("stacks", "tests/data/lab_stacks") for d in (REPO / root).iterdir() if d.is_dir())
F = Path("docker-compose.yml")
ENVS = {"default": {"N": "2"}, "dev1": {"N": "two"}}


def service(**extra) -> dict:
    return {"version": "3.8", "services": {"web": {"image": "x:1", "deploy": {"replicas": 1}, **extra}}}


@pytest.mark.parametrize("stack", STACK_DIRS, ids=lambda d: d.name)
def test_the_projects_own_stacks_pass_both_schemas(stack):
    doc = yaml.safe_load((stack / "docker-compose.yml").read_text())
    manifest = json.loads((stack / "phoenix.json").read_text())
    assert compose_schema.check_compose(stack / "docker-compose.yml", doc, _environments(stack.name, manifest)) == []


def test_the_vendored_schemas_are_there_and_documented():
    readme = (SCHEMA_DIR / "compose" / "README.md").read_text()
    assert "compose-spec/compose-spec" in readme and "docker/cli" in readme
    for v in range(14):
        assert compose_schema.swarm_schema_for(f"3.{v}") is not None
    assert compose_schema.swarm_schema_for(None).endswith("config_schema_v3.13.json")
    assert compose_schema.swarm_schema_for("3").endswith("config_schema_v3.13.json")
    assert compose_schema.swarm_schema_for("2.4") is None


def test_a_volume_with_service_keys_is_refused_by_the_specification():
    doc = {"services": {"web": {"image": "x", "deploy": {}}}, "volumes": {"data": {"image": "x", "deploy": {}}}}
    found = [p.render() for p in compose_schema.check_compose(F, doc, ENVS)]
    assert found == [
        "docker-compose.yml: /volumes/data/deploy: unknown field 'deploy' (known fields: driver, driver_opts, "
        "external, labels, name)",
        "docker-compose.yml: /volumes/data/image: unknown field 'image' (known fields: driver, driver_opts, "
        "external, labels, name)"]


def test_the_swarm_subset_is_checked_after_interpolation_and_casts():
    doc = service()
    doc["services"]["web"]["deploy"]["replicas"] = "${N}"
    [problem] = compose_schema.check_compose(F, doc, ENVS)
    assert problem.render() == ("docker-compose.yml: /services/web/deploy/replicas: 'two' is not a whole number "
                                "in environment 'dev1' (docker stack deploy refuses it)")
    assert compose_schema.check_compose(F, doc, {"default": {"N": "2"}}) == []


def test_a_key_compose_knows_but_stack_deploy_does_not():
    [problem] = compose_schema.check_compose(F, service(pull_policy="always"), ENVS)
    assert problem.pointer == "/services/web/pull_policy"
    assert problem.message == "unknown field 'pull_policy' (docker stack deploy refuses it: compose file format v3.8)"


def test_the_spec_goes_first_and_stops_there():
    found = compose_schema.check_compose(F, service(imagee="y", pull_policy="always"), ENVS)
    assert [(p.pointer, p.message) for p in found] == [("/services/web/imagee", "unknown field 'imagee' (did you mean 'image'?)")]


@pytest.mark.parametrize("value, ok", [("5s", True), ("1m30s", True), ("1.5h", True), ("5 sec", False), ("5", False)])
def test_dockers_duration_format(value, ok):
    doc = service(stop_grace_period=value)
    assert (compose_schema.check_swarm(F, doc, ENVS) == []) is ok


def test_validators_are_built_once():
    compose_schema._validator.cache_clear()
    for _ in range(3):
        compose_schema.check_compose(F, service(), ENVS)
    info = compose_schema._validator.cache_info()
    assert info.misses == 2 and info.hits >= 4  # the specification and v3.8, each built once
