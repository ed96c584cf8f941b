"""Pre-flight of a deploy (phoenix_tasks.stack.preflight) and the deploy's plan
(phoenix_tasks.stack.deploy.plan_deploy), on the pre-flight read recorded on a real
3-VM lab (tests/data/stack/preflight_lab.txt, see tests/data/stack/README.md) and
documents rendered from hand-built stacks."""

from __future__ import annotations

import dataclasses
import ipaddress
import json
from pathlib import Path

import pytest

from phoenix_tasks.core.model import VM, NetworkConfig, Stack, StackService
from phoenix_tasks.core.plan import Blocked
from phoenix_tasks.core.secrets import Secret
from phoenix_tasks.stack import commands, preflight
from phoenix_tasks.stack.deploy import plan_deploy
from phoenix_tasks.stack.diff import compare, desired_services
from phoenix_tasks.stack.facts import ClusterView, Port, ServiceFacts, parse_preflight, parse_time
from phoenix_tasks.docker.render import render

DATA = Path(__file__).resolve().parent.parent / "data" / "stack"
RECORDED_CLOCK = 1795645101474565312
PORTAINER, DRPHOENIX, CPUWORKER = "uumkvao8yochu4ytlcv1v4v2f", "zmmgwaogb05kr0u93398xzms9", "pincetjaxrb4dowcstu5y8b7g"
ALL_READY = ["cpuworker", "drphoenix", "portainer"]
RECORDED_CONFIG = "dev1_thinkheads_ai_app_api_settings_8e109b51"
RECORDED_HOST_HOLDER = "dev1_thinkheads_ai_app_api"  # publishes 18000/tcp in host mode


@pytest.fixture(scope="module")
def view() -> ClusterView:
    return parse_preflight((DATA / "preflight_lab.txt").read_text())


def make_stack(directory: Path, compose: dict, files: dict[str, str] | None = None, name: str = "app") -> Stack:
    """A typed Stack as the config loader builds it: each service's constraints from the
    compose file, one `default` environment with no variables."""
    directory.mkdir(parents=True, exist_ok=True)
    for rel, text in (files or {}).items():
        (directory / rel).write_text(text)
    services = {
        svc: StackService(svc, tuple((((spec.get("deploy") or {}).get("placement") or {}).get("constraints") or [])))
        for svc, spec in compose["services"].items()}
    return Stack(name=name, directory=directory, description="test stack", placement_constraints=(),
                 services=services, environments={"default": {}}, compose=compose)


def svc(image="thinkheads/api:1.0.0", constraints=None, ports=None, **extra) -> dict:
    spec = {"image": image, "deploy": {"replicas": 1}, **extra}
    if constraints:
        spec["deploy"]["placement"] = {"constraints": list(constraints)}
    if ports:
        spec["ports"] = ports
    return spec


def rendered_for(tmp_path, services: dict, env="dev9", name="app", files=None, **top):
    stack = make_stack(tmp_path / name, {"version": "3.8", "services": services, **top}, files, name)
    rendered = render(stack, env)
    return rendered, desired_services(rendered)


def holder(name: str, namespace: str, *ports: Port) -> ServiceFacts:
    return ServiceFacts(
        id="holder" + name[-4:], name=name, labels={"com.docker.stack.namespace": namespace},
        image="nginx:1.27", mode="replicated", replicas=1, constraints=(), env=(), ports=tuple(ports),
        configs=(), secrets=(), restart_condition="any", created_at=None, updated_at=None,
        update_state=None, update_started_at=None, update_message="")


def with_service(view: ClusterView, facts: ServiceFacts) -> ClusterView:
    return dataclasses.replace(view, services={**view.services, facts.name: facts})


MANAGER = VM(vmid=1001, name="portainer",
             network=NetworkConfig(ipaddress.IPv4Interface("198.18.42.11/24"), ipaddress.IPv4Address("198.18.42.1"),
                                   ipaddress.IPv4Address("198.18.42.1")),
             username="root", cores=1, memory_mb=1024, disk_size_gb=8, swarm_role="manager")


# -- the recorded read ------------------------------------------------------------

