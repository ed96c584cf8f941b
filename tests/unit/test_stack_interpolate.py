"""Compose variable interpolation and the type casts after it
(phoenix_tasks.docker.interpolate): every operator form, every error, with paths."""

from __future__ import annotations

import pytest

from phoenix_tasks.docker.interpolate import (
    InterpolationError,
    cast_types,
    escape_dollars,
    interpolate,
    interpolate_text,
)

VARS = {"SET": "value", "EMPTY": "", "NAME": "web", "PORT": "8080"}


# -- interpolate_text: the operator forms ------------------------------------------------

@pytest.mark.parametrize("text, expected", [
    # plain, braced and unbraced
    ("${SET}", "value"),
    ("$SET", "value"),
    ("${EMPTY}", ""),
    ("$EMPTY", ""),
    ("pre-${NAME}-post", "pre-web-post"),
    ("pre-$NAME-post", "pre-web-post"),
    ("$NAME.example.org", "web.example.org"),
    ("${NAME}${PORT}", "web8080"),
    ("$NAME:$PORT", "web:8080"),
    ("no variables at all", "no variables at all"),
    ("", ""),
    # ${VAR:-x}: x when unset or empty
    ("${UNSET:-x}", "x"),
    ("${EMPTY:-x}", "x"),
    ("${SET:-x}", "value"),
    ("${UNSET:-}", ""),
    ("${UNSET:-a b:c/d}", "a b:c/d"),
    # ${VAR-x}: x when unset only; an empty value is kept
    ("${UNSET-x}", "x"),
    ("${EMPTY-x}", ""),
    ("${SET-x}", "value"),
    # ${VAR:+x}: x when set and non-empty, else empty
    ("${SET:+x}", "x"),
    ("${EMPTY:+x}", ""),
    ("${UNSET:+x}", ""),
    # ${VAR+x}: x when set (even empty), else empty
    ("${SET+x}", "x"),
    ("${EMPTY+x}", "x"),
    ("${UNSET+x}", ""),
    # ${VAR:?msg} / ${VAR?msg} when the value is there
    ("${SET:?must be set}", "value"),
    ("${SET?must be set}", "value"),
    ("${EMPTY?must be set}", ""),
    # $$ is a literal $
    ("$$", "$"),
    ("$$$$", "$$"),
    ("$${SET}", "${SET}"),
    ("$$SET", "$SET"),
    ("$$$SET", "$value"),
    ("costs $$5", "costs $5"),
    ("${SET}$$", "value$"),
])
def test_interpolate_text_forms(text, expected):
    assert interpolate_text(text, VARS) == expected


def test_a_value_is_not_interpolated_again():
    assert interpolate_text("${A}", {"A": "$B", "B": "no"}) == "$B"
    # A default is itself interpolated, as Compose does: `$$` in it is a literal `$`.
    assert interpolate_text("${UNSET:-$$x}", VARS) == "$x"


@pytest.mark.parametrize("text, variables, expected", [
    ("${A:-${B}}", {"B": "b"}, "b"),
    ("${A:-${B}}", {"A": "a"}, "a"),  # B is not needed when A is set
    ("${A:-$B}", {"B": "b"}, "b"),
    ("${A:-${B:-${C:-deep}}}", {}, "deep"),
    ("x${A:-${B}-y}z", {"B": "b"}, "xb-yz"),
    ("${A:+${B}!}", {"A": "1", "B": "b"}, "b!"),
    ("${A-}", {}, ""),
    ("${A:-{}}", {}, "{}"),  # a lone brace pair in a default is text
])
def test_nested_defaults_as_compose_does(text, variables, expected):
    """Issue 21: `${A:-${B}}` rendered the literal `${B}`."""
    assert interpolate_text(text, variables) == expected


def test_a_nested_variable_without_value_is_named():
    with pytest.raises(InterpolationError) as info:
        interpolate_text("${A:-${B}}", {})
    assert info.value.variable == "B"
    with pytest.raises(InterpolationError) as info:
        interpolate_text("${A:?needs ${B}}", {"B": "b"})
    assert str(info.value) == "${A}: needs b"


@pytest.mark.parametrize("text", ["${A:-${B}", "${A:-${B:-${C}}", "${A!x}", "${" + "A:-${" * 12 + "}" * 13])
def test_unclosed_or_too_deep_nesting_is_refused(text):
    with pytest.raises(InterpolationError):
        interpolate_text(text, {})


