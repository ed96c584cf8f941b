"""What a rendered document may not ask of the cluster (docker/refusals.py), and that a
deploy's render refuses it before any connection (issue 21: items 1, 2, 7)."""

from __future__ import annotations

from pathlib import Path

import pytest

from phoenix_tasks.core.model import Stack, StackService
from phoenix_tasks.docker import refusals
from phoenix_tasks.docker.render import RenderError, render


def stack(tmp_path: Path, compose: dict, *, variables: dict | None = None, max_replicas: int = 100,
          shares: dict | None = None, known: tuple[str, ...] = ("app", "portainer_service")) -> Stack:
    return Stack(name="app", directory=tmp_path, description="test", placement_constraints=(),
                 services={n: StackService(n, ()) for n in compose["services"]},
                 environments={"default": variables or {}}, compose=compose, max_replicas=max_replicas,
                 shares=shares or {}, known_stacks=known)


def service(**extra) -> dict:
    return {"image": "nginx:1.27", "deploy": {"replicas": 1}, **extra}


# -- bounds ------------------------------------------------------------------------

def test_replicas_through_a_variable_are_refused_with_pointer_limit_and_source(tmp_path):
    s = stack(tmp_path, {"services": {"web": {"image": "nginx:1.27", "deploy": {"replicas": "${N}"}}}},
              variables={"N": "99999999999999999"})
    with pytest.raises(RenderError) as info:
        render(s, "dev9")
    message = str(info.value)
    assert "docker-compose.yml /services/web/deploy/replicas: replicas 99999999999999999 is out of range: 0 to 100" in message
    assert "(from '${N}')" in message
    assert info.value.items[0][0] == ("services", "web", "deploy", "replicas")


def test_a_raised_max_replicas_lets_more_through(tmp_path):
    s = stack(tmp_path, {"services": {"web": service(deploy={"replicas": 300})}}, max_replicas=500)
    assert render(s, "dev1").services["web"]["deploy"]["replicas"] == 300


@pytest.mark.parametrize("svc, path, words", [
    (service(deploy={"replicas": True}), ("services", "web", "deploy", "replicas"), "not a whole number"),
    (service(deploy={"replicas": 1.5}), ("services", "web", "deploy", "replicas"), "not a whole number"),
    (service(deploy={"replicas": -1}), ("services", "web", "deploy", "replicas"), "out of range: 0 to 100"),
    (service(ports=[{"target": 0, "published": 80}]), ("services", "web", "ports", 0, "target"), "1 to 65535"),
    (service(ports=[{"target": 80, "published": "8000-70000"}]), ("services", "web", "ports", 0, "published"), "70000"),
    (service(ports=["127.0.0.1:99999:80/udp"]), ("services", "web", "ports", 0), "port 99999"),
    (service(ports=["[::1]:8080:80"], expose=["x"]), ("services", "web", "expose", 0), "is not a port"),
    (service(deploy={"placement": {"max_replicas_per_node": 101}}),
     ("services", "web", "deploy", "placement", "max_replicas_per_node"), "0 to 100"),
    (service(healthcheck={"retries": 5000}), ("services", "web", "healthcheck", "retries"), "0 to 1000"),
    (service(deploy={"resources": {"limits": {"memory": "lots"}}}),
     ("services", "web", "deploy", "resources", "limits", "memory"), "not a size"),
    (service(deploy={"resources": {"limits": {"cpus": "2000"}}}),
     ("services", "web", "deploy", "resources", "limits", "cpus"), "at most 1024"),
    (service(ulimits={"nproc": 99999999}), ("services", "web", "ulimits", "nproc"), "0 to 4194304"),
    (service(secrets=[{"source": "s", "mode": 0o1777}]), ("services", "web", "secrets", 0, "mode"), "0777"),
])
def test_bounds(svc, path, words):
    found = refusals.check_bounds({"services": {"web": svc}}, 100)
    assert [f.path for f in found] == [path]
    assert words in found[0].message


def test_sane_values_pass():
    svc = service(ports=["8080:80", "127.0.0.1:9000-9010:9000-9010/tcp", 443, {"target": 80, "published": "8081"}],
                  expose=["9001", 9002, "7000-7010/udp"],
                  deploy={"replicas": 100, "update_config": {"parallelism": 0, "max_failure_ratio": 0.5},
                          "resources": {"limits": {"cpus": "0.5", "memory": "512M", "pids": 100},
                                        "reservations": {"memory": "1GiB"}},
                          "restart_policy": {"max_attempts": 3}},
                  ulimits={"nofile": {"soft": 1024, "hard": 65536}, "memlock": -1},
                  secrets=[{"source": "s", "mode": 0o440}], healthcheck={"retries": 3})
    assert refusals.check_bounds({"services": {"web": svc}}, 100) == []