def test_parsed_view_of_the_recorded_lab(view):
    assert view.cli_version == "28.2.2"
    assert view.now == RECORDED_CLOCK
    assert {i: n.hostname for i, n in view.nodes.items()} == {
        CPUWORKER: "cpuworker", DRPHOENIX: "drphoenix", PORTAINER: "portainer"}
    assert {n.hostname: n.labels for n in view.nodes.values()} == {
        "portainer": {"zone": "core"},
        "drphoenix": {"gpu": "true", "zone": "compute"},
        "cpuworker": {"gpu": "false", "zone": "compute"},
    }
    assert {n.hostname: (n.role, n.status, n.availability, n.leader) for n in view.nodes.values()} == {
        "portainer": ("manager", "ready", "active", True),
        "drphoenix": ("worker", "ready", "active", False),
        "cpuworker": ("worker", "ready", "active", False),
    }
    assert sorted(view.networks) == [
        "bridge", "dev1_thinkheads_ai_app_backend", "docker_gwbridge", "host", "ingress", "none",
        "rb_probe_rollback_default", "t3_probe_fail_default", "t3_probe_job_default"]
    assert view.networks["dev1_thinkheads_ai_app_backend"]["Driver"] == "overlay"
    assert view.networks["dev1_thinkheads_ai_app_backend"]["Scope"] == "swarm"
    assert view.networks["ingress"]["ID"] == "r1mgjxhbx9qf"
    assert view.configs == frozenset({RECORDED_CONFIG})
    assert view.volumes == frozenset()
    assert view.secrets == frozenset()
    assert sorted(view.services) == [
        "dev1_thinkheads_ai_app_api", "dev1_thinkheads_ai_app_inference", "rb_probe_rollback_web",
        "t3_probe_fail_broken", "t3_probe_job_once"]
    api = view.services[RECORDED_HOST_HOLDER]
    assert api.ports == (Port(18000, 8000, "tcp", "host"),)
    assert api.labels["com.docker.stack.namespace"] == "dev1_thinkheads_ai_app"
    assert view.services["dev1_thinkheads_ai_app_inference"].constraints == ("node.labels.gpu == true",)


def test_parse_preflight_refuses_a_short_read():
    with pytest.raises(ValueError) as info:
        parse_preflight("28.2.2\n1\n--- phoenix ---\n[]\n")
    assert str(info.value) == "expected 7 sections from the pre-flight read, got 2"


def test_parse_time_reads_rfc3339_with_an_offset():
    utc = parse_time("2026-11-25T22:18:14.473625692Z")
    assert utc == 1795645094473625692
    assert parse_time("2026-11-25T23:18:14.473625692+01:00") == utc
    assert parse_time("2026-11-25T23:18:14+01:00") == 1795645094000000000


# -- placement ---------------------------------------------------------------------

def test_gpu_constraint_has_drphoenix_as_only_candidate(tmp_path, view):
    rendered, desired = rendered_for(tmp_path, {
        "inference": svc(constraints=["node.labels.gpu == true"]),
        "api": svc(),
    })
    pre = preflight.check(rendered, desired, view)
    assert pre.errors == [] and pre.warnings == [] and pre.host_collisions == []
    assert pre.candidates == {"dev9_app_inference": ["drphoenix"], "dev9_app_api": ALL_READY}


def test_manager_role_constraint(tmp_path, view):
    rendered, desired = rendered_for(tmp_path, {"ui": svc(constraints=["node.role == manager"])})
    assert preflight.check(rendered, desired, view).candidates == {"dev9_app_ui": ["portainer"]}


def test_constraint_no_node_satisfies_is_an_error(tmp_path, view):
    rendered, desired = rendered_for(tmp_path, {"web": svc(constraints=["node.labels.gpu == maybe"])})
    pre = preflight.check(rendered, desired, view)
    assert pre.candidates == {"dev9_app_web": []}
    assert pre.errors == [
        "service dev9_app_web: no ready, active node satisfies 'node.labels.gpu == maybe' "
        "(ready nodes: cpuworker, drphoenix, portainer)"]


