"""Image digests (phoenix_tasks.stack.digests): the repository of an image reference, the
parse of the resolve script's lines (docker's RepoDigests, pull errors), the document
helpers, render by digest on a real stack, and the resolve command."""

from __future__ import annotations

import json
import shlex
from pathlib import Path
from types import SimpleNamespace

import pytest

from phoenix_tasks.config import load_config
from phoenix_tasks.core import engine_api
from phoenix_tasks.stack import digests
from phoenix_tasks.stack.digests import (
    Resolution,
    chain,
    images_digests,
    images_of,
    parse_resolve,
    pin,
    repository,
    resolve,
    resolve_argv,
)
from phoenix_tasks.docker.render import SwarmObject, render
from phoenix_tasks.core.transport import CommandResult, shell_command

REPO = Path(__file__).resolve().parents[2]
D1, D2, D3 = ("sha256:" + c * 64 for c in "abc")


def line(image: str, repo_digests, error: str = "") -> str:
    """One line of the resolve script: image, `{{json .RepoDigests}}` (or null), the pull's error."""
    return f"{image}\t{json.dumps(repo_digests) if repo_digests is not None else 'null'}\t{error}\n"


# -- repository ---------------------------------------------------------------------------------

@pytest.mark.parametrize("image, repo", [
    ("nginx", "nginx"),
    ("nginx:1.25", "nginx"),
    ("library/nginx:1.25", "library/nginx"),
    ("thinkheads/ai-api:1.4.0", "thinkheads/ai-api"),
    ("registry.lan:5000/team/api", "registry.lan:5000/team/api"),  # a port is not a tag
    ("registry.lan:5000/team/api:2.0", "registry.lan:5000/team/api"),
    ("localhost:5000/api:dev", "localhost:5000/api"),
    (f"nginx:1.25@{D1}", "nginx"),
    (f"registry.lan:5000/team/api@{D1}", "registry.lan:5000/team/api"),
])
def test_repository(image, repo):
    assert repository(image) == repo


# -- parse_resolve --------------------------------------------------------------------------------

def test_parse_resolve_matches_the_repo_digest_of_the_same_repository():
    out = parse_resolve(
        line("registry.lan:5000/team/api:2.0", [f"other.lan/team/api@{D1}", f"registry.lan:5000/team/api@{D2}"])
        + line("thinkheads/ai-api:1.4.0", [f"thinkheads/ai-api@{D3}"]))
    assert out.digests == {"registry.lan:5000/team/api:2.0": f"registry.lan:5000/team/api:2.0@{D2}",
                           "thinkheads/ai-api:1.4.0": f"thinkheads/ai-api:1.4.0@{D3}"}
    assert out.warnings == []


@pytest.mark.parametrize("image, repo_digest", [
    ("docker.io/library/redis:7", "redis"),  # the engine shortens docker.io/library/
    ("redis:7", "docker.io/library/redis"),
    ("library/redis:7", "redis"),
    ("index.docker.io/library/redis:7", "redis"),
    ("docker.io/bitnami/redis:7", "bitnami/redis"),
])
def test_parse_resolve_normalises_docker_hub_names(image, repo_digest):
    out = parse_resolve(line(image, [f"{repo_digest}@{D1}"]))
    assert out.digests == {image: f"{image}@{D1}"} and out.warnings == []


def test_parse_resolve_another_repository_s_digest_is_no_digest():
    out = parse_resolve(line("bitnami/redis:7", [f"redis@{D1}"]))
    assert out.digests == {}
    assert out.warnings == [("image bitnami/redis:7: no digest (the engine knows no digest for it (an image "
                             "loaded locally, not pulled)): deployed by tag")]


def test_parse_resolve_an_image_the_registry_does_not_have_is_blocked_with_its_answer():
    out = parse_resolve(line("thinkheads/ai-inference:1.4.0", None,
                             "Error response from daemon: pull access denied for thinkheads/ai-inference  ")
                        + line("198.18.100.1:5000/thinkheads/ai-api:9.9.9", None,
                               "Error response from daemon: manifest for 198.18.100.1:5000/thinkheads/ai-api:9.9.9 "
                               "not found: manifest unknown: manifest unknown"))
    assert out.digests == {} and out.warnings == [] and out.unreachable == []
    assert out.blocked == [
        "image thinkheads/ai-inference:1.4.0: registry docker.io answered: pull access denied for "
        "thinkheads/ai-inference (unauthorized)",
        "image 198.18.100.1:5000/thinkheads/ai-api:9.9.9: registry 198.18.100.1:5000 answered: manifest for "
        "198.18.100.1:5000/thinkheads/ai-api:9.9.9 not found: manifest unknown: manifest unknown"]