# -- options swarm services lack -----------------------------------------------------

def test_privileged_and_pid_host_are_refused(tmp_path):
    s = stack(tmp_path, {"services": {"web": service(privileged="true", pid="host")}})
    with pytest.raises(RenderError) as info:
        render(s, "dev1")
    assert [p for p, _ in info.value.items] == [("services", "web", "privileged"), ("services", "web", "pid")]
    assert "not supported by swarm services" in str(info.value)


def test_privileged_false_passes():
    assert refusals.check_unsupported({"services": {"web": service(privileged=False)}}) == []


# -- image references ------------------------------------------------------------------

@pytest.mark.parametrize("image", ["nginx", "nginx:1.27", "registry.local:5000/team/app:v1-2.3",
                                   "ghcr.io/a/b@sha256:" + "a" * 64, "localhost/x:latest@sha256:" + "0" * 64,
                                   "[::1]:5000/app:1"])
def test_good_image_references(image):
    assert refusals.image_problem(image) is None


@pytest.mark.parametrize("image", ["Nginx:1", "nginx:", "nginx:1:2", "-nginx", "nginx@sha256:abc", "a b",
                                   "nginx:" + "1" * 129, "registry:5000/", "x" * 256, "", 5])
def test_bad_image_references(image):
    assert refusals.image_problem(image)


# -- references into other environments -------------------------------------------

STOLEN = "prod_portainer_service_portainer_admin_password_2f6d61ab"


@pytest.mark.parametrize("name, owner", [
    (STOLEN, "prod"), ("prod_portainer_service", "prod"), ("dev-2_app_net", "dev-2"),
    ("phx-ledger-0123456789ab-000001", "phoenix"), ("phx-lock-0123456789ab-00000001", "phoenix"),
    ("traefik_public", None), ("prod_portainer_servicex_a", None), ("Prod_app_x", None), ("shared", None),
])
def test_owner_env(name, owner):
    assert refusals.owner_env(name, ("app", "portainer_service")) == owner


def test_another_environments_secret_is_refused_before_anything(tmp_path):
    s = stack(tmp_path, {"services": {"web": service(secrets=["stolen"])},
                         "secrets": {"stolen": {"external": True, "name": STOLEN}}})
    with pytest.raises(RenderError) as info:
        render(s, "dev9")
    assert info.value.items[0][0] == ("secrets", "stolen")
    assert "belongs to environment 'prod', not 'dev9'" in str(info.value)
    # the same environment may use it
    assert render(s, "prod").document["secrets"]["stolen"] == {"external": True, "name": STOLEN}


def test_a_share_listed_in_phoenix_json_passes_and_is_shown(tmp_path):
    s = stack(tmp_path, {"services": {"web": service(networks=["public"])},
                         "networks": {"public": {"external": True, "name": "prod_app_public"}}},
              shares={"networks": ("prod_app_public",)})
    rendered = render(s, "dev1")
    assert rendered.warnings == ("docker-compose.yml /networks/public: shares network 'prod_app_public' of "
                                 "environment 'prod' (listed in phoenix.json /shares/networks)",)


def test_names_outside_every_namespace_pass(tmp_path):
    doc = {"services": {"web": service()},
           "networks": {"traefik_public": {"external": True}, "own": {"driver": "overlay"}},
           "volumes": {"data": {}, "legacy": {"external": {"name": "old_data"}}}}
    assert refusals.check_externals(doc, "dev1", ("app",), {}) == []


def test_a_bind_mount_into_another_environments_volume_is_refused():
    doc = {"services": {"web": service(volumes=[
        "/var/lib/docker/volumes/prod_app_data/_data:/data:ro",
        {"type": "bind", "source": "/var/lib/docker/volumes/prod_app_cache", "target": "/c"},
        "/var/lib/docker/volumes:/all",  # Portainer's agent: the whole directory, no one volume
        "/var/lib/docker/volumes/dev1_app_data/_data:/mine",
        "data:/data"])}}
    found = refusals.check_externals(doc, "dev1", ("app",), {})
    assert [f.path for f in found] == [("services", "web", "volumes", 0), ("services", "web", "volumes", 1)]
    assert "belongs to environment 'prod', not 'dev1'" in found[0].message
    assert refusals.check_externals(doc, "dev1", ("app",), {"volumes": ("prod_app_data", "prod_app_cache")}) == []
