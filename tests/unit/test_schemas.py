"""The schemas themselves: valid 2020-12, and every property explained with examples."""

import json
from pathlib import Path

import pytest
from jsonschema import Draft202012Validator

SCHEMAS = sorted((Path(__file__).resolve().parents[2] / "schemas").glob("*.schema.json"))


def properties(schema):
    """(path, property schema) for every entry of every `properties`, outside if/then."""
    def walk(node, path):
        if isinstance(node, dict):
            for name, sub in node.get("properties", {}).items():
                yield f"{path}/properties/{name}", sub
            for key, sub in node.items():
                if key not in ("if", "then", "else"):
                    yield from walk(sub, f"{path}/{key}")
        elif isinstance(node, list):
            for i, sub in enumerate(node):
                yield from walk(sub, f"{path}/{i}")
    yield from walk(schema, "")


def resolve(schema, node):
    while "$ref" in node and ("description" not in node or "examples" not in node):
        target = schema["$defs"][node["$ref"].rsplit("/", 1)[1]]
        node = {**target, **{k: v for k, v in node.items() if k != "$ref"}}
    return node


@pytest.mark.parametrize("path", SCHEMAS, ids=lambda p: p.name)
def test_schema_is_valid_and_documented(path):
    schema = json.loads(path.read_text())
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    Draft202012Validator.check_schema(schema)
    assert schema.get("additionalProperties") is False
    found = list(properties(schema))
    assert len(found) > 5
    missing = [p for p, sub in found if not {"description", "examples"} <= set(resolve(schema, sub))]
    assert missing == [], f"properties without description or examples: {missing}"
    # Each example validates against its own property's schema.
    for p, sub in found:
        full = resolve(schema, sub)
        validator = Draft202012Validator({**full, "$defs": schema.get("$defs", {})})
        for example in full.get("examples", []):
            assert not list(validator.iter_errors(example)), (p, example)


# -- patterns mean what they say: a full match, no trailing newline ---------------
#
# jsonschema applies `pattern` with `re.search`, where `$` also matches before a final
# "\n"; Phoenix's validator (documents._validator) applies it with `re.fullmatch`.

import re
import shutil

from phoenix_tasks.config import validate
from phoenix_tasks.config import documents
from test_config_corpus import base_tree

# Where a pattern's own level has no `examples`: values it must accept.
KNOWN_GOOD = {
    ("phoenix_hypervisor_config.schema.json", "/properties/portainer/properties/images/propertyNames"): ["portainer"],
    ("phoenix_hypervisor_config.schema.json", "/properties/portainer/properties/images/additionalProperties"): ["portainer/portainer-ce:2.21.4"],
    ("phoenix_hypervisor_config.schema.json", "/$defs/ipv4"): ["10.0.0.1"],
    ("phoenix_hypervisor_config.schema.json", "/$defs/ipv4_cidr"): ["10.0.0.101/24"],
    ("phoenix_hypervisor_config.schema.json", "/$defs/env_name"): ["PHOENIX_PROXMOX_API_TOKEN"],
    ("phoenix_hypervisor_config.schema.json", "/$defs/env_name_lower"): ["prod"],
    ("phoenix_stack.schema.json", "/properties/environments/propertyNames"): ["default", "dev1"],
    ("phoenix_stack.schema.json", "/properties/environments/additionalProperties/properties/variables/propertyNames"): ["LOG_LEVEL"],
    ("phoenix_stack.schema.json", "/$defs/service_name"): ["api"],
    ("phoenix_vm_configs.schema.json", "/$defs/ipv4"): ["10.0.0.1"],
    ("phoenix_vm_configs.schema.json", "/$defs/ipv4_cidr"): ["10.0.0.101/24"],
    ("phoenix_vm_configs.schema.json", "/$defs/vm/properties/docker_stacks/items"): ["thinkheads_ai_app"],
}

# Patterns whose character class itself admits a newline, so no match mode can refuse
# it (none today: lab.state_dir's class excludes control characters).
NEWLINE_ADMITTED: set[tuple[str, str]] = set()


def patterns(node, path=""):
    """(pointer, subschema) for every subschema with a `pattern`, however deep
    (properties, items, propertyNames, additionalProperties, $defs, if/then)."""
    if isinstance(node, dict):
        if isinstance(node.get("pattern"), str):
            yield path, node
        for key, sub in node.items():
            if key not in ("examples", "default", "const", "enum"):  # data, not schemas
                yield from patterns(sub, f"{path}/{key}")
    elif isinstance(node, list):
        for i, sub in enumerate(node):
            yield from patterns(sub, f"{path}/{i}")


ALL_PATTERNS = [
    (path.name, where, node)
    for path in SCHEMAS
    for where, node in patterns(json.loads(path.read_text()))
]


def test_the_walk_finds_the_patterns_of_every_schema():
    names = {name for name, _, _ in ALL_PATTERNS}
    assert names == {p.name for p in SCHEMAS}
    found = {(name, where) for name, where, _ in ALL_PATTERNS}
    assert len(found) >= 20
    # propertyNames and $defs are walked too
    assert ("phoenix_stack.schema.json", "/properties/environments/propertyNames") in found
    assert ("phoenix_vm_configs.schema.json", "/$defs/ipv4_cidr") in found
    # every listed value and exception names a pattern that exists
    assert set(KNOWN_GOOD) | NEWLINE_ADMITTED <= found


