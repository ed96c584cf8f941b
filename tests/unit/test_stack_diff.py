"""Desired services from a rendered document, compared with the running ones
(phoenix_tasks.stack.diff): which fields change, what is added or removed, and the
lines `swarm.diff` prints."""

from __future__ import annotations

import dataclasses

import pytest

from phoenix_tasks.core.model import Stack, StackService
from phoenix_tasks.stack.diff import (
    FIELDS,
    Desired,
    ServiceChange,
    compare,
    describe,
    desired_services,
)
from phoenix_tasks.stack.facts import Port, ServiceFacts
from phoenix_tasks.docker.render import LABEL_ENV, LABEL_HASH, LABEL_STACK, Rendered, render

HASH = "0123456789ab"
DIGEST = "sha256:" + "c" * 64


def rendered(services: dict, *, configs: dict | None = None, secrets: dict | None = None,
             env: str = "dev1", stack: str = "webapp", hash_: str = HASH) -> Rendered:
    """A Rendered with a hand-written document (no render involved)."""
    doc: dict = {"version": "3.8", "services": services}
    if configs is not None:
        doc["configs"] = configs
    if secrets is not None:
        doc["secrets"] = secrets
    return Rendered(stack, env, f"{env}_{stack}", doc, "", hash_, (), ())


def facts(want: Desired, **changes) -> ServiceFacts:
    """The running service that matches `want` exactly (as `docker service inspect`
    would report it after a deploy), with `changes` applied."""
    fields = dict(
        id="svc" + want.name[-6:], name=want.name,
        labels={LABEL_HASH: want.hash, LABEL_ENV: "dev1", LABEL_STACK: "webapp",
                "com.docker.stack.namespace": "dev1_webapp"},
        image=want.image, mode=want.mode, replicas=want.replicas,
        constraints=want.constraints, env=want.env, ports=want.ports,
        configs=want.configs, secrets=want.secrets, restart_condition=want.restart_condition,
        created_at=1_700_000_000_000_000_000, updated_at=1_700_000_000_000_000_000,
        update_state=None, update_started_at=None, update_message="",
    )
    fields.update(changes)
    return ServiceFacts(**fields)


# -- desired_services --------------------------------------------------------------------

def test_environment_as_a_mapping_becomes_sorted_key_value_strings():
    r = rendered({"api": {"image": "example/api:1.0", "deploy": {"replicas": 1},
                          "environment": {"B": "2", "A": "1", "FLAG": True, "OFF": False,
                                          "NUM": 5, "EMPTY": "", "BARE": None}}})
    (want,) = desired_services(r).values()
    assert want.env == ("A=1", "B=2", "BARE", "EMPTY=", "FLAG=true", "NUM=5", "OFF=false")


def test_environment_as_a_list_is_sorted():
    r = rendered({"api": {"image": "example/api:1.0", "deploy": {"replicas": 1},
                          "environment": ["Z=last", "A=first", "M=a=b"]}})
    (want,) = desired_services(r).values()
    assert want.env == ("A=first", "M=a=b", "Z=last")


def test_no_environment_is_an_empty_tuple():
    (want,) = desired_services(rendered({"api": {"image": "x:1", "deploy": {}}})).values()
    assert want.env == ()


def test_ports_short_and_long_syntax():
    r = rendered({"api": {"image": "example/api:1.0", "deploy": {"replicas": 1}, "ports": [
        "8080:80",
        "9000:9000/udp",
        "127.0.0.1:5432:5432",
        "3000",
        {"target": 8000, "published": 18000, "protocol": "tcp", "mode": "host"},
        {"target": 53, "protocol": "udp"},
        {"target": 443, "published": 8443},
    ]}})
    (want,) = desired_services(r).values()
    assert want.ports == (
        Port(None, 53, "udp", "ingress"),
        Port(None, 3000, "tcp", "ingress"),
        Port(5432, 5432, "tcp", "ingress"),
        Port(8080, 80, "tcp", "ingress"),
        Port(8443, 443, "tcp", "ingress"),
        Port(9000, 9000, "udp", "ingress"),
        Port(18000, 8000, "tcp", "host"),
    )