def test_a_drained_node_is_no_candidate(tmp_path, view):
    drained = {i: (dataclasses.replace(n, availability="drain") if n.hostname == "drphoenix" else n)
               for i, n in view.nodes.items()}
    rendered, desired = rendered_for(tmp_path, {"inference": svc(constraints=["node.labels.gpu == true"])})
    pre = preflight.check(rendered, desired, dataclasses.replace(view, nodes=drained))
    assert pre.candidates == {"dev9_app_inference": []}
    assert pre.errors == [
        "service dev9_app_inference: no ready, active node satisfies 'node.labels.gpu == true' "
        "(ready nodes: cpuworker, portainer)"]


# -- external objects ----------------------------------------------------------------

def test_missing_external_network_is_an_error(tmp_path, view):
    rendered, desired = rendered_for(
        tmp_path, {"web": svc(networks=["shared", "backend"])},
        networks={"shared": {"external": True, "name": "phx_shared"},
                  "backend": {"external": True, "name": "dev1_thinkheads_ai_app_backend"}})
    pre = preflight.check(rendered, desired, view)
    assert pre.errors == [
        "external network 'phx_shared' does not exist (create it, e.g. "
        "`docker network create --driver overlay phx_shared`)"]
    assert pre.warnings == []


def test_missing_external_config_is_an_error(tmp_path, view):
    rendered, desired = rendered_for(
        tmp_path, {"web": svc(configs=["shared", "recorded"])},
        configs={"shared": {"external": True, "name": "shared_settings_v1"},
                 "recorded": {"external": True, "name": RECORDED_CONFIG}})
    pre = preflight.check(rendered, desired, view)
    assert pre.errors == ["external config 'shared_settings_v1' does not exist"]


def test_missing_external_secret_is_an_error(tmp_path, view):
    rendered, desired = rendered_for(
        tmp_path, {"web": svc(secrets=["token"])}, secrets={"token": {"external": True}})
    assert preflight.check(rendered, desired, view).errors == ["external secret 'token' does not exist"]


def test_content_named_configs_phoenix_creates_are_not_missing(tmp_path, view):
    rendered, desired = rendered_for(
        tmp_path, {"web": svc(configs=["settings"])}, files={"settings.json": '{"a": 1}\n'},
        configs={"settings": {"file": "./settings.json"}})
    [obj] = rendered.objects
    assert obj.name not in view.configs
    assert preflight.check(rendered, desired, view).errors == []


def test_external_volume_not_on_the_manager_is_a_warning(tmp_path, view):
    rendered, desired = rendered_for(
        tmp_path, {"web": svc(volumes=["data:/data"])}, volumes={"data": {"external": True, "name": "phx_data"}})
    pre = preflight.check(rendered, desired, view)
    assert pre.errors == []
    assert pre.warnings == [
        "external volume 'phx_data' is not on the manager; volumes are per node, "
        "so it must exist on every node its services can run on"]
    present = dataclasses.replace(view, volumes=frozenset({"phx_data"}))
    assert preflight.check(rendered, desired, present).warnings == []


# -- published ports --------------------------------------------------------------------

def test_ingress_port_held_by_another_namespace_is_an_error(tmp_path, view):
    other = with_service(view, holder("prod_web_front", "prod_web", Port(8080, 80, "tcp", "ingress")))
    rendered, desired = rendered_for(tmp_path, {"web": svc(ports=["8080:80"])})
    assert desired["dev9_app_web"].ports == (Port(8080, 80, "tcp", "ingress"),)
    pre = preflight.check(rendered, desired, other)
    assert pre.errors == [
        "service dev9_app_web: port 8080/tcp is already published by prod_web_front (stack prod_web) in "
        "ingress mode; an ingress port is cluster-wide: give this environment another port"]
    assert pre.host_collisions == []


def test_host_port_against_an_ingress_holder_is_an_error(tmp_path, view):
    other = with_service(view, holder("prod_web_front", "prod_web", Port(8080, 80, "tcp", "ingress")))
    rendered, desired = rendered_for(
        tmp_path, {"web": svc(ports=[{"target": 80, "published": 8080, "protocol": "tcp", "mode": "host"}])})
    pre = preflight.check(rendered, desired, other)
    assert pre.errors == [
        "service dev9_app_web: port 8080/tcp is already published by prod_web_front (stack prod_web) in "
        "ingress mode; an ingress port is cluster-wide: give this environment another port"]


