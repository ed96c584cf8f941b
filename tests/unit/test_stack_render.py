"""Rendering a stack for an environment (phoenix_tasks.docker.render), as data cases.

Each case is a directory ``tests/data/render/<case>/`` holding a ``docker-compose.yml``,
a ``phoenix.json`` (the stack manifest), any config/secret files the compose names, and
a ``case.json``:

  description  one line: what the case shows
  stack        the stack name the case is rendered as
  env          the environment rendered
  expect       the expected ``Rendered.document``, written out in full; the value of the
               ``io.phoenix.hash`` label is written "<hash>" and that of
               ``io.phoenix.version`` "<version>": the runner checks them separately
               (12 lower-case hex characters, the same on every service and equal to
               ``Rendered.hash``; the package's ``__version__``)
  error        instead of expect: a substring (or a list of substrings) of the
               RenderError message
  warnings     optional: one substring per expected warning (in order); absent means
               no warning at all
  objects      optional: the configs/secrets Phoenix creates, in order, each
               {"kind", "key", "name"} and optionally "content"; absent means none

The runner builds the typed ``Stack`` straight from the case's files (as the config
loader does: constraints stack-wide + per-service + compose, in that order, without
duplicates; each environment's variables merged over ``default``) and calls ``render``.
"""

from __future__ import annotations

import dataclasses
import json
import re
import shutil
from pathlib import Path

import pytest
import yaml

import phoenix_tasks
from phoenix_tasks.core.model import Stack, StackService
from phoenix_tasks.core.secrets import Secret
from phoenix_tasks.docker.interpolate import escape_dollars
from phoenix_tasks.docker.render import (service_hash, 
    LABEL_ENV,
    LABEL_HASH,
    LABEL_STACK,
    LABEL_VERSION,
    STACK_NAMESPACE_LABEL,
    RenderError,
    render,
)

REPO = Path(__file__).resolve().parents[2]
CASES_DIR = REPO / "tests" / "data" / "render"
CASES = sorted(p.name for p in CASES_DIR.iterdir() if (p / "case.json").is_file())
HASH_RE = re.compile(r"[0-9a-f]{12}")
HASH_PLACEHOLDER = "<hash>"
VERSION_PLACEHOLDER = "<version>"


def stack_from_dir(directory: Path, name: str) -> Stack:
    """The typed Stack of a directory with docker-compose.yml and phoenix.json, built the
    way phoenix_tasks.config.build builds it (independently of the code under test)."""
    compose = yaml.safe_load((directory / "docker-compose.yml").read_text())
    manifest = json.loads((directory / "phoenix.json").read_text())
    wide = tuple(manifest.get("placement_constraints", []))
    services = {}
    for svc_name, svc in (compose.get("services") or {}).items():
        own = tuple(manifest.get("services", {}).get(svc_name, {}).get("placement_constraints", []))
        placement = ((svc or {}).get("deploy") or {}).get("placement") or {}
        from_compose = tuple(c for c in placement.get("constraints") or [] if isinstance(c, str))
        services[svc_name] = StackService(svc_name, tuple(dict.fromkeys(wide + own + from_compose)))
    envs = manifest.get("environments", {})
    default = envs.get("default", {}).get("variables", {})
    return Stack(
        name=name,
        directory=directory,
        description=manifest["description"],
        placement_constraints=wide,
        services=services,
        environments={env: {**default, **spec["variables"]} for env, spec in envs.items()},
        compose=compose,
    )


def load_case(name: str) -> tuple[dict, Stack]:
    case = json.loads((CASES_DIR / name / "case.json").read_text())
    return case, stack_from_dir(CASES_DIR / name, case["stack"])


def write_stack(directory: Path, compose: str, manifest: dict, files: dict[str, str] | None = None) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "docker-compose.yml").write_text(compose)
    (directory / "phoenix.json").write_text(json.dumps({"description": "test stack", **manifest}))
    for rel, text in (files or {}).items():
        (directory / rel).parent.mkdir(parents=True, exist_ok=True)
        (directory / rel).write_text(text)


def check_phoenix_labels(rendered) -> dict:
    """Checks the hash and version labels; returns a copy of the document with them
    replaced by the placeholders the case files use."""
    assert HASH_RE.fullmatch(rendered.hash), rendered.hash
    doc = json.loads(json.dumps(rendered.document))
    for svc_name, svc in doc["services"].items():
        labels = svc["deploy"]["labels"]
        assert labels[LABEL_HASH] == service_hash(rendered.document, svc_name), f"service {svc_name}: hash label"
        assert labels[LABEL_VERSION] == phoenix_tasks.__version__, f"service {svc_name}: version label"
        labels[LABEL_HASH] = HASH_PLACEHOLDER
        labels[LABEL_VERSION] = VERSION_PLACEHOLDER
    return doc