def test_ports_short_syntax_range_expands_to_one_port_each():
    r = rendered({"api": {"image": "example/api:1.0", "deploy": {"replicas": 1},
                          "ports": ["8000-8001:9000-9001"]}})
    (want,) = desired_services(r).values()
    assert want.ports == (Port(8000, 9000, "tcp", "ingress"), Port(8001, 9001, "tcp", "ingress"))


def test_configs_and_secrets_resolve_to_the_names_of_their_top_level_entries():
    r = rendered(
        {"api": {"image": "example/api:1.0", "deploy": {"replicas": 1},
                 "configs": ["api_settings", {"source": "shared", "target": "/etc/ca.pem"},
                             {"source": "legacy"}],
                 "secrets": [{"source": "db_password", "target": "db"}, "token"]}},
        configs={"api_settings": {"external": True, "name": "dev1_webapp_api_settings_38589821"},
                 "shared": {"external": True, "name": "company_ca_v3"},
                 "legacy": {"external": True}},
        secrets={"db_password": {"external": True, "name": "dev1_webapp_db_password_25c3ec5a"},
                 "token": {"external": True, "name": "dev1_webapp_token_0badc0de"}},
    )
    (want,) = desired_services(r).values()
    assert want.configs == ("company_ca_v3", "dev1_webapp_api_settings_38589821", "legacy")
    assert want.secrets == ("dev1_webapp_db_password_25c3ec5a", "dev1_webapp_token_0badc0de")


def test_replicas_default_to_one_and_a_global_service_has_none():
    r = rendered({
        "api": {"image": "example/api:1.0", "deploy": {"placement": {"constraints": ["node.role == manager"]}}},
        "nodeploy": {"image": "example/x:1.0"},
        "three": {"image": "example/x:1.0", "deploy": {"mode": "replicated", "replicas": 3}},
        "agent": {"image": "example/agent:1.0", "deploy": {"mode": "global", "replicas": 2}},
    })
    got = desired_services(r)
    assert list(got) == ["dev1_webapp_api", "dev1_webapp_nodeploy", "dev1_webapp_three", "dev1_webapp_agent"]
    assert [(d.mode, d.replicas) for d in got.values()] == [
        ("replicated", 1), ("replicated", 1), ("replicated", 3), ("global", None)]


def test_a_desired_service_in_full():
    r = rendered({"api": {
        "image": "example/api:1.0",
        "environment": {"LOG_LEVEL": "info"},
        "deploy": {"replicas": 2,
                   "placement": {"constraints": ["node.role == manager", "node.labels.gpu == true"]},
                   "restart_policy": {"condition": "on-failure"}},
    }}, env="prod", hash_="fedcba987654")
    assert desired_services(r) == {"prod_webapp_api": Desired(
        name="prod_webapp_api", image="example/api:1.0", mode="replicated", replicas=2,
        constraints=("node.labels.gpu == true", "node.role == manager"),
        env=("LOG_LEVEL=info",), ports=(), configs=(), secrets=(),
        hash="fedcba987654", restart_condition="on-failure")}


def test_restart_condition_defaults_to_any():
    (want,) = desired_services(rendered({"api": {"image": "x:1", "deploy": {"replicas": 1}}})).values()
    assert want.restart_condition == "any"
    assert want.constraints == ()


# -- compare -----------------------------------------------------------------------------

def _one(**svc) -> Desired:
    base = {"image": "example/api:1.0", "environment": {"LOG_LEVEL": "info"},
            "ports": [{"target": 8000, "published": 18000, "mode": "host"}],
            "configs": ["settings"],
            "deploy": {"replicas": 2, "placement": {"constraints": ["node.role == manager"]}}}
    base.update(svc)
    got = desired_services(rendered({"api": base},
                                    configs={"settings": {"external": True, "name": "dev1_webapp_settings_12345678"}}))
    return got["dev1_webapp_api"]


def test_an_identical_running_service_is_no_change():
    want = _one()
    assert compare({want.name: want}, {want.name: facts(want)}) == []


def test_an_image_pinned_to_a_digest_by_the_cli_is_no_change():
    want = _one()
    running = facts(want, image=f"example/api:1.0@{DIGEST}")
    assert compare({want.name: want}, {want.name: running}) == []


