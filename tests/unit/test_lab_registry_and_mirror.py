"""The lab registry (pure parts and its HTTP reads against a loopback server) and the
plan that pushes stand-ins to it."""

from __future__ import annotations

import dataclasses
import http.server
import json
import threading
from pathlib import Path

import pytest
import yaml

from phoenix_tasks.lab import commands, images, mirror, registry, registry_api
from phoenix_tasks.lab.images import StandIn
from phoenix_tasks.lab.naming import LabNames

NAMES = LabNames("phxlab0", Path("/var/lib/phoenix-lab"))
ADDR = "198.18.42.1:5000"


# --- the registry process ---------------------------------------------------------------
def test_the_registry_listens_on_the_bridge_address_only_and_stores_in_the_state_dir():
    import ipaddress
    assert registry.address(ipaddress.IPv4Interface("198.18.42.1/24")) == ADDR
    config = yaml.safe_load(registry.config_text(NAMES, ADDR))
    assert config["http"] == {"addr": "198.18.42.1:5000",
                              "headers": {"X-Content-Type-Options": ["nosniff"]}}
    assert config["storage"]["filesystem"] == {"rootdirectory": "/var/lib/phoenix-lab/registry/storage"}
    # No upstream to fetch from, no second (debug) listener, no auth the engines lack.
    assert "proxy" not in config and "debug" not in config["http"] and "auth" not in config
    assert config["version"] == 0.1


def test_registry_paths_are_all_in_the_state_dir():
    assert NAMES.registry_dir == Path("/var/lib/phoenix-lab/registry")
    for path in (NAMES.registry_config, NAMES.registry_storage, NAMES.registry_pidfile,
                 NAMES.registry_log):
        assert path.parent == NAMES.registry_dir


DESIRED = registry.config_text(NAMES, ADDR)
RUNNING = registry.Facts(config_text=DESIRED, pid=4242, answers=True)


def kinds(facts):
    return [a.kind for a in registry.plan(NAMES, ADDR, DESIRED, facts)]


def test_a_running_registry_with_its_config_needs_nothing():
    assert registry.plan(NAMES, ADDR, DESIRED, RUNNING) == []


def test_a_new_registry_gets_its_config_then_starts():
    plan = registry.plan(NAMES, ADDR, DESIRED, registry.Facts(None, None, False))
    assert [a.kind for a in plan] == ["registry-config", "registry-start"]
    assert plan[1].argv == tuple(commands.registry_serve(NAMES))
    assert plan[1].summary == "lab registry: start on 198.18.42.1:5000"


def test_a_dead_registry_is_started_and_its_config_left_alone():
    assert kinds(dataclasses.replace(RUNNING, pid=None, answers=False)) == ["registry-start"]


def test_a_changed_config_is_written_and_the_registry_restarted():
    plan = registry.plan(NAMES, ADDR, DESIRED, dataclasses.replace(RUNNING, config_text="old"))
    assert [a.kind for a in plan] == ["registry-config", "registry-restart"]
    assert "pid 4242: its config changed" in plan[1].summary


def test_a_registry_that_does_not_answer_is_restarted():
    plan = registry.plan(NAMES, ADDR, DESIRED, dataclasses.replace(RUNNING, answers=False))
    assert [a.kind for a in plan] == ["registry-restart"]
    assert "does not answer on 198.18.42.1:5000" in plan[0].summary


def test_a_pid_counts_only_if_its_command_line_names_this_labs_config(tmp_path):
    import os
    names = LabNames("phxlab0", tmp_path)
    names.registry_dir.mkdir()
    names.registry_pidfile.write_text(f"{os.getpid()}\n")  # alive, but not the registry
    assert registry.pid(names) is None


# --- reading the registry over HTTP -------------------------------------------------------
CONFIG_BLOB = json.dumps({"config": {"Labels": {images.FINGERPRINT_LABEL: "sha256:f00"}}}).encode()
MANIFEST = json.dumps({"schemaVersion": 2, "config": {"digest": "sha256:c0c0"}}).encode()


class FakeRegistry(http.server.BaseHTTPRequestHandler):
    seen: list = []

    def do_GET(self):  # noqa: N802 - the handler's API
        FakeRegistry.seen.append((self.path, self.headers.get("Accept")))
        if self.path == "/v2/":
            self._send(200, b"{}")
        elif self.path == "/v2/portainer/agent/manifests/2.21.4":
            self._send(200, MANIFEST, {"Docker-Content-Digest": "sha256:" + "d" * 64})
        elif self.path == "/v2/portainer/agent/blobs/sha256:c0c0":
            self._send(200, CONFIG_BLOB)
        else:
            self._send(404, b'{"errors":[{"code":"MANIFEST_UNKNOWN"}]}')

    def _send(self, code, body, headers=None):
        self.send_response(code)
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


@pytest.fixture
def fake_registry(monkeypatch):
    # A proxy in the environment must not be used: the registry is on the lab bridge.
    monkeypatch.setenv("http_proxy", "http://127.0.0.1:9")
    monkeypatch.setenv("HTTP_PROXY", "http://127.0.0.1:9")
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), FakeRegistry)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    FakeRegistry.seen = []
    yield f"127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_a_tag_reads_as_its_manifest_digest_and_image_labels(fake_registry):
    held = registry_api.tagged_image(fake_registry, "portainer/agent", "2.21.4")
    assert held == registry_api.TaggedImage("sha256:" + "d" * 64,
                                            {images.FINGERPRINT_LABEL: "sha256:f00"})
    path, accept = FakeRegistry.seen[0]
    assert path == "/v2/portainer/agent/manifests/2.21.4"
    assert "application/vnd.docker.distribution.manifest.v2+json" in accept