def test_the_corpus_has_the_cases_it_should():
    assert len(CASES) >= 16
    for name in CASES:
        case = json.loads((CASES_DIR / name / "case.json").read_text())
        assert case.get("description"), name
        assert ("expect" in case) != ("error" in case), f"{name}: exactly one of expect/error"
        assert (CASES_DIR / name / "docker-compose.yml").is_file(), name
        assert (CASES_DIR / name / "phoenix.json").is_file(), name


@pytest.mark.parametrize("name", CASES)
def test_render_case(name):
    case, stack = load_case(name)
    if "error" in case:
        with pytest.raises(RenderError) as info:
            render(stack, case["env"])
        wanted = case["error"] if isinstance(case["error"], list) else [case["error"]]
        for part in wanted:
            assert part in str(info.value)
        return

    rendered = render(stack, case["env"])

    assert rendered.stack == case["stack"]
    assert rendered.env == case["env"]
    assert rendered.namespace == f"{case['env']}_{case['stack']}"
    assert check_phoenix_labels(rendered) == case["expect"]
    for svc in rendered.services.values():
        assert svc["deploy"]["labels"][LABEL_ENV] == case["env"]
        assert svc["deploy"]["labels"][LABEL_STACK] == case["stack"]

    warnings = case.get("warnings", [])
    assert len(rendered.warnings) == len(warnings), rendered.warnings
    for got, part in zip(rendered.warnings, warnings):
        assert part in got

    objects = case.get("objects", [])
    assert [(o.kind, o.key, o.name) for o in rendered.objects] == \
        [(o["kind"], o["key"], o["name"]) for o in objects]
    for obj, spec in zip(rendered.objects, objects):
        assert obj.labels == {STACK_NAMESPACE_LABEL: rendered.namespace, LABEL_ENV: case["env"],
                              LABEL_STACK: case["stack"]}
        if obj.kind == "secret":
            assert isinstance(obj.content, Secret)
        if "content" in spec:
            value = obj.content.reveal() if isinstance(obj.content, Secret) else obj.content
            same = value == spec["content"]  # not in the assert: a secret is never printed
            assert same, f"{obj.kind} {obj.key}: content differs from the case's"

    # What goes to docker is the same document with every $ doubled.
    assert yaml.safe_load(rendered.text) == escape_dollars(rendered.document)


# -- the text sent to docker ---------------------------------------------------------

def _strings(node):
    if isinstance(node, str):
        yield node
    elif isinstance(node, dict):
        for v in node.values():
            yield from _strings(v)
    elif isinstance(node, list):
        for v in node:
            yield from _strings(v)


def test_text_doubles_every_dollar_of_the_values():
    case, stack = load_case("unbraced_and_literal_dollar")
    rendered = render(stack, case["env"])
    env = rendered.services["api"]["environment"]
    assert env["PRICE"] == "costs $5" and env["TWO"] == "$$"

    loaded = yaml.safe_load(rendered.text)
    # Every $ of every value is written $$ (so docker's own interpolation gives it back) ...
    assert loaded["services"]["api"]["environment"]["PRICE"] == "costs $$5"
    assert loaded["services"]["api"]["environment"]["TWO"] == "$$$$"
    assert loaded["services"]["api"]["environment"]["MIXED"] == "$$web"
    assert loaded["services"]["api"]["command"] == ["sh", "-c", "echo $$HOME and $${PATH}"]
    for text in _strings(loaded):
        assert all(len(run) % 2 == 0 for run in re.findall(r"\$+", text)), text
    assert sum(s.count("$") for s in _strings(loaded)) == \
        2 * sum(s.count("$") for s in _strings(rendered.document))
    # ... and the YAML is exactly the document with $ doubled in its strings.
    expected = json.loads(json.dumps(rendered.document).replace("$", "$$"))
    assert loaded == expected
    # Undoing the escape as docker does ($$ -> $) gives the document back.
    assert json.loads(json.dumps(loaded).replace("$$", "$")) == rendered.document


def test_text_keeps_types_and_labels():
    case, stack = load_case("type_casts")
    rendered = render(stack, case["env"])
    loaded = yaml.safe_load(rendered.text)
    svc = loaded["services"]["api"]
    assert svc["deploy"]["replicas"] == 3
    assert svc["ports"][0]["published"] == 18000
    assert svc["read_only"] is True
    assert svc["environment"]["API_PORT"] == "18000"  # a string stays a string in YAML
    assert svc["deploy"]["labels"][LABEL_HASH] == service_hash(rendered.document, "api")


# -- the hash ------------------------------------------------------------------------

