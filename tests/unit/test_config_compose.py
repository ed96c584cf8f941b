"""What validation reads from docker-compose.yml: variables, services, constraints, images."""

from __future__ import annotations

import pytest
import yaml

from phoenix_tasks.config import compose


@pytest.mark.parametrize("text, needed", [
    ("${VAR}", ["VAR"]),
    ("$VAR", ["VAR"]),
    ("x-${A}-${B}-$C", ["A", "B", "C"]),
    ("${VAR:-default}", []),
    ("${VAR-default}", []),
    ("${VAR:+set}", []),
    ("${VAR+set}", []),
    ("${VAR:?must be set}", ["VAR"]),
    ("${VAR?must be set}", ["VAR"]),
    ("$$VAR", []),  # escaped: a literal $VAR for the container
    ("$${VAR}", []),
    ("$$$VAR", ["VAR"]),  # a literal $ then $VAR
    ("${A} ${A} $A", ["A"]),  # once
    ("${PHOENIX_ENV}_${PHOENIX_STACK}", []),  # provided by every deploy
    ("price: 5$", []),
    ("${1BAD}", []),
    ("no variables here", []),
])
def test_variables_needed(text, needed):
    assert compose.variables_needed(text) == needed


def test_variables_in_a_document_come_from_values_only():
    doc = yaml.safe_load(
        "# $IN_A_COMMENT ${ALSO_COMMENT}\n"
        "services:\n"
        "  api:\n"
        "    image: thinkheads/api:${TAG}\n"
        "    environment:\n"
        "      LOG: ${LOG_LEVEL:-info}\n"
        "      PORT: $PORT\n"
        "    command: [\"sh\", \"-c\", \"echo $$HOME ${TAG}\"]\n"
        "    deploy:\n"
        "      replicas: ${REPLICAS}\n"
    )
    assert compose.variables_in(doc) == ["TAG", "PORT", "REPLICAS"]


def test_services_placement_and_images():
    doc = yaml.safe_load(
        "services:\n"
        "  a:\n"
        "    image: x/a:1\n"
        "    deploy: {placement: {constraints: ['node.role == manager', 7, 'node.labels.gpu == true']}}\n"
        "  b:\n"
        "    deploy: {replicas: 1}\n"
        "  c:\n"
        "    image: x/c:2\n"
        "    deploy: {placement: {constraints: null}}\n"
    )
    assert list(compose.services(doc)) == ["a", "b", "c"]
    assert list(compose.placement_constraints(doc["services"]["a"])) == [(0, "node.role == manager"), (2, "node.labels.gpu == true")]
    assert list(compose.placement_constraints(doc["services"]["b"])) == []
    assert list(compose.placement_constraints(doc["services"]["c"])) == []
    assert compose.images(doc) == {"a": "x/a:1", "c": "x/c:2"}


@pytest.mark.parametrize("doc", [None, [], "text", {"services": []}, {"version": "3.8"}])
def test_services_of_a_document_without_services(doc):
    assert compose.services(doc) == {}