def test_parse_resolve_a_refusal_blocks_even_when_the_engine_kept_a_digest_from_earlier():
    out = parse_resolve(line("r.lan:5443/team/api:1", [f"r.lan:5443/team/api@{D1}"],
                             'Head "https://r.lan:5443/v2/team/api/manifests/1": no basic auth credentials'))
    assert out.digests == {}
    assert out.blocked == ['image r.lan:5443/team/api:1: registry r.lan:5443 answered: Head '
                           '"https://r.lan:5443/v2/team/api/manifests/1": no basic auth credentials (unauthorized)']


def test_parse_resolve_an_image_only_loaded_locally_is_not_blocked():
    # `docker load`/a local build: the engine has it, with no RepoDigest; the registry
    # does not: deployed by tag, as before (Swarm's nodes use an image they hold).
    out = parse_resolve(line("phoenix/probe:dev", [], "pull access denied for phoenix/probe, repository does "
                                                     "not exist or may require 'docker login'"))
    assert out.blocked == [] and out.digests == {}
    assert out.warnings == ["image phoenix/probe:dev: only in the manager's engine (registry docker.io answered: "
                            "pull access denied for phoenix/probe, repository does not exist or may require "
                            "'docker login'): deployed by tag"]


def test_parse_resolve_a_registry_not_reached_warns_and_deploys_by_tag():
    error = ('Error response from daemon: Get "https://registry.lan/v2/": dial tcp: lookup registry.lan '
             'on 127.0.0.53:53: no such host')
    out = parse_resolve(line("registry.lan/team/api:2", None, error))
    assert out.blocked == [] and out.digests == {}
    reason = error.removeprefix("Error response from daemon: ")
    assert out.unreachable == [f"image registry.lan/team/api:2: registry registry.lan not reached ({reason})"]
    assert out.warnings == [out.unreachable[0] + ": deployed by tag"]


@pytest.mark.parametrize("error, kind", [
    ("manifest for x:1 not found: manifest unknown: manifest unknown", "not-found"),
    ("pull access denied for x, repository does not exist or may require 'docker login': denied: requested "
     "access to the resource is denied", "not-found"),
    ('Head "https://r.lan/v2/x/manifests/1": no basic auth credentials', "denied"),
    ("unauthorized: authentication required", "denied"),
    ("denied: requested access to the resource is denied", "denied"),
    ('Get "https://r.lan:5000/v2/": dial tcp 10.0.0.9:5000: connect: connection refused', "unreachable"),
    ('Get "https://r.lan/v2/": net/http: request canceled while waiting for connection (Client.Timeout '
     'exceeded while awaiting headers)', "unreachable"),
    ("Get https://r.lan/v2/: x509: certificate signed by unknown authority", "unreachable"),
    ("toomanyrequests: You have reached your pull rate limit", "unknown"),
])
def test_classify_the_registry_s_answer(error, kind):
    assert digests.classify(error) == kind


@pytest.mark.parametrize("image, registry", [
    ("nginx:1.25", "docker.io"), ("thinkheads/ai-api:1", "docker.io"), ("docker.io/library/nginx", "docker.io"),
    ("registry.lan/a/b:1", "registry.lan"), ("198.18.100.1:5000/x:1", "198.18.100.1:5000"),
    ("localhost/x", "localhost"), (f"r.lan:443/x@{D1}", "r.lan:443")])
def test_registry_of(image, registry):
    assert digests.registry_of(image) == registry


def test_parse_resolve_a_local_image_has_an_empty_list():
    out = parse_resolve(line("phoenix/probe:dev", []))
    assert out.digests == {}
    assert out.warnings == [("image phoenix/probe:dev: no digest (the engine knows no digest for it (an image "
                             "loaded locally, not pulled)): deployed by tag")]


def test_parse_resolve_truncates_a_long_error_at_160_characters():
    error = "E" * 100 + " and then " + "x" * 200
    [warning] = parse_resolve(line("a:1", None, error)).warnings  # an answer not classified: a warning
    why = warning.removeprefix("image a:1: no digest (").removesuffix("): deployed by tag")
    assert len(why) == 160 and why == error[:157] + "..."
    [exact] = parse_resolve(line("a:1", None, "y" * 160)).warnings
    assert exact == f"image a:1: no digest ({'y' * 160}): deployed by tag"


