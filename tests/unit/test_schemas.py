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