@pytest.mark.parametrize("text, name, message", [
    ("${UNSET}", "UNSET", "no value for ${UNSET}"),
    ("$UNSET", "UNSET", "no value for ${UNSET}"),
    ("x-${UNSET}-y", "UNSET", "no value for ${UNSET}"),
    ("${UNSET?must be set}", "UNSET", "${UNSET}: must be set"),
    ("${UNSET:?must be set}", "UNSET", "${UNSET}: must be set"),
    ("${EMPTY:?must not be empty}", "EMPTY", "${EMPTY}: must not be empty"),
    ("${UNSET?}", "UNSET", "${UNSET}: required"),
    ("${UNSET:?}", "UNSET", "${UNSET}: required"),
])
def test_missing_values_raise_naming_the_variable(text, name, message):
    with pytest.raises(InterpolationError) as info:
        interpolate_text(text, VARS)
    assert str(info.value) == message
    assert info.value.variable == name


@pytest.mark.parametrize("text", [
    "$ x", "${", "${}", "$", "trailing $", "${SET", "${1X}", "$1", "${SET:x}", "${SET!}",
    "${-x}", "${ SET }", "50$ off",
])
def test_an_invalid_reference_raises(text):
    with pytest.raises(InterpolationError) as info:
        interpolate_text(text, VARS)
    assert "invalid variable reference" in str(info.value)
    assert repr(text) in str(info.value)
    assert "$$" in str(info.value)  # says how to write a literal $
    assert info.value.variable is None


def test_interpolation_error_is_a_value_error():
    assert issubclass(InterpolationError, ValueError)


# -- interpolate: a whole document, every error with its path -----------------------------

def test_interpolate_walks_values_not_keys_and_keeps_non_strings():
    doc = {
        "services": {
            "api": {
                "image": "example/${NAME}:1",
                "environment": {"${NAME}": "${SET}", "PORT": "${PORT}"},
                "command": ["run", "--name", "$NAME", 3, True, None],
                "deploy": {"replicas": 2},
            }
        }
    }
    out, errors = interpolate(doc, VARS)
    assert errors == []
    assert out == {
        "services": {
            "api": {
                "image": "example/web:1",
                "environment": {"${NAME}": "value", "PORT": "8080"},
                "command": ["run", "--name", "web", 3, True, None],
                "deploy": {"replicas": 2},
            }
        }
    }
    # A copy: the input is untouched.
    assert doc["services"]["api"]["image"] == "example/${NAME}:1"


def test_interpolate_collects_every_error_with_its_path():
    doc = {
        "services": {
            "api": {
                "image": "example/api:${TAG}",
                "environment": ["A=${A}", "B=${SET}", "C=${C?set C}"],
                "labels": {"x": "$ broken"},
            },
            "worker": {"command": ["${UNSET}", "ok"]},
        }
    }
    out, errors = interpolate(doc, VARS)
    got = [(path, str(exc), exc.variable) for path, exc in errors]
    assert got == [
        (("services", "api", "image"), "no value for ${TAG}", "TAG"),
        (("services", "api", "environment", 0), "no value for ${A}", "A"),
        (("services", "api", "environment", 2), "${C}: set C", "C"),
        (("services", "api", "labels", "x"), "invalid variable reference in '$ broken' (a literal $ is written $$)", None),
        (("services", "worker", "command", 0), "no value for ${UNSET}", "UNSET"),
    ]
    # The values that failed are left as written; the others are interpolated.
    assert out["services"]["api"]["image"] == "example/api:${TAG}"
    assert out["services"]["api"]["environment"] == ["A=${A}", "B=value", "C=${C?set C}"]
    assert out["services"]["worker"]["command"] == ["${UNSET}", "ok"]


def test_interpolate_prefixes_the_given_path():
    _, errors = interpolate({"image": "${X}"}, {}, path=("services", "api"))
    assert [p for p, _ in errors] == [("services", "api", "image")]


def test_interpolate_a_bare_string_and_scalars():
    assert interpolate("${SET}", VARS) == ("value", [])
    assert interpolate(5, VARS) == (5, [])
    assert interpolate(None, VARS) == (None, [])


# -- cast_types ----------------------------------------------------------------------

