"""Deploy naming rules: the swarm stack and service names of a stack in an environment,
and which stack and environment names are accepted."""

from __future__ import annotations

import pytest

from phoenix_tasks.docker.naming import (
    MAX_SERVICE_NAME,
    check_env_name,
    check_stack_name,
    max_env_length,
    namespace,
    service_name,
)

ENV_RULE = "(lower-case letters, digits and '-', starting with a letter, at most 24 characters)"
STACK_RULE = "(lower-case letters, digits and '_', starting with a letter, at most 40 characters)"


def test_namespace_is_env_underscore_stack():
    assert namespace("dev1", "thinkheads_ai_app") == "dev1_thinkheads_ai_app"


def test_service_name_is_the_namespace_then_the_service():
    assert service_name("dev1", "thinkheads_ai_app", "api") == "dev1_thinkheads_ai_app_api"
    assert service_name("prod", "qdrant_service", "qdrant") == "prod_qdrant_service_qdrant"


def test_max_env_length_leaves_room_for_the_longest_service_and_two_underscores():
    assert MAX_SERVICE_NAME == 63
    assert max_env_length("thinkheads_ai_app", ["api", "inference"]) == 63 - 17 - 9 - 2 == 35
    assert max_env_length("s", []) == 63 - 1 - 0 - 2
    env = "e" * max_env_length("thinkheads_ai_app", ["api", "inference"])
    assert len(service_name(env, "thinkheads_ai_app", "inference")) == MAX_SERVICE_NAME


def test_max_env_length_below_one_when_no_environment_fits():
    assert max_env_length("s" * 40, ["v" * 22]) == -1


@pytest.mark.parametrize("env", ["dev1", "prod", "a", "feature-42", "a" + "b" * 23])
def test_valid_env_names(env):
    assert check_env_name(env) is None


@pytest.mark.parametrize("env", [
    "",
    "Dev1",
    "dev1; rm -rf /",
    "a" + "b" * 24,  # 25 characters
    "1dev",
    "-dev",
    "dev_1",
    "dev1\n",
    "dev 1",
    "dév1",
])
def test_invalid_env_names_say_why(env):
    assert check_env_name(env) == f"environment name {env!r} is not valid {ENV_RULE}"


def test_env_name_message_exactly():
    assert check_env_name("Dev1") == (
        "environment name 'Dev1' is not valid "
        "(lower-case letters, digits and '-', starting with a letter, at most 24 characters)"
    )


@pytest.mark.parametrize("stack", ["thinkheads_ai_app", "qdrant_service", "s", "s" * 40, "a1_b2"])
def test_valid_stack_names(stack):
    assert check_stack_name(stack) is None


@pytest.mark.parametrize("stack", [
    "",
    "Thinkheads",
    "dev1; rm -rf /",
    "s" * 41,
    "1stack",
    "_stack",
    "my-stack",
    "stack\n",
    "../etc",
])
def test_invalid_stack_names_say_why(stack):
    assert check_stack_name(stack) == f"stack name {stack!r} is not valid {STACK_RULE}"