COMPOSE_WITH_CONFIG = """\
version: "3.8"
services:
  api:
    image: example/api:${TAG}
    environment:
      LOG_LEVEL: ${LOG_LEVEL}
    configs:
      - source: settings
        target: /etc/settings.yaml
    deploy:
      replicas: 1
configs:
  settings:
    file: ./settings.yaml
"""


def _hash_stack(tmp_path: Path, *, log_level="info", settings="a: 1\n", tag="1.0") -> Stack:
    directory = tmp_path / f"s_{log_level}_{tag}_{abs(hash(settings))}"
    write_stack(directory, COMPOSE_WITH_CONFIG,
                {"environments": {"default": {"variables": {"TAG": tag, "LOG_LEVEL": log_level}}}},
                {"settings.yaml": settings})
    return stack_from_dir(directory, "webapp")


def test_the_same_input_renders_to_the_same_hash(tmp_path):
    stack = _hash_stack(tmp_path)
    compose_before = json.dumps(stack.compose, sort_keys=True)
    first, second = render(stack, "dev1"), render(stack, "dev1")
    assert first.hash == second.hash
    assert first.text == second.text
    assert first.document == second.document
    assert json.dumps(stack.compose, sort_keys=True) == compose_before  # not mutated
    # A copy of the stack in another directory renders the same: the path is not hashed.
    other = tmp_path / "elsewhere"
    shutil.copytree(stack.directory, other)
    assert render(stack_from_dir(other, "webapp"), "dev1").hash == first.hash


def test_a_changed_variable_changes_the_hash(tmp_path):
    base = render(_hash_stack(tmp_path), "dev1")
    changed = render(_hash_stack(tmp_path, log_level="debug"), "dev1")
    assert changed.hash != base.hash
    assert changed.services["api"]["deploy"]["labels"][LABEL_HASH] != base.services["api"]["deploy"]["labels"][LABEL_HASH]
    assert render(_hash_stack(tmp_path, tag="1.1"), "dev1").hash != base.hash


def test_a_changed_config_file_changes_the_hash_and_the_config_name(tmp_path):
    base = render(_hash_stack(tmp_path), "dev1")
    changed = render(_hash_stack(tmp_path, settings="a: 2\n"), "dev1")
    assert changed.hash != base.hash
    assert base.objects[0].name != changed.objects[0].name
    assert base.objects[0].name.startswith("dev1_webapp_settings_")


def test_another_environment_has_another_hash(tmp_path):
    stack = _hash_stack(tmp_path)
    assert render(stack, "dev1").hash != render(stack, "dev2").hash


# -- secrets -------------------------------------------------------------------------

def test_a_secret_value_never_appears_in_the_text_or_any_repr():
    case, stack = load_case("secret_from_file")
    value = (CASES_DIR / "secret_from_file" / "secrets" / "db_password.txt").read_text()
    rendered = render(stack, case["env"])
    (obj,) = rendered.objects
    assert obj.kind == "secret"
    shown = {
        "text": rendered.text,
        "repr(rendered)": repr(rendered),
        "str(rendered)": str(rendered),
        "str(obj)": str(obj),
        "repr(obj)": repr(obj),
        "document": json.dumps(rendered.document),
        "f-string": f"{obj.content}",
        "warnings": " ".join(rendered.warnings),
    }
    leaked = [where for where, text in shown.items() if value.strip() in text]
    assert leaked == []
    # It is there for whoever needs it, on purpose only.
    same = obj.content.reveal() == value
    assert same


# -- environment names ---------------------------------------------------------------

@pytest.mark.parametrize("env", ["dev1; rm -rf /", "Dev1", "dev_1", "", "1dev", "-dev", "d" * 25, "dev1\n"])
def test_an_invalid_environment_name_is_refused(env):
    case, stack = load_case("env_merged_over_default")
    with pytest.raises(RenderError, match="is not valid"):
        render(stack, env)


def test_the_longest_valid_environment_name_is_accepted():
    case, stack = load_case("unlisted_env_takes_default")
    env = "e" * 24
    assert render(stack, env).namespace == f"{env}_webapp"


# -- read_file is the only file access ---------------------------------------------------

def test_config_content_comes_through_read_file():
    case, stack = load_case("config_from_file")
    seen = []

    def fake_read(path: Path) -> bytes:
        seen.append(path)
        return b"fake content\n"

    rendered = render(stack, case["env"], read_file=fake_read)
    root = (CASES_DIR / "config_from_file").resolve()
    assert seen == [root / "config" / "api_settings.yaml", root / "nginx.conf"]
    # sha256(b"fake content\n")[:8], by hand: printf 'fake content\n' | sha256sum
    assert [o.content for o in rendered.objects] == ["fake content\n", "fake content\n"]
    assert rendered.document["configs"]["api_settings"]["name"] == "dev1_webapp_api_settings_ba46aa84"


