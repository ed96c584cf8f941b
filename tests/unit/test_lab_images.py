"""Stand-in images: compose parsing, and the rootfs (pure)."""

from __future__ import annotations

import io
import json
import tarfile
from pathlib import Path

import pytest

from phoenix_tasks.lab.images import (ComposeUnreadable, SERVE_SCRIPT, StandIn,
                                      rootfs_tar_bytes, stand_ins_for_stacks,
                                      stand_ins_from_compose)

REPO = Path(__file__).resolve().parents[2]


def test_the_repositorys_stacks_give_one_stand_in_per_image_with_its_ports():
    got = {s.image: s.ports for s in stand_ins_for_stacks(REPO / "stacks")}
    assert got == {
        "portainer/agent:2.21.4": (9001,),
        "portainer/portainer-ce:2.21.4": (9000, 9443),
        "qdrant/qdrant:v1.12.4": (6333,),
        "thinkheads/ai-api:1.4.0": (8000,),
        "thinkheads/ai-inference:1.4.0": (8080,),
    }


def test_short_and_long_port_syntaxes_and_shared_images():
    doc = {"services": {
        "a": {"image": "x/y:1", "ports": ["8080:80", "127.0.0.1:9000:9001/udp", 7000,
                                          {"target": 443, "published": 8443}],
              "expose": ["5000-5002", "6000/tcp"]},
        "b": {"image": "x/y:1", "expose": [81]},
        "c": {"build": "."},
    }}
    (s,) = stand_ins_from_compose([("f.yml", doc)])
    assert s == StandIn("x/y:1", (80, 81, 443, 5000, 5001, 5002, 6000, 7000, 9001))


@pytest.mark.parametrize("service, message", [
    ({"image": "${IMAGE}"}, "literal image names"),
    ({"image": "a:1", "ports": [{"published": 80}]}, "without 'target'"),
    ({"image": "a:1", "expose": ["http"]}, "cannot read a container port"),
    ({"image": "a:1", "expose": ["1-5000"]}, "out of bounds"),
])
def test_unreadable_compose_entries_are_named(service, message):
    with pytest.raises(ComposeUnreadable, match=message) as e:
        stand_ins_from_compose([("stacks/s/docker-compose.yml", {"services": {"svc": service}})])
    assert "stacks/s/docker-compose.yml: service svc" in str(e.value)


def test_image_ignores_its_arguments_and_serves_each_port():
    changes = StandIn("portainer/portainer-ce:2.21.4", (9000, 9443)).changes()
    entrypoint = json.loads(changes[0].removeprefix("ENTRYPOINT "))
    # sh -c SCRIPT $0 ...: arguments appended by a stack land in $0.. and are unused.
    assert entrypoint == ["/bin/sh", "-c", SERVE_SCRIPT, "stand-in"]
    assert "$@" not in SERVE_SCRIPT and "$1" not in SERVE_SCRIPT
    assert 'ENV PHX_PORTS="9000 9443"' in changes
    assert "httpd -f" in SERVE_SCRIPT and "trap" in SERVE_SCRIPT


def test_rootfs_holds_busybox_and_its_applet_links(tmp_path):
    fake = tmp_path / "busybox"
    fake.write_bytes(b"\x7fELF fake")
    data = rootfs_tar_bytes(fake)
    assert data == rootfs_tar_bytes(fake)  # deterministic: rewritten only on change
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        members = {m.name: m for m in tar.getmembers()}
        assert tar.extractfile("bin/busybox").read() == b"\x7fELF fake"
    for applet in ("sh", "sleep", "httpd", "wget"):
        assert members[f"bin/{applet}"].issym() and members[f"bin/{applet}"].linkname == "busybox"
    assert members["tmp"].mode == 0o1777