def test_a_digest_in_the_compose_file_is_compared_whole():
    want = _one(image=f"example/api:1.0@{DIGEST}")
    other = "sha256:" + "d" * 64
    assert compare({want.name: want}, {want.name: facts(want)}) == []
    (change,) = compare({want.name: want}, {want.name: facts(want, image=f"example/api:1.0@{other}")})
    assert change.fields == {"image": (f"example/api:1.0@{other}", f"example/api:1.0@{DIGEST}")}


def test_an_untagged_image_pinned_as_latest_is_no_change():
    want = _one(image="nginx")
    assert compare({want.name: want}, {want.name: facts(want, image=f"nginx:latest@{DIGEST}")}) == []


def test_a_fully_qualified_image_pinned_in_familiar_form_is_no_change():
    want = _one(image="docker.io/library/nginx:1.25")
    assert compare({want.name: want}, {want.name: facts(want, image=f"nginx:1.25@{DIGEST}")}) == []


def test_another_tag_is_an_image_change_even_with_a_digest_running():
    want = _one()
    (change,) = compare({want.name: want}, {want.name: facts(want, image=f"example/api:0.9@{DIGEST}")})
    assert change.kind == "change"
    assert change.fields == {"image": ("example/api:0.9", "example/api:1.0")}


def test_changed_replicas_is_a_change_of_exactly_that_field():
    want = _one()
    (change,) = compare({want.name: want}, {want.name: facts(want, replicas=3, labels={LABEL_HASH: "aaaaaaaaaaaa"})})
    assert change == ServiceChange(want.name, "change", {"replicas": (3, 2)}, other_settings=False)
    assert change.summary() == "change replicas"


def test_changed_fields_with_the_same_hash_label_are_still_a_change():
    want = _one()
    (change,) = compare({want.name: want}, {want.name: facts(want, replicas=1)})
    assert change.fields == {"replicas": (1, 2)}
    assert change.other_settings is False


def test_changed_env_and_image_are_exactly_those_fields():
    want = _one()
    running = facts(want, image="example/api:0.9", env=("LOG_LEVEL=debug",),
                    labels={LABEL_HASH: "aaaaaaaaaaaa"})
    (change,) = compare({want.name: want}, {want.name: running})
    assert change.kind == "change"
    assert change.fields == {"image": ("example/api:0.9", "example/api:1.0"),
                             "env": (("LOG_LEVEL=debug",), ("LOG_LEVEL=info",))}
    assert list(change.fields) == ["image", "env"]  # in FIELDS order
    assert change.other_settings is False
    assert change.summary() == "change image, env"


@pytest.mark.parametrize("field, before", [
    ("mode", "global"),
    ("constraints", ()),
    ("ports", (Port(18000, 8000, "tcp", "ingress"),)),
    ("configs", ("dev1_webapp_settings_87654321",)),
    ("secrets", ("dev1_webapp_token_11111111",)),
])
def test_each_compared_field_shows_as_itself(field, before):
    want = _one()
    (change,) = compare({want.name: want}, {want.name: facts(want, **{field: before})})
    assert change.fields == {field: (before, getattr(want, field))}


def test_a_hash_only_difference_is_a_change_of_other_settings():
    want = _one()
    (change,) = compare({want.name: want}, {want.name: facts(want, labels={LABEL_HASH: "aaaaaaaaaaaa"})})
    assert change == ServiceChange(want.name, "change", {}, other_settings=True)
    assert change.summary() == "change other settings"


def test_a_running_service_without_a_hash_label_is_a_change_of_other_settings():
    want = _one()
    (change,) = compare({want.name: want}, {want.name: facts(want, labels={})})
    assert change.other_settings is True and change.fields == {}


def test_a_missing_service_is_added_with_every_field():
    want = _one()
    (change,) = compare({want.name: want}, {})
    assert change.kind == "add"
    assert change.name == "dev1_webapp_api"
    assert list(change.fields) == list(FIELDS)
    assert change.fields == {f: (None, getattr(want, f)) for f in FIELDS}
    assert change.summary() == "add"


def test_an_extra_running_service_is_removed():
    want = _one()
    old_b = facts(want, name="dev1_webapp_old_b", image="example/old:1")
    old_a = facts(want, name="dev1_webapp_old_a", image="example/old:2", mode="global", replicas=None)
    changes = compare({want.name: want}, {old_b.name: old_b, want.name: facts(want), old_a.name: old_a})
    assert [(c.name, c.kind) for c in changes] == [("dev1_webapp_old_a", "remove"), ("dev1_webapp_old_b", "remove")]
    assert changes[0].fields == {f: (getattr(old_a, f), None) for f in FIELDS}
    assert changes[0].summary() == "remove"