def test_same_port_other_protocol_is_no_collision(tmp_path, view):
    other = with_service(view, holder("prod_web_front", "prod_web", Port(8080, 80, "udp", "ingress")))
    rendered, desired = rendered_for(tmp_path, {"web": svc(ports=["8080:80"])})
    pre = preflight.check(rendered, desired, other)
    assert pre.errors == [] and pre.host_collisions == []


HOST_18000 = {"target": 8000, "published": 18000, "protocol": "tcp", "mode": "host"}


def test_host_port_held_by_another_namespace_is_a_host_collision(tmp_path, view):
    rendered, desired = rendered_for(tmp_path, {"api": svc(ports=[HOST_18000])}, env="dev2")
    pre = preflight.check(rendered, desired, view)
    assert pre.errors == [] and pre.warnings == []
    assert pre.host_collisions == [("dev2_app_api", "18000/tcp", RECORDED_HOST_HOLDER)]

    preflight.host_collision_messages(pre, desired, {RECORDED_HOST_HOLDER: {"portainer"}})
    assert pre.errors == []
    assert pre.warnings == [
        "service dev2_app_api: host-mode port 18000/tcp is also published by dev1_thinkheads_ai_app_api "
        "(on portainer); the two cannot share a node: nodes left for it: cpuworker, drphoenix"]


def test_host_collision_names_replicas_wanted_beyond_the_nodes_left(tmp_path, view):
    spec = svc(ports=[HOST_18000])
    spec["deploy"]["replicas"] = 3
    rendered, desired = rendered_for(tmp_path, {"api": spec}, env="dev2")
    pre = preflight.check(rendered, desired, view)
    preflight.host_collision_messages(pre, desired, {RECORDED_HOST_HOLDER: {"portainer"}})
    assert pre.warnings == [
        "service dev2_app_api: host-mode port 18000/tcp is also published by dev1_thinkheads_ai_app_api "
        "(on portainer); the two cannot share a node: nodes left for it: cpuworker, drphoenix (3 replicas wanted)"]


def test_host_collision_holding_every_candidate_is_an_error(tmp_path, view):
    rendered, desired = rendered_for(
        tmp_path, {"api": svc(constraints=["node.labels.gpu == true"], ports=[HOST_18000])}, env="dev2")
    pre = preflight.check(rendered, desired, view)
    assert pre.candidates == {"dev2_app_api": ["drphoenix"]}
    assert pre.host_collisions == [("dev2_app_api", "18000/tcp", RECORDED_HOST_HOLDER)]
    preflight.host_collision_messages(pre, desired, {RECORDED_HOST_HOLDER: {"drphoenix"}})
    assert pre.warnings == []
    assert pre.errors == [
        "service dev2_app_api: host-mode port 18000/tcp is held by dev1_thinkheads_ai_app_api on drphoenix, "
        "and no other node its constraints allow is free"]


def test_host_collision_with_a_holder_on_no_node_yet(tmp_path, view):
    rendered, desired = rendered_for(tmp_path, {"api": svc(ports=[HOST_18000])}, env="dev2")
    pre = preflight.check(rendered, desired, view)
    preflight.host_collision_messages(pre, desired, {})
    assert pre.warnings == [
        "service dev2_app_api: host-mode port 18000/tcp is also published by dev1_thinkheads_ai_app_api "
        "(on no node yet); the two cannot share a node: nodes left for it: cpuworker, drphoenix, portainer"]


def test_port_held_by_the_same_namespace_is_no_collision(tmp_path, view):
    # A redeploy of dev1_thinkheads_ai_app: its own api holds 18000 (same service),
    # and a renamed service of the same namespace holds it too (namespace label).
    rendered, desired = rendered_for(
        tmp_path, {"api": svc(ports=[HOST_18000]), "api2": svc(ports=[HOST_18000])},
        env="dev1", name="thinkheads_ai_app")
    assert rendered.namespace == "dev1_thinkheads_ai_app"
    pre = preflight.check(rendered, desired, view)
    assert pre.errors == [] and pre.warnings == [] and pre.host_collisions == []

    same = with_service(view, holder("dev9_app_old", "dev9_app", Port(8080, 80, "tcp", "ingress")))
    rendered, desired = rendered_for(tmp_path / "again", {"web": svc(ports=["8080:80"])})
    pre = preflight.check(rendered, desired, same)
    assert pre.errors == [] and pre.host_collisions == []