def test_cast_types_ints_floats_and_bools_at_their_paths():
    doc = {
        "services": {
            "api": {
                "deploy": {
                    "replicas": "3",
                    "update_config": {"parallelism": "2", "max_failure_ratio": "0.5"},
                    "rollback_config": {"parallelism": "-1", "max_failure_ratio": "1e-1"},
                    "restart_policy": {"max_attempts": "+5"},
                },
                "ports": [{"target": "80", "published": "8080"}, "8081:81"],
                "configs": [{"source": "c", "mode": "0440"}],
                "secrets": [{"source": "s", "mode": "256"}],
                "healthcheck": {"retries": "4", "disable": "no"},
                "ulimits": {"nproc": "65535", "nofile": {"soft": "1024", "hard": "2048"}},
                "privileged": "false",
                "read_only": "TRUE",
                "stdin_open": "On",
                "tty": "y",
                "volumes": [{"type": "volume", "read_only": "yes", "volume": {"nocopy": "n"}}],
                "environment": {"REPLICAS": "3", "FLAG": "true"},
            }
        },
        "networks": {"backend": {"external": "off", "internal": "yes", "attachable": "true"}},
        "volumes": {"data": {"external": "false"}},
        "secrets": {"s": {"external": "true"}},
        "configs": {"c": {"external": "no"}},
    }
    out, errors = cast_types(doc)
    assert errors == []
    api = out["services"]["api"]
    assert api["deploy"] == {
        "replicas": 3,
        "update_config": {"parallelism": 2, "max_failure_ratio": 0.5},
        "rollback_config": {"parallelism": -1, "max_failure_ratio": 0.1},
        "restart_policy": {"max_attempts": 5},
    }
    assert api["ports"] == [{"target": 80, "published": 8080}, "8081:81"]
    assert api["configs"] == [{"source": "c", "mode": 440}]
    assert api["secrets"] == [{"source": "s", "mode": 256}]
    assert api["healthcheck"] == {"retries": 4, "disable": False}
    assert api["ulimits"] == {"nproc": 65535, "nofile": {"soft": 1024, "hard": 2048}}
    assert (api["privileged"], api["read_only"], api["stdin_open"], api["tty"]) == (False, True, True, True)
    assert api["volumes"] == [{"type": "volume", "read_only": True, "volume": {"nocopy": False}}]
    assert api["environment"] == {"REPLICAS": "3", "FLAG": "true"}  # not a typed path
    assert out["networks"] == {"backend": {"external": False, "internal": True, "attachable": True}}
    assert out["volumes"] == {"data": {"external": False}}
    assert out["secrets"] == {"s": {"external": True}}
    assert out["configs"] == {"c": {"external": False}}
    for kind in (int, float, bool):
        assert all(type(v) is not str for v in _typed_leaves(out, kind))


def _typed_leaves(node, kind):
    if isinstance(node, dict):
        for v in node.values():
            yield from _typed_leaves(v, kind)
    elif isinstance(node, list):
        for v in node:
            yield from _typed_leaves(v, kind)
    elif isinstance(node, kind):
        yield node


def test_cast_types_leaves_typed_values_and_other_paths_alone():
    doc = {"services": {"api": {"deploy": {"replicas": 2, "labels": {"replicas": "x"}},
                                "command": ["3"], "image": "true"}},
           "x-replicas": {"deploy": {"replicas": "three"}}}
    out, errors = cast_types(doc)
    assert errors == []
    assert out == doc


def test_cast_types_errors_name_the_path_and_the_value():
    doc = {
        "services": {
            "api": {
                "deploy": {"replicas": "two", "update_config": {"max_failure_ratio": "half"}},
                "ports": [{"target": "80", "published": "80.5"}],
                "read_only": "maybe",
            }
        },
        "networks": {"backend": {"external": "1"}},
    }
    out, errors = cast_types(doc)
    assert errors == [
        (("services", "api", "deploy", "replicas"), "'two' is not a whole number"),
        (("services", "api", "deploy", "update_config", "max_failure_ratio"), "'half' is not a number"),
        (("services", "api", "ports", 0, "published"), "'80.5' is not a whole number"),
        (("services", "api", "read_only"), "'maybe' is not true or false"),
        (("networks", "backend", "external"), "'1' is not true or false"),
    ]
    # The failed values are left as they were; the good ones are cast.
    assert out["services"]["api"]["deploy"]["replicas"] == "two"
    assert out["services"]["api"]["ports"][0] == {"target": 80, "published": "80.5"}


@pytest.mark.parametrize("value", ["", " ", "1.0", "0x10", "1_000", "3 replicas"])
def test_cast_types_int_refuses_what_is_not_a_whole_number(value):
    _, errors = cast_types({"services": {"a": {"deploy": {"replicas": value}}}})
    assert errors == [(("services", "a", "deploy", "replicas"), f"{value!r} is not a whole number")]


# -- escape_dollars ----------------------------------------------------------------------

def test_escape_dollars_doubles_every_dollar_of_string_values():
    doc = {
        "a": "$", "b": "$$", "c": "no dollar", "d": "${X} and $Y",
        "list": ["$1", 2, None, True, {"n": "x$"}],
        "$key": "keys are left as they are",
        "num": 1.5,
    }
    assert escape_dollars(doc) == {
        "a": "$$", "b": "$$$$", "c": "no dollar", "d": "$${X} and $$Y",
        "list": ["$$1", 2, None, True, {"n": "x$$"}],
        "$key": "keys are left as they are",
        "num": 1.5,
    }
    assert doc["a"] == "$"  # a copy


def test_escape_dollars_round_trips_through_interpolation():
    values = ["$", "$$", "a$b", "${NOT_A_VAR}", "$HOME", "50$ off", "x$$y$"]
    for value in values:
        assert interpolate_text(escape_dollars(value), {}) == value