def test_add_change_and_remove_together_in_order():
    a, b = _one(), _one()
    b = dataclasses.replace(b, name="dev1_webapp_new")
    running = {a.name: facts(a, replicas=5), "dev1_webapp_gone": facts(a, name="dev1_webapp_gone")}
    changes = compare({a.name: a, b.name: b}, running)
    assert [(c.name, c.summary()) for c in changes] == [
        ("dev1_webapp_api", "change replicas"), ("dev1_webapp_new", "add"), ("dev1_webapp_gone", "remove")]


def test_a_rendered_stack_compared_with_what_it_deployed_is_no_change(tmp_path):
    (tmp_path / "settings.yaml").write_text("a: 1\n")
    stack = Stack(
        name="webapp", directory=tmp_path, description="test", placement_constraints=("node.role == manager",),
        services={"api": StackService("api", ("node.role == manager",)),
                  "agent": StackService("agent", ("node.role == manager",))},
        environments={"default": {"TAG": "1.0"}},
        compose={"services": {
            "api": {"image": "example/api:${TAG}", "environment": ["A=1"], "ports": ["8080:80"],
                    "configs": [{"source": "settings", "target": "/etc/settings.yaml"}],
                    "deploy": {"replicas": "${TAG:+2}"}},
            "agent": {"image": "example/agent:1.0", "deploy": {"mode": "global"}},
        }, "configs": {"settings": {"file": "settings.yaml"}}},
    )
    r = render(stack, "dev1")
    desired = desired_services(r)
    assert sorted(desired) == ["dev1_webapp_agent", "dev1_webapp_api"]
    api = desired["dev1_webapp_api"]
    # sha256(b"a: 1\n")[:8], by hand: printf 'a: 1\n' | sha256sum
    assert (api.image, api.replicas, api.configs, api.ports, api.constraints) == (
        "example/api:1.0", 2, ("dev1_webapp_settings_37b128c5",), (Port(8080, 80, "tcp", "ingress"),),
        ("node.role == manager",))
    running = {name: facts(want, labels=dict(r.services[name.removeprefix("dev1_webapp_")]["deploy"]["labels"]),
                           image=want.image + "@" + DIGEST)
               for name, want in desired.items()}
    assert compare(desired, running) == []


# -- describe ------------------------------------------------------------------------

def test_describe_a_change():
    want = _one()
    running = facts(want, replicas=3, constraints=(), labels={LABEL_HASH: "aaaaaaaaaaaa"})
    (change,) = compare({want.name: want}, {want.name: running})
    assert describe(change) == [
        "  ~ replicas: 3 -> 2",
        "  ~ constraints: [] -> [node.role == manager]",
    ]


def test_describe_other_settings():
    assert describe(ServiceChange("dev1_webapp_api", "change", {}, other_settings=True)) == [
        "  ~ other settings of this service (its deployed hash differs)"]


def test_describe_an_add():
    want = _one()
    (change,) = compare({want.name: want}, {})
    assert describe(change) == [
        "  + image: example/api:1.0",
        "  + mode: replicated",
        "  + replicas: 2",
        "  + constraints: [node.role == manager]",
        "  + env: [LOG_LEVEL=info]",
        "  + ports: [18000:8000/tcp (host)]",
        "  + configs: [dev1_webapp_settings_12345678]",
        "  + secrets: []",
    ]


def test_describe_a_remove():
    want = _one()
    gone = facts(want, name="dev1_webapp_agent", image="example/agent:1", mode="global", replicas=None,
                 constraints=(), env=("A=1", "B=2"), ports=(Port(None, 9001, "tcp", "ingress"),),
                 configs=(), secrets=())
    (change,) = compare({}, {gone.name: gone})
    assert describe(change) == [
        "  - image: example/agent:1",
        "  - mode: global",
        "  - replicas: -",
        "  - constraints: []",
        "  - env: [A=1, B=2]",
        "  - ports: [9001/tcp (ingress)]",
        "  - configs: []",
        "  - secrets: []",
    ]


def test_describe_nothing_changed_is_empty():
    assert describe(ServiceChange("x", "change")) == []