def test_fullmatch_refuses_the_final_newline_that_search_lets_through():
    pattern = "^[a-z0-9-]+$"
    assert re.search(pattern, "portainer\n")  # `$` matches before the final "\n"
    assert re.fullmatch(pattern, "portainer\n") is None  # but nothing consumes it
    assert re.fullmatch(pattern, "portainer")
    schema = {"type": "string", "pattern": pattern}
    assert list(Draft202012Validator(schema).iter_errors("portainer\n")) == []  # jsonschema's own
    phoenix = documents._validator("phoenix_vm_configs.schema.json").evolve(schema=schema)
    (error,) = phoenix.iter_errors("portainer\n")
    assert error.validator == "pattern"
    assert error.message == "'portainer\\n' does not match '^[a-z0-9-]+$'"
    assert list(phoenix.iter_errors("portainer")) == []


@pytest.mark.parametrize("name, where, node", ALL_PATTERNS, ids=lambda v: v if isinstance(v, str) else "")
def test_every_pattern_is_anchored(name, where, node):
    """So that a full match is exactly what ECMA-262 editors do with the same schema."""
    assert node["pattern"].startswith("^") and node["pattern"].endswith("$"), (name, where)


@pytest.mark.parametrize("name, where, node", ALL_PATTERNS, ids=lambda v: v if isinstance(v, str) else "")
def test_every_pattern_refuses_a_good_value_plus_newline(name, where, node):
    values = [e for e in node.get("examples", []) if isinstance(e, str)] or KNOWN_GOOD.get((name, where), [])
    assert values, f"{name} {where}: no string examples; list a known-good value in KNOWN_GOOD"
    validator = documents._validator(name).evolve(schema=node)
    for value in values:
        assert list(validator.iter_errors(value)) == [], (name, where, value)
        if (name, where) in NEWLINE_ADMITTED:
            assert list(validator.iter_errors(value + "\n")) == [], \
                f"{name} {where} now refuses a newline: drop it from NEWLINE_ADMITTED"
            continue
        for bad in (value + "\n", value + "\n" + value, "\n" + value):
            errors = list(validator.iter_errors(bad))
            assert [e.validator for e in errors] == ["pattern"], (name, where, bad)


# Each case: base config, a change to a tmp copy, and the one problem validate() reports.
def _json(file, change):
    def apply(root):
        path = root / file
        doc = json.loads(path.read_text())
        change(doc)
        path.write_text(json.dumps(doc, indent=2) + "\n")
    return apply


def _stack_dir_named(name):
    def apply(root):
        shutil.copytree(root / "stacks" / "qdrant_service", root / "stacks" / name)
    return apply


def _compose_service_named(name):
    def apply(root):
        path = root / "stacks" / "qdrant_service" / "docker-compose.yml"
        path.write_text(path.read_text().replace("\n  qdrant:\n", f"\n  {json.dumps(name)}:\n", 1))
    return apply


VMS, HV, QDRANT = "etc/phoenix_vm_configs.json", "etc/phoenix_hypervisor_config.json", "stacks/qdrant_service/phoenix.json"

# The safe reader refuses a control character in any JSON value or key first (one
# problem, at the value, or at the parent object for a key, the key quoted escaped so
# the FILE: /pointer: message line stays one line); a stack directory's name is
# checked by its pattern.  The full-match patterns above are the second line.
CONTROL = "control character '\\n' in the "
NEWLINE_CASES = {
    "vm name": ("etc", _json(VMS, lambda d: d["vms"][1].update(name="portainer\n")),
                VMS, "/vms/1/name", CONTROL + "value 'portainer\\n'"),
    "vm ip": ("etc", _json(VMS, lambda d: d["vms"][1]["network_config"].update(ip="10.0.0.101/24\n")),
              VMS, "/vms/1/network_config/ip", CONTROL + "value '10.0.0.101/24\\n'"),
    "node label": ("etc", _json(VMS, lambda d: d["vms"][1].update(node_labels=["zone=core\n"])),
                   VMS, "/vms/1/node_labels/0", CONTROL + "value 'zone=core\\n'"),
    "stack directory": ("etc", _stack_dir_named("app\n"),
                        "stacks/app\n", "", "stack directory name 'app\\n' is not valid ("),
    "environment name": ("etc", _json(QDRANT, lambda d: d["environments"].update({"dev1\n": {"variables": {}}})),
                         QDRANT, "/environments", CONTROL + "key 'dev1\\n'"),
    "placement constraint": ("etc", _json(QDRANT, lambda d: d.update(placement_constraints=["node.role == manager\n"])),
                             QDRANT, "/placement_constraints/0", CONTROL + "value 'node.role == manager\\n'"),
    "compose service name": ("etc", _compose_service_named("qdrant\n"),
                             "stacks/qdrant_service/docker-compose.yml", "/services",
                             CONTROL + "key 'qdrant\\n'"),
    "lab state_dir": ("etc/lab", _json(HV, lambda d: d["lab"].update(state_dir="/var/lib/phoenix-lab\n")),
                      HV, "/lab/state_dir", CONTROL + "value '/var/lib/phoenix-lab\\n'"),
}


@pytest.mark.parametrize("case", NEWLINE_CASES)
def test_a_trailing_newline_is_one_problem_not_a_traceback(tmp_path, case):
    base, change, file, where, message = NEWLINE_CASES[case]
    root = base_tree(tmp_path / "tree", base)
    change(root)
    config, problems = validate(root / "etc", root / "stacks")
    assert config is None
    assert [(p.file, p.pointer, p.severity) for p in problems] == [(root / file, where, "error")], \
        [p.render() for p in problems]
    assert problems[0].message.startswith(message), problems[0].message