# -- the deploy's plan ---------------------------------------------------------------------

SETTINGS = '{"log_level": "info"}\n'
OTHER = "listen 8080\n"
TOKEN = "s3cr3t-token-value"


def _plan_case(tmp_path, view):
    rendered, desired = rendered_for(
        tmp_path, {"web": svc(configs=["settings", "extra"], secrets=["token"])},
        files={"settings.json": SETTINGS, "extra.conf": OTHER, "token.txt": TOKEN},
        configs={"settings": {"file": "./settings.json"}, "extra": {"file": "./extra.conf"}},
        secrets={"token": {"file": "./token.txt"}})
    objects = {o.key: o for o in rendered.objects}
    # "extra" exists already on the swarm (an earlier deploy created it)
    view = dataclasses.replace(view, configs=view.configs | {objects["extra"].name})
    changes = compare(desired, {})
    pre = preflight.check(rendered, desired, view)
    return rendered, objects, view, changes, pre


def test_plan_creates_missing_configs_with_content_on_stdin(tmp_path, view):
    rendered, objects, view, changes, pre = _plan_case(tmp_path, view)
    plan = plan_deploy(rendered, MANAGER, changes, view, pre)
    assert plan.blocked == []
    assert [a.kind for a in plan.actions] == ["create-config", "create-secret", "deploy"]
    create, secret, deploy = plan.actions

    settings = objects["settings"]
    labels = {"com.docker.stack.namespace": "dev9_app", "io.phoenix.env": "dev9", "io.phoenix.stack": "app"}
    assert settings.labels == labels
    assert create.where == MANAGER and create.target == "dev9_app"
    assert create.argv == tuple(commands.object_create("config", settings.name, labels))
    assert create.argv == (
        "docker", "config", "create", "--label", "com.docker.stack.namespace=dev9_app",
        "--label", "io.phoenix.env=dev9", "--label", "io.phoenix.stack=app", "--", settings.name, "-")
    assert create.summary == f"create config {settings.name} (content of settings)"
    assert create.stdin.data == SETTINGS
    assert str(create.stdin) == f"content of config settings ({len(SETTINGS.encode())} bytes)"
    assert SETTINGS.strip() not in str(create.stdin)

    # the existing config is not created again
    assert not any(objects["extra"].name in a.argv for a in plan.actions)

    assert secret.argv == tuple(commands.object_create("secret", objects["token"].name, labels))
    assert secret.stdin.data == Secret(TOKEN)
    assert str(secret.stdin) == f"content of secret token ({len(TOKEN)} bytes)"
    assert TOKEN not in repr(plan)

    assert deploy.where == MANAGER and deploy.target == "dev9_app"
    assert deploy.argv == tuple(commands.stack_deploy("dev9_app", view.cli_version))
    assert deploy.argv == ("docker", "stack", "deploy", "--compose-file", "-", "--prune", "--with-registry-auth",
                           "--detach=true", "--", "dev9_app")
    assert deploy.stdin.data == rendered.text
    assert str(deploy.stdin) == f"rendered compose file ({len(rendered.text.encode())} bytes)"
    assert deploy.summary == f"docker stack deploy dev9_app (add 1 service; hash {rendered.hash})"


def test_plan_for_a_cli_without_detach(tmp_path, view):
    rendered, _, view, changes, pre = _plan_case(tmp_path, view)
    old = dataclasses.replace(view, cli_version="20.10.24+dfsg1")
    deploy = plan_deploy(rendered, MANAGER, changes, old, pre).actions[-1]
    assert deploy.argv == ("docker", "stack", "deploy", "--compose-file", "-", "--prune", "--with-registry-auth",
                           "--", "dev9_app")