def test_parse_resolve_ignores_garbage_lines():
    out = parse_resolve("\n"
                        "Digest: sha256:deadbeef\n"
                        "two\tfields\n"
                        "\t[]\terror without an image\n"
                        "a\tb\tc\td\n"
                        + line("nginx:1.25", [f"nginx@{D1}"])
                        + "nginx:1.26\tnot json\t\n"
                        + "nginx:1.27\t[\"no-at-sign\"]\t\n")
    assert out.digests == {"nginx:1.25": f"nginx:1.25@{D1}"}
    assert [w.split(":", 2)[:2] for w in out.warnings] == [["image nginx", "1.26"], ["image nginx", "1.27"]]


def test_parse_resolve_of_nothing():
    assert parse_resolve("") == Resolution()


def test_parse_resolve_keeps_a_digest_already_written_once():
    out = parse_resolve(line(f"nginx:1.25@{D1}", [f"nginx@{D2}"]))
    assert out.digests == {f"nginx:1.25@{D1}": f"nginx:1.25@{D2}"}


# -- the document helpers --------------------------------------------------------------------------

def test_images_of_once_each_without_digests():
    doc = {"services": {"a": {"image": "nginx:1.25"}, "b": {"image": "redis:7"}, "c": {"image": "nginx:1.25"},
                        "d": {"image": f"pinned:1@{D1}"}, "e": {"build": "."}, "f": None, "g": {"image": 42}}}
    assert images_of(doc) == ["nginx:1.25", "redis:7"]
    assert images_of({}) == [] and images_of({"services": None}) == []


def test_pin_writes_each_known_image_by_digest():
    doc = {"services": {"a": {"image": "nginx:1.25"}, "b": {"image": "redis:7"}, "c": None}}
    amend = pin({"nginx:1.25": f"nginx:1.25@{D1}"})
    assert amend(doc, "dev1_x") == []
    assert doc == {"services": {"a": {"image": f"nginx:1.25@{D1}"}, "b": {"image": "redis:7"}, "c": None}}


def test_chain_runs_amends_in_order_and_joins_their_objects():
    obj = SwarmObject("config", "k", "dev1_x_k_00000000", "text", {})
    calls = []

    def first(doc, ns):
        calls.append(("first", ns))
        doc["services"]["a"]["image"] = "nginx:1.25"
        return [obj]

    amend = chain(None, first, pin({"nginx:1.25": f"nginx:1.25@{D1}"}), None)
    doc = {"services": {"a": {"image": "placeholder"}}}
    assert amend(doc, "dev1_x") == [obj]
    assert calls == [("first", "dev1_x")]
    assert doc["services"]["a"]["image"] == f"nginx:1.25@{D1}"  # pin saw what `first` wrote
    assert chain() is None and chain(None, None) is None


def test_images_digests():
    doc = {"services": {"a": {"image": f"nginx:1.25@{D1}"}, "b": {"image": "redis:7"},
                        "c": {"image": f"registry.lan:5000/api@{D2}"}, "d": None}}
    assert images_digests(doc) == {"nginx:1.25": f"nginx:1.25@{D1}",
                                   "registry.lan:5000/api": f"registry.lan:5000/api@{D2}"}


def test_render_by_digest_changes_the_hash_and_reads_back():
    config = load_config(REPO / "etc" / "lab", REPO / "stacks")
    stack = config.stacks["thinkheads_ai_app"]
    by_tag = render(stack, "dev1")
    assert images_of(by_tag.document) == ["thinkheads/ai-api:1.4.0", "thinkheads/ai-inference:1.4.0"]
    resolution = parse_resolve(line("thinkheads/ai-api:1.4.0", [f"thinkheads/ai-api@{D1}"])
                               + line("thinkheads/ai-inference:1.4.0", None, "manifest unknown"))
    by_digest = render(stack, "dev1", amend=pin(resolution.digests))
    assert by_digest.services["api"]["image"] == f"thinkheads/ai-api:1.4.0@{D1}"
    assert by_digest.services["inference"]["image"] == "thinkheads/ai-inference:1.4.0"
    assert by_digest.hash != by_tag.hash
    assert images_digests(by_digest.document) == resolution.digests
    assert images_of(by_digest.document) == ["thinkheads/ai-inference:1.4.0"]


# -- the command ---------------------------------------------------------------------------------------

def http(status: str, body: str = "") -> str:
    """One answer as the engine prints it on the dial-stdio stream (kept alive)."""
    return f"HTTP/1.1 {status}\r\nContent-Type: application/json\r\nContent-Length: {len(body.encode())}\r\n\r\n{body}"


def distribution(digest: str) -> str:
    return http("200 OK", json.dumps({"Descriptor": {"mediaType": "application/vnd.docker.distribution.manifest.v2+json",
                                                     "digest": digest, "size": 527}, "Platforms": []}))


def error(status: str, message: str) -> str:
    return http(status, json.dumps({"message": message}))