def test_a_config_file_that_is_not_utf8_is_refused():
    case, stack = load_case("config_from_file")
    with pytest.raises(RenderError, match="is not UTF-8 text"):
        render(stack, case["env"], read_file=lambda path: b"\xff\xfe\x00binary")


def test_a_config_without_file_nor_external_is_refused(tmp_path):
    write_stack(tmp_path, """\
services:
  api:
    image: example/api:1.0
    deploy: {replicas: 1}
configs:
  inline:
    content: "hello"
""", {"environments": {"default": {"variables": {}}}})
    with pytest.raises(RenderError, match=r"configs\.inline: only 'file' configs \(or external ones\) can be deployed"):
        render(stack_from_dir(tmp_path, "webapp"), "dev1")


def test_rendered_objects_are_frozen():
    case, stack = load_case("config_from_file")
    obj = render(stack, case["env"]).objects[0]
    with pytest.raises(dataclasses.FrozenInstanceError):
        obj.name = "other"  # type: ignore[misc]


# -- names docker accepts ----------------------------------------------------------------

# swarmkit refuses a config or secret name longer than 64 characters, or not of these
# characters ("invalid name, only 64 [a-zA-Z0-9-_.] characters allowed ...").
DOCKER_OBJECT_NAME = re.compile(r"[a-zA-Z0-9]+(?:[a-zA-Z0-9_.-]*[a-zA-Z0-9])?")


def test_config_names_docker_would_refuse_are_a_render_error(tmp_path):
    write_stack(tmp_path, """\
services:
  inference:
    image: example/inference:1.0
    configs: [inference_model_settings]
    deploy: {replicas: 1}
configs:
  inference_model_settings:
    file: ./settings.yaml
""", {"environments": {"default": {"variables": {}}}}, {"settings.yaml": "model: x\n"})
    stack = stack_from_dir(tmp_path, "thinkheads_ai_app")
    env = "staging-eu-west"  # a valid environment name; service names stay within 63
    assert len(f"{env}_thinkheads_ai_app_inference") <= 63
    try:
        rendered = render(stack, env)
    except RenderError as exc:  # refusing is right, if it names the culprit
        assert "inference_model_settings" in str(exc)
        return
    for obj in rendered.objects:  # so is a name docker accepts
        assert len(obj.name) <= 64 and DOCKER_OBJECT_NAME.fullmatch(obj.name), obj.name


def test_config_names_of_the_cases_are_names_docker_accepts():
    for name in CASES:
        case, stack = load_case(name)
        if "expect" in case:
            for obj in render(stack, case["env"]).objects:
                assert len(obj.name) <= 64 and DOCKER_OBJECT_NAME.fullmatch(obj.name), obj.name


TWO_SERVICES = """\
version: "3.8"
services:
  api:
    image: example/api:${TAG}
    environment:
      LEVEL: ${LEVEL}
    configs: [settings]
    networks: [backend]
  worker:
    image: example/worker:1.0
    networks: [backend]
networks:
  backend:
    driver: overlay
configs:
  settings:
    file: ./settings.yaml
"""


def _two(tmp_path: Path, tag="1.0", settings="a: 1\n", level="info") -> Stack:
    directory = tmp_path / f"two_{tag}_{level}_{abs(hash(settings))}"
    write_stack(directory, TWO_SERVICES, {"environments": {"default": {"variables": {"TAG": tag, "LEVEL": level}}}},
                {"settings.yaml": settings})
    return stack_from_dir(directory, "webapp")


def _labels(rendered):
    return {n: s["deploy"]["labels"][LABEL_HASH] for n, s in rendered.services.items()}


def test_each_service_is_labelled_with_its_own_spec_s_hash(tmp_path):
    base = render(_two(tmp_path), "dev1")
    assert base.hash not in _labels(base).values()  # the document's hash is on no service
    env = render(_two(tmp_path, level="debug"), "dev1")
    assert env.hash != base.hash
    assert _labels(env)["api"] != _labels(base)["api"] and _labels(env)["worker"] == _labels(base)["worker"]
    # The image is a field of its own (a tag, or a digest once resolved): not in the hash.
    image = render(_two(tmp_path, tag="1.1"), "dev1")
    assert image.hash != base.hash and _labels(image) == _labels(base)
    config = render(_two(tmp_path, settings="a: 2\n"), "dev1")  # a config only api uses
    assert _labels(config)["api"] != _labels(base)["api"] and _labels(config)["worker"] == _labels(base)["worker"]