def test_every_object_present_means_only_the_deploy(tmp_path, view):
    rendered, objects, view, changes, pre = _plan_case(tmp_path, view)
    view = dataclasses.replace(view, configs=view.configs | {o.name for o in objects.values() if o.kind == "config"},
                               secrets=frozenset({objects["token"].name}))
    plan = plan_deploy(rendered, MANAGER, changes, view, pre)
    assert [a.kind for a in plan.actions] == ["deploy"]


def test_preflight_errors_block_the_plan_and_warnings_carry_over(tmp_path, view):
    rendered, desired = rendered_for(
        tmp_path, {"web": svc(constraints=["node.labels.gpu == maybe"], volumes=["data:/data"])},
        volumes={"data": {"external": True, "name": "phx_data"}})
    pre = preflight.check(rendered, desired, view)
    plan = plan_deploy(rendered, MANAGER, compare(desired, {}), view, pre)
    assert plan.blocked == [Blocked("dev9_app", (
        "service dev9_app_web: no ready, active node satisfies 'node.labels.gpu == maybe' "
        "(ready nodes: cpuworker, drphoenix, portainer)"))]
    assert plan.warnings == [
        "external volume 'phx_data' is not on the manager; volumes are per node, "
        "so it must exist on every node its services can run on"]


# -- the deploy's deadlines --------------------------------------------------------------

class _Recorder:
    """A transport that answers every command with exit 0 and records its deadline."""

    access = dataclasses.make_dataclass("A", [("command_timeout_s", float)])(60.0)

    def __init__(self, hung_logs: bool = False):
        self.calls: list[tuple[tuple, float | None]] = []
        self.hung_logs = hung_logs

    def run(self, host, argv, *, mutating, check=True, stdin=None, quiet=False, timeout=None):
        from phoenix_tasks.core.transport import CommandResult, TimedOut, display_command
        self.calls.append((tuple(argv), timeout))
        if self.hung_logs and tuple(argv[:3]) == ("docker", "service", "logs"):
            raise TimedOut(host, display_command(argv), 60.0)
        return CommandResult(host, display_command(argv), 0, "", "")


def _deploy_failing(tmp_path, view, monkeypatch, transport, timeout_s):
    from phoenix_tasks.stack import deploy as deploy_mod
    from phoenix_tasks.stack.wait import FAILED, Verdict
    rendered, objects, view, changes, pre = _plan_case(tmp_path, view)
    from phoenix_tasks.stack.facts import StackRead
    monkeypatch.setattr(deploy_mod, "read_stack", lambda t, c, ns, manager=None: (MANAGER, StackRead({})))
    monkeypatch.setattr(deploy_mod, "read_view", lambda t, m, ns: view)
    monkeypatch.setattr(deploy_mod, "wait", lambda read, desired, **kw: {
        "dev9_app_web": Verdict("dev9_app_web", FAILED, "0/1 running", "task exited (1)")})
    return deploy_mod.deploy(transport, None, rendered, dry_run=False, timeout_s=timeout_s)


def test_only_the_stack_deploy_waits_longer_than_the_command_timeout(tmp_path, view, monkeypatch):
    transport = _Recorder()
    _deploy_failing(tmp_path, view, monkeypatch, transport, timeout_s=300)
    deadlines = {argv[:3]: timeout for argv, timeout in transport.calls}
    assert deadlines[("docker", "stack", "deploy")] == 300
    assert deadlines[("docker", "config", "create")] is None  # the access's command_timeout_s
    assert deadlines[("docker", "secret", "create")] is None
    assert deadlines[("docker", "service", "logs")] is None
    transport = _Recorder()
    _deploy_failing(tmp_path / "short", view, monkeypatch, transport, timeout_s=10)
    assert {argv[:3]: t for argv, t in transport.calls}[("docker", "stack", "deploy")] == 60  # never shorter


def test_logs_that_time_out_do_not_lose_the_outcome(tmp_path, view, monkeypatch):
    outcome = _deploy_failing(tmp_path, view, monkeypatch, _Recorder(hung_logs=True), timeout_s=300)
    assert outcome.failed == [("dev9_app_web", "task exited (1)")]
    assert outcome.logs["dev9_app_web"].startswith("(no logs: portainer (vmid 1001): `docker service logs ")
    assert "did not finish within 60 s" in outcome.logs["dev9_app_web"]