def test_resolve_argv_exact():
    assert resolve_argv() == ["docker", "system", "dial-stdio"]
    assert resolve_argv([]) == ["docker", "system", "dial-stdio"]


def test_resolve_requests_ask_the_registry_and_the_manager_s_copy_without_a_pull():
    reqs = digests.resolve_requests(["nginx:1.25", "registry.lan:5000/team/api:2"])
    assert [(r.method, r.path, r.headers) for r in reqs] == [
        ("GET", "/distribution/nginx:1.25/json", ()), ("GET", "/images/nginx:1.25/json", ()),
        ("GET", "/distribution/registry.lan:5000/team/api:2/json", ()),
        ("GET", "/images/registry.lan:5000/team/api:2/json", ())]


def test_a_hostile_image_cannot_break_the_request_line():
    [dist, _] = digests.resolve_requests(["nginx HTTP/1.1\r\nX: y"])
    assert " " not in dist.path and "\r" not in dist.path and "\n" not in dist.path
    assert dist.encode().reveal().startswith("GET /distribution/nginx%20HTTP/1.1%0D%0AX:%20y/json HTTP/1.1\r\n")


def test_resolve_lines_turn_the_engine_s_answers_into_the_gate_s_input():
    images = ["nginx:1.25", "gone:1", "phoenix/probe:dev", "far:1"]
    answers = engine_api.parse_answers(
        distribution(D1) + http("200 OK", json.dumps({"RepoDigests": [f"nginx@{D1}"]}))
        + error("404 Not Found", "manifest unknown: manifest unknown") + error("404 Not Found", "No such image: gone:1")
        + error("403 Forbidden", "pull access denied for phoenix/probe, repository does not exist")
        + http("200 OK", json.dumps({"RepoDigests": []}))
        + error("500 Internal Server Error",
                "Get https://registry-1.docker.io/v2/: dial tcp: lookup registry-1.docker.io: no such host")
        + error("404 Not Found", "No such image: far:1"))
    out = parse_resolve(digests.resolve_lines(images, answers))
    assert out.digests == {"nginx:1.25": f"nginx:1.25@{D1}"}
    assert out.blocked == ["image gone:1: registry docker.io answered: manifest unknown: manifest unknown"]
    assert out.unreachable == ["image far:1: registry docker.io not reached (Get https://registry-1.docker.io/v2/: "
                               "dial tcp: lookup registry-1.docker.io: no such host)"]
    assert any(w.startswith("image phoenix/probe:dev: only in the manager's engine") for w in out.warnings)


def test_a_missing_answer_is_no_digest_and_no_block():
    out = parse_resolve(digests.resolve_lines(["a:1"], []))
    assert out.digests == {} and out.blocked == []
    assert out.warnings == ["image a:1: no digest (the engine gave no answer): deployed by tag"]


class RecordingTransport:
    def __init__(self, stdout: str, command_timeout_s: float = 60.0):
        self.access = SimpleNamespace(command_timeout_s=command_timeout_s)
        self.stdout, self.calls = stdout, []

    def keep_secret(self, secret):
        return secret

    def scrub(self, text):
        return text

    def run(self, host, argv, *, mutating, check=True, stdin=None, quiet=False, timeout=None, display=None,
            secret_output=False, hold_stdin=False):
        self.calls.append((host, list(argv), mutating, timeout, stdin.reveal(), hold_stdin))
        return CommandResult(host, shell_command(argv), 0, self.stdout, "")


def test_resolve_is_one_read_pipelined_on_one_api_stream_held_open():
    t = RecordingTransport(distribution(D1) + http("200 OK", "{}"))
    out = resolve(t, "portainer", ["nginx:1.25"])
    assert out.digests == {"nginx:1.25": f"nginx:1.25@{D1}"}
    [(host, argv, mutating, timeout, stdin, held)] = t.calls
    assert (host, argv, mutating, timeout, held) == ("portainer", resolve_argv(), False, 120.0, True)
    assert stdin == ("GET /distribution/nginx:1.25/json HTTP/1.1\r\nHost: docker\r\nUser-Agent: phoenix\r\n"
                     "Connection: keep-alive\r\n\r\n"
                     "GET /images/nginx:1.25/json HTTP/1.1\r\nHost: docker\r\nUser-Agent: phoenix\r\n"
                     "Connection: close\r\n\r\n")
    long = RecordingTransport("", command_timeout_s=300.0)
    resolve(long, "portainer", ["nginx:1.25"])
    assert long.calls[0][3] == 300.0


def test_resolve_of_no_image_runs_nothing():
    t = RecordingTransport("")
    assert resolve(t, "portainer", []) == Resolution() and t.calls == []