def test_a_missing_tag_is_none_and_a_registry_that_answers_is_seen(fake_registry):
    assert registry_api.tagged_image(fake_registry, "portainer/agent", "9.9.9") is None
    assert registry_api.answers(fake_registry)


def test_nothing_listening_is_not_an_answer():
    assert not registry_api.answers("127.0.0.1:9", timeout=0.5)


# --- pushing stand-ins: plan from what the registry holds -------------------------------
STAND_INS = [StandIn("portainer/agent:2.21.4", (9001,)), StandIn("qdrant/qdrant:v1.12.4", (6333,)),
             StandIn("ghcr.io/acme/tool:1", (80,))]
ROOTFS = b"rootfs tar bytes"


def test_only_docker_hub_names_go_through_the_registry_each_with_its_fingerprint():
    items = mirror.wanted(STAND_INS, ROOTFS)
    assert [w.stand_in.image for w in items] == ["portainer/agent:2.21.4", "qdrant/qdrant:v1.12.4"]
    agent = items[0]
    assert agent.fingerprint == images.fingerprint(ROOTFS, STAND_INS[0].changes())
    assert agent.changes == (*STAND_INS[0].changes(),
                             f"LABEL {images.FINGERPRINT_LABEL}={agent.fingerprint}")
    assert agent.hub.in_registry(ADDR) == "198.18.42.1:5000/portainer/agent:2.21.4"


def test_the_fingerprint_follows_the_rootfs_and_the_changes():
    changes = STAND_INS[0].changes()
    assert images.fingerprint(ROOTFS, changes) == images.fingerprint(ROOTFS, list(changes))
    assert images.fingerprint(ROOTFS + b"x", changes) != images.fingerprint(ROOTFS, changes)
    assert images.fingerprint(ROOTFS, changes[:-1]) != images.fingerprint(ROOTFS, changes)
    assert images.fingerprint(ROOTFS, STAND_INS[0].changes("v2")) != \
        images.fingerprint(ROOTFS, changes)


def held(item, labels=None):
    return registry_api.TaggedImage("sha256:" + "e" * 64,
                                    {images.FINGERPRINT_LABEL: item.fingerprint} if labels is None
                                    else labels)


def test_a_registry_holding_the_same_builds_gets_no_push():
    items = mirror.wanted(STAND_INS, ROOTFS)
    assert mirror.push_plan(ADDR, items, {w.stand_in.image: held(w) for w in items}) == []


def test_missing_or_other_builds_are_pushed_and_say_why():
    agent, qdrant = mirror.wanted(STAND_INS, ROOTFS)
    variant = held(qdrant, {images.FINGERPRINT_LABEL: "sha256:other",
                            images.VARIANT_LABEL: "v2"})
    plan = mirror.push_plan(ADDR, [agent, qdrant], {agent.stand_in.image: None,
                                                    qdrant.stand_in.image: variant})
    assert [(a.kind, a.target) for a in plan] == [("push", "portainer/agent:2.21.4"),
                                                 ("push", "qdrant/qdrant:v1.12.4")]
    assert plan[0].summary == \
        "push stand-in portainer/agent:2.21.4 to the lab registry 198.18.42.1:5000 (new)"
    assert plan[1].summary.endswith("(changed)")


# --- names and variants ------------------------------------------------------------------
@pytest.mark.parametrize("image, repository, tag, familiar", [
    ("portainer/portainer-ce:2.21.4", "portainer/portainer-ce", "2.21.4", "portainer/portainer-ce:2.21.4"),
    ("busybox", "library/busybox", "latest", "busybox:latest"),
    ("docker.io/library/busybox:1.36", "library/busybox", "1.36", "busybox:1.36"),
    ("index.docker.io/qdrant/qdrant:v1.12.4", "qdrant/qdrant", "v1.12.4", "qdrant/qdrant:v1.12.4"),
])
def test_docker_hub_names_as_a_mirror_serves_them(image, repository, tag, familiar):
    hub = images.hub_name(image)
    assert (hub.repository, hub.tag, hub.familiar) == (repository, tag, familiar)


@pytest.mark.parametrize("image", ["ghcr.io/acme/tool:1", "localhost:5000/a:1", "localhost/a:1",
                                   "a@sha256:" + "0" * 64, "Upper/case:1", "a/b:bad tag"])
def test_other_registries_digests_and_invalid_names_are_not_docker_hub(image):
    assert images.hub_name(image) is None


def test_a_variant_is_the_same_stand_in_with_its_note_as_a_label():
    s = StandIn("portainer/portainer-ce:2.21.4", (9000, 9443))
    assert s.changes("v2") == [*s.changes(), f"LABEL {images.VARIANT_LABEL}=v2"]


@pytest.mark.parametrize("note", ["", "two words", "x\nLABEL evil=1", "-dash", "a" * 65, "é"])
def test_a_note_that_is_not_a_plain_word_is_refused(note):
    with pytest.raises(images.BadNote, match="a variant's note must be"):
        StandIn("portainer/agent:2.21.4", ()).changes(note)