def test_the_deploys_first_read_has_services_and_their_replicas():
    from phoenix_tasks.stack import commands
    from phoenix_tasks.stack.facts import parse_stack_read
    recorded = (Path(__file__).resolve().parents[1] / "data" / "stack" / "services_probe_rollback.txt").read_text()
    (svc,) = json.loads(recorded)
    read = parse_stack_read(recorded + commands.SEPARATOR + f"\n{svc['ID'][:12]} 0/1\n")
    assert list(read.services) == ["rb_probe_rollback_web"]
    assert read.replicas == {"rb_probe_rollback_web": "0/1"} and read.behind() == {"rb_probe_rollback_web": "0/1"}
    read = parse_stack_read(recorded + commands.SEPARATOR + f"\n{svc['ID']} 3/3 (max 1 per node)\n")
    assert read.replicas == {"rb_probe_rollback_web": "3/3"} and read.behind() == {}
    assert parse_stack_read("[]\n" + commands.SEPARATOR + "\n\n").services == {}


def _paused_read(state="paused", replicas="0/1"):
    from phoenix_tasks.stack import commands
    from phoenix_tasks.stack.facts import parse_stack_read
    (svc,) = json.loads((Path(__file__).resolve().parents[1] / "data" / "stack" / "services_probe_rollback.txt").read_text())
    svc["UpdateStatus"] = {"State": state, "Message": "update paused due to failure or early termination of task x"}
    return parse_stack_read(json.dumps([svc]) + commands.SEPARATOR + f"\n{svc['ID']} {replicas}\n")


def test_a_behind_service_whose_update_swarm_paused_is_paused():
    assert _paused_read().paused() == {"rb_probe_rollback_web": "0/1"}
    assert _paused_read("rollback_paused").paused() == {"rb_probe_rollback_web": "0/1"}
    assert _paused_read("paused", "1/1").paused() == {}  # running all it should: nothing to resume
    assert _paused_read("completed").paused() == {}


@pytest.mark.parametrize("state, expect", [
    ("updating", {"rb_probe_rollback_web": "2/2, update updating"}),
    ("rollback_started", {"rb_probe_rollback_web": "2/2, update rollback_started"}),
    ("paused", {"rb_probe_rollback_web": "2/2, update paused"}),  # old tasks run all replicas: not done
    ("completed", {}), ("rollback_completed", {}),
])
def test_an_update_in_progress_or_paused_is_not_converged_whatever_the_replicas(state, expect):
    assert _paused_read(state, "2/2").in_progress() == expect


def test_an_unchanged_deploy_resumes_a_paused_update_then_waits_from_then_on(tmp_path, view, monkeypatch):
    # A disk full on a node: Swarm paused the update; once space is back nothing starts
    # the task again, and a deploy with nothing to change used to wait for nothing.
    from phoenix_tasks.stack import deploy as deploy_mod
    from phoenix_tasks.stack.wait import CONVERGED, Verdict
    rendered, objects, view, changes, pre = _plan_case(tmp_path, view)
    monkeypatch.setattr(deploy_mod, "read_stack", lambda t, c, ns, manager=None: (MANAGER, _paused_read()))
    monkeypatch.setattr(deploy_mod, "compare", lambda desired, running: [])
    monkeypatch.setattr(deploy_mod, "read_view", lambda t, m, ns: view)
    waited = {}

    def fake_wait(read, desired, **kw):
        waited.update(kw)
        return {name: Verdict(name, CONVERGED, "1/1 running") for name in desired}

    monkeypatch.setattr(deploy_mod, "wait", fake_wait)
    transport = _Recorder()
    outcome = deploy_mod.deploy(transport, None, rendered, dry_run=False)
    resume = ("docker", "service", "update", "--force", "--detach", "--", "rb_probe_rollback_web")
    assert [argv for argv, _ in transport.calls] == [resume]
    assert [a.kind for a in outcome.applied] == ["resume"] and outcome.ok
    assert waited["started"] == view.now  # the paused update's failure is history
    transport = _Recorder()
    outcome = deploy_mod.deploy(transport, None, rendered, dry_run=True)
    assert transport.calls == [] and [a.kind for a in outcome.plan.actions] == ["resume"]
