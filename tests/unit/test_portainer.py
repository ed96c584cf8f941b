"""portainer/service.py on the shipped lab config (etc/lab, stacks/): the admin password file,
the rendered document and its secret, the published port, where the server runs, and
read_status over a recorded stack read and a real loopback TLS server.  No network
beyond 127.0.0.1; nothing here connects to a VM."""

from __future__ import annotations

import dataclasses
import json
import os
import re
from pathlib import Path
from types import MappingProxyType

import pytest
import yaml

from phoenix_tasks.portainer import service as portainer
from phoenix_tasks.config import load_config
from phoenix_tasks.portainer.service import (
    PASSWORD_ENV, Password, PortainerError, PortainerStatus, ServerTask, parse_where, published_port,
    read_password, read_status, render_portainer, where_argv,
)
from phoenix_tasks.core.probe import request_bytes
from phoenix_tasks.core.secrets import Secret
from phoenix_tasks.stack import commands
from phoenix_tasks.docker.render import Rendered, object_labels
from phoenix_tasks.core.transport import CommandResult, TunnelRefused, Unreachable, shell_command

from test_probe import answer, close_at_once, reset, serve, tls_context  # noqa: F401 - fixtures

REPO = Path(__file__).resolve().parents[2]
NAMESPACE = "prod_portainer_service"
SERVER = "prod_portainer_service_portainer"
AGENT = "prod_portainer_service_agent"
PASSWORD = "correct horse battery staple"
ORIGIN = f"${PASSWORD_ENV}"
SECRET_FLAG = "--admin-password-file /run/secrets/portainer_admin_password"


@pytest.fixture(scope="module")
def config():
    return load_config(REPO / "etc" / "lab", REPO / "stacks")


def with_portainer(config, **changes):
    """The config with some of hypervisor.portainer's fields replaced."""
    p = dataclasses.replace(config.hypervisor.portainer, **changes)
    return dataclasses.replace(config, hypervisor=dataclasses.replace(config.hypervisor, portainer=p))


def password_file(tmp_path: Path, data: bytes, name: str = "admin_password") -> Path:
    path = tmp_path / name
    path.write_bytes(data)
    return path


def env_for(path: Path) -> dict[str, str]:
    return {PASSWORD_ENV: str(path)}


# -- read_password --------------------------------------------------------------------------

@pytest.mark.parametrize("data", [PASSWORD.encode(), f"{PASSWORD}\n".encode(), f"{PASSWORD}\r\n".encode()],
                         ids=["bare", "newline", "crlf"])
def test_read_password_strips_one_trailing_newline(config, tmp_path, data):
    path = password_file(tmp_path, data)
    password = read_password(config, env_for(path))
    assert isinstance(password.value, Secret)
    assert password.value.reveal() == PASSWORD
    assert password.source == f"file {path}"
    assert str(password.value) == "***" and f"{password.value}" == "***"
    assert PASSWORD not in repr(password) and PASSWORD not in str(password)


def test_read_password_takes_exactly_twelve_characters(config, tmp_path):
    path = password_file(tmp_path, b"abcdefghijkl\n")
    assert read_password(config, env_for(path)).value.reveal() == "abcdefghijkl"


def test_no_password_configured_is_none(config):
    assert config.hypervisor.portainer.admin_password_file is None
    assert read_password(config, {}) is None
    assert read_password(config, {PASSWORD_ENV: ""}) is None  # an empty variable is not a file


BAD_FILES = {
    # id: (content or None for no file, what the message says, text that must not appear)
    "missing": (None, "file not found", None),
    "empty": (b"", "the file is empty", None),
    "only-a-newline": (b"\n", "the file is empty", None),
    "two-lines": (b"first-line-secret\nsecond-line-secret\n", "the password must be one line", "line-secret"),
    "two-trailing-newlines": (b"a-long-enough-secret\n\n", "the password must be one line", "long-enough"),
    "carriage-return-inside": (b"a-long-enough\rsecret", "the password must be one line", "long-enough"),
    "not-utf8": (b"latin1-secret-\xe9\xe9\xe9", "not UTF-8 text", "latin1-secret"),
    "too-short": (b"s3cr3t-pw\n", "Portainer needs at least 12 characters, the file holds 9", "s3cr3t"),
}


@pytest.mark.parametrize("case", BAD_FILES, ids=list(BAD_FILES))
def test_a_bad_password_file_is_refused_naming_the_file_and_never_the_password(config, tmp_path, case):
    data, says, hidden = BAD_FILES[case]
    path = tmp_path / "admin_password" if data is None else password_file(tmp_path, data)
    with pytest.raises(PortainerError) as info:
        read_password(config, env_for(path))
    message = str(info.value)
    assert message == f"Portainer admin password file {path} ({ORIGIN}): {says}"
    if hidden:
        assert hidden not in message
    exc = info.value  # no chained exception (a traceback would show it) carries the content either
    assert exc.__cause__ is None and (exc.__context__ is None or exc.__suppress_context__)


def test_a_directory_as_password_file_is_refused(config, tmp_path):
    with pytest.raises(PortainerError) as info:
        read_password(config, env_for(tmp_path))
    assert str(info.value).startswith(f"Portainer admin password file {tmp_path} ({ORIGIN}): ")


def test_a_fifo_as_password_file_is_refused_without_blocking(config, tmp_path):
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)  # nobody writes: a plain open() for reading would hang here
    with pytest.raises(PortainerError) as info:
        read_password(config, env_for(fifo))
    assert str(info.value).startswith(f"Portainer admin password file {fifo} ({ORIGIN}): ")


def test_the_configured_file_is_read_without_the_variable(config, tmp_path):
    path = password_file(tmp_path, f"{PASSWORD}\n".encode())
    password = read_password(with_portainer(config, admin_password_file=path), {})
    assert password.value.reveal() == PASSWORD and password.source == f"file {path}"


def test_the_variable_wins_over_the_configured_file(config, tmp_path):
    from_env = password_file(tmp_path, b"from-the-environment\n", "env")
    from_config = password_file(tmp_path, b"from-the-config-file\n", "cfg")
    password = read_password(with_portainer(config, admin_password_file=from_config), env_for(from_env))
    assert password.value.reveal() == "from-the-environment"
    assert password.source == f"file {from_env}"


def test_a_bad_configured_file_names_the_config_pointer(config, tmp_path):
    missing = tmp_path / "nope"
    configured = with_portainer(config, admin_password_file=missing)
    with pytest.raises(PortainerError) as info:
        read_password(configured, {})
    assert str(info.value) == (f"Portainer admin password file {missing} "
                               f"({config.hypervisor_file}: /portainer/admin_password_file): file not found")
    assert PASSWORD_ENV not in str(info.value)


# -- render_portainer -----------------------------------------------------------------------

def pw(text: str = PASSWORD) -> Password:
    return Password("file test", Secret(text))


def test_render_without_password(config):
    rendered = render_portainer(config, None)
    assert (rendered.stack, rendered.env, rendered.namespace) == ("portainer_service", "prod", NAMESPACE)
    assert "secrets" not in rendered.document
    assert rendered.objects == ()
    assert sorted(rendered.services) == ["agent", "portainer"]
    for role, image in config.hypervisor.portainer.images.items():
        assert rendered.services[role]["image"] == image
    server = rendered.services["portainer"]
    assert "secrets" not in server
    assert server["command"] == "-H tcp://tasks.agent:9001 --tlsskipverify --log-level WARN"  # prod's level
    assert "admin-password" not in rendered.text
    assert yaml.safe_load(rendered.text)["services"]["portainer"]["deploy"]["labels"]["io.phoenix.env"] == "prod"


def test_pinned_images_replace_the_compose_files(config):
    # etc/lab pins the images the compose file names: pin others to see the pin win.
    pinned = {"portainer": "registry.example/portainer-ce:9.9.9", "agent": "registry.example/agent:9.9.9"}
    rendered = render_portainer(with_portainer(config, images=pinned), None)
    assert {role: s["image"] for role, s in rendered.services.items()} == pinned
    assert rendered.hash != render_portainer(config, None).hash
    assert "portainer/portainer-ce:2.21.4" not in rendered.text


def test_render_with_password_adds_one_content_named_secret(config):
    rendered = render_portainer(config, pw())
    [obj] = rendered.objects
    assert (obj.kind, obj.key) == ("secret", "portainer_admin_password")
    assert re.fullmatch(r"prod_portainer_service_portainer_admin_password_[0-9a-f]{8}", obj.name)
    assert isinstance(obj.content, Secret) and obj.content.reveal() == PASSWORD
    assert obj.labels == object_labels(NAMESPACE, "prod", "portainer_service")
    assert rendered.document["secrets"] == {"portainer_admin_password": {"external": True, "name": obj.name}}
    server, agent = rendered.services["portainer"], rendered.services["agent"]
    assert server["secrets"] == [{"source": "portainer_admin_password", "target": "portainer_admin_password",
                                  "mode": 0o400}]
    assert server["command"] == f"-H tcp://tasks.agent:9001 --tlsskipverify --log-level WARN {SECRET_FLAG}"
    assert "secrets" not in agent
    sent = yaml.safe_load(rendered.text)  # what docker reads: the same secret, mode 0400
    assert sent["secrets"] == {"portainer_admin_password": {"external": True, "name": obj.name}}
    assert sent["services"]["portainer"]["secrets"][0]["mode"] == 0o400
    assert sent["services"]["portainer"]["command"].endswith(SECRET_FLAG)


def test_the_password_is_never_in_the_document_or_its_text(config):
    rendered = render_portainer(config, pw())
    assert PASSWORD not in rendered.text
    assert PASSWORD not in repr(rendered.document)
    assert PASSWORD not in repr(rendered.objects) and PASSWORD not in repr(rendered)


def test_the_secret_name_and_the_hash_follow_the_password(config):
    one, again, other = render_portainer(config, pw()), render_portainer(config, pw()), render_portainer(
        config, pw("another password, longer"))
    assert one.objects[0].name == again.objects[0].name and one.hash == again.hash and one.text == again.text
    assert one.objects[0].name != other.objects[0].name
    assert one.hash != other.hash
    assert one.hash != render_portainer(config, None).hash


def test_render_with_a_password_does_not_change_the_next_render(config):
    render_portainer(config, pw())
    after = render_portainer(config, None)
    assert "secrets" not in after.document and "secrets" not in after.services["portainer"]
    assert after.hash == render_portainer(config, None).hash
    assert "secrets" not in config.stacks["portainer_service"].compose["services"]["portainer"]


@pytest.mark.parametrize("command, expected", [
    (["-H", "tcp://tasks.agent:9001"], ["-H", "tcp://tasks.agent:9001", "--admin-password-file",
                                        "/run/secrets/portainer_admin_password"]),
    (None, ["--admin-password-file", "/run/secrets/portainer_admin_password"]),
], ids=["list", "none"])
def test_the_flag_is_appended_to_a_list_command_or_is_the_command(config, command, expected):
    stack = config.stacks["portainer_service"]
    compose = json.loads(json.dumps(stack.compose))  # a deep copy of plain data
    if command is None:
        del compose["services"]["portainer"]["command"]
    else:
        compose["services"]["portainer"]["command"] = command
    stacks = {**config.stacks, "portainer_service": dataclasses.replace(stack, compose=compose)}
    rendered = render_portainer(dataclasses.replace(config, stacks=stacks), pw())
    assert rendered.services["portainer"]["command"] == expected


# -- published_port ---------------------------------------------------------------------------

def test_published_port_of_the_shipped_stack(config):
    assert published_port(render_portainer(config, None)) == 9443
    assert published_port(render_portainer(config, pw())) == 9443


def rendered_with_ports(ports) -> Rendered:
    return Rendered("portainer_service", "prod", NAMESPACE, {"services": {"portainer": {"ports": ports}}},
                    "", "0" * 12, (), ())


@pytest.mark.parametrize("ports, port", [
    (["8443:9443"], 8443),
    (["127.0.0.1:18443:9443/tcp"], 18443),
    (["9000:9000", "19443:9443"], 19443),
    ([{"target": 9000, "published": 9000}, {"target": 9443, "published": 29443, "mode": "host"}], 29443),
    ([{"target": 9443, "published": "9443"}], 9443),
    (["9000:9000"], 9000),  # no HTTPS target: the first published port
], ids=["short", "short-ip-proto", "short-second", "long-second", "long-string", "first-published"])
def test_published_port_reads_short_and_long_syntax(ports, port):
    assert published_port(rendered_with_ports(ports)) == port


@pytest.mark.parametrize("ports", [None, [], ["9443"], [{"target": 9443}]],
                         ids=["none", "empty", "target-only", "long-unpublished"])
def test_no_published_port_is_an_error_saying_what_to_add(ports):
    with pytest.raises(PortainerError) as info:
        published_port(rendered_with_ports(ports))
    assert str(info.value) == ("stack 'portainer_service': service 'portainer' publishes no port "
                               "(it needs `ports: [{target: 9443, published: 9443, mode: host}]`)")


# -- where the server runs, and the status record ---------------------------------------------

def test_where_argv_passes_the_service_as_an_argument():
    argv = where_argv("x; rm -rf /")
    assert argv == ["sh", "-c", portainer.WHERE_SCRIPT, "phoenix", "x; rm -rf /"]
    assert "rm -rf" not in argv[2]


def test_parse_where_reads_state_address_and_hostname():
    assert parse_where("running 198.18.42.11 portainer\n") == [ServerTask("running", "198.18.42.11", "portainer")]


def test_parse_where_skips_lines_that_are_not_three_fields():
    stdout = ("\n   \nError: No such service: x\nrunning 198.18.42.11\n"
              "preparing 198.18.42.12 drphoenix\nrunning 198.18.42.11 portainer extra\n"
              "running 198.18.42.11 portainer\n")
    assert parse_where(stdout) == [ServerTask("preparing", "198.18.42.12", "drphoenix"),
                                   ServerTask("running", "198.18.42.11", "portainer")]
    assert parse_where("") == []


def test_status_to_dict(config):
    manager = config.managers[0]
    status = PortainerStatus(NAMESPACE, True, MappingProxyType({SERVER: "1/1"}), manager,
                             url="https://198.18.42.11:9443", answers=True, detail="answers", version="2.21.4")
    d = status.to_dict()
    assert d == {"namespace": NAMESPACE, "deployed": True, "replicas": {SERVER: "1/1"},
                 "url": "https://198.18.42.11:9443", "answers": True, "detail": "answers",
                 "version": "2.21.4", "read_from": "portainer"}
    assert type(d["replicas"]) is dict
    assert json.loads(json.dumps(d)) == d
    assert PortainerStatus(NAMESPACE, False, {}).to_dict() == {
        "namespace": NAMESPACE, "deployed": False, "replicas": {}, "url": None, "answers": False,
        "detail": "", "version": None, "read_from": None}


# -- read_status ------------------------------------------------------------------------------

def stack_read(*services: tuple[str, str, str]) -> str:
    """STACK_SERVICES_SCRIPT's output: (id, name, replicas) per service."""
    inspect = [{"ID": ident, "Spec": {"Name": name, "Labels": {"com.docker.stack.namespace": NAMESPACE}}}
               for ident, name, _ in services]
    rows = "".join(f"{ident[:12]} {replicas}\n" for ident, _, replicas in services)
    return f"{json.dumps(inspect, indent=4)}\n{commands.SEPARATOR}\n{rows}"


DEPLOYED = stack_read(("a" * 25, AGENT, "3/3"), ("p" * 25, SERVER, "1/1"))
RUNNING_ON_PORTAINER = "running 198.18.42.11 portainer\n"


class Recorded:
    """A transport answering recorded outputs (an unrecorded command fails the test);
    tunnel() returns `stream`, or raises it when it is an exception."""

    def __init__(self, outputs: dict[tuple, str], stream=None):
        self.outputs, self.stream = outputs, stream
        self.runs: list[tuple[str, tuple, bool]] = []
        self.tunnels: list[tuple[str, str, int]] = []

    def run(self, host, argv, *, mutating, check=True, stdin=None, **kw):
        self.runs.append((host.name, tuple(argv), mutating))
        if tuple(argv) not in self.outputs:
            pytest.fail(f"unrecorded command on {host}: {shell_command(argv)}")
        return CommandResult(host, shell_command(argv), 0, self.outputs[tuple(argv)], "")

    def tunnel(self, host, address, port):
        self.tunnels.append((host.name, address, port))
        if isinstance(self.stream, BaseException):
            raise self.stream
        return self.stream


def recorded(stack_stdout: str, where_stdout: str | None = None, stream=None) -> Recorded:
    outputs = {tuple(commands.stack_services(NAMESPACE)): stack_stdout}
    if where_stdout is not None:
        outputs[tuple(where_argv(SERVER))] = where_stdout
    return Recorded(outputs, stream)


def status_reply(status: str, body: bytes) -> bytes:
    return f"HTTP/1.1 {status}\r\nContent-Type: application/json\r\n\r\n".encode() + body


def test_read_status_of_a_server_that_answers(config, serve, tls_context):
    server, stream = serve(answer(status_reply("200 OK", b'{"Version": "2.21.4"}')), tls_context)
    t = recorded(DEPLOYED, RUNNING_ON_PORTAINER, stream)
    status = read_status(t, config, 9443, timeout_s=5)
    assert (status.namespace, status.deployed, status.answers, status.version) == (NAMESPACE, True, True, "2.21.4")
    assert status.replicas == {AGENT: "3/3", SERVER: "1/1"}
    assert status.manager.name == "portainer"
    assert status.url == "https://198.18.42.11:9443"
    assert status.detail == "answers on https://198.18.42.11:9443 (node portainer, HTTP 200, Portainer 2.21.4)"
    assert t.tunnels == [("portainer", "198.18.42.11", 9443)]
    assert [(vm, mutating) for vm, _, mutating in t.runs] == [("portainer", False), ("portainer", False)]
    assert stream.fileno() == -1  # read_status closed the stream
    server.served.wait(5)
    assert server.requests == [request_bytes("198.18.42.11", "/api/system/status")]
    assert status.to_dict()["read_from"] == "portainer"


def test_read_status_of_an_error_reply_does_not_answer(config, serve, tls_context):
    _, stream = serve(answer(status_reply("503 Service Unavailable", b"<html/>")), tls_context)
    status = read_status(recorded(DEPLOYED, RUNNING_ON_PORTAINER, stream), config, 9443, timeout_s=5)
    assert (status.answers, status.version) == (False, None)
    assert status.detail == "answers on https://198.18.42.11:9443 (node portainer, HTTP 503)"


def test_read_status_when_the_tunnel_is_refused(config):
    refused = TunnelRefused("portainer (vmid 1001): cannot connect to 198.18.42.11:9443 from the VM: "
                            "connection refused or no route: nothing listens there")
    status = read_status(recorded(DEPLOYED, RUNNING_ON_PORTAINER, refused), config, 9443)
    assert status.deployed and not status.answers and status.version is None
    assert status.url == "https://198.18.42.11:9443"
    assert status.detail == f"does not answer on https://198.18.42.11:9443 (node portainer): {refused}"


def test_read_status_when_ssh_fails_for_the_tunnel_raises(config):
    with pytest.raises(Unreachable, match="cannot reach"):
        read_status(recorded(DEPLOYED, RUNNING_ON_PORTAINER,
                             Unreachable("portainer (vmid 1001): cannot reach 198.18.42.11:22 over SSH")),
                    config, 9443)


def test_read_status_when_the_server_closes_during_the_handshake(config, serve):
    server, stream = serve(close_at_once)
    server.served.wait(5)
    status = read_status(recorded(DEPLOYED, RUNNING_ON_PORTAINER, stream), config, 9443, timeout_s=5)
    assert not status.answers
    assert status.detail.startswith("does not answer HTTPS on https://198.18.42.11:9443 (node portainer): ")
    assert stream.fileno() == -1


def test_read_status_when_the_server_resets_the_connection(config, serve):
    server, stream = serve(reset)
    server.served.wait(5)
    status = read_status(recorded(DEPLOYED, RUNNING_ON_PORTAINER, stream), config, 9443, timeout_s=5)
    assert not status.answers
    assert status.detail == ("does not answer HTTPS on https://198.18.42.11:9443 (node portainer): "
                             "the connection broke: Connection reset by peer")
    assert stream.fileno() == -1


def test_read_status_when_not_deployed(config):
    t = recorded(stack_read())
    status = read_status(t, config, 9443)
    assert (status.deployed, status.answers, status.url, status.replicas) == (False, False, None, {})
    assert status.detail == f"not deployed: no service {SERVER} (inv portainer.deploy)"
    assert "not deployed" in status.detail
    assert len(t.runs) == 1 and t.tunnels == []


def test_read_status_when_the_server_has_no_running_task(config):
    t = recorded(DEPLOYED, "preparing 198.18.42.11 portainer\n")
    status = read_status(t, config, 9443)
    assert status.deployed and not status.answers and status.url is None
    assert status.detail == f"{SERVER} has no running task"
    assert t.tunnels == []


def test_a_password_file_others_can_read_is_a_warning(config, tmp_path):
    """Issue 21: mode 0644 was accepted silently; ssh warns for a key like that."""
    path = password_file(tmp_path, PASSWORD.encode())
    path.chmod(0o644)
    password = read_password(config, env_for(path))
    assert password.warnings == (f"Portainer admin password file {path} ($PHOENIX_PORTAINER_ADMIN_PASSWORD_FILE) "
                                 f"can be read by others (mode 0644): chmod 600 {path}",)
    assert PASSWORD not in str(password.warnings)
    path.chmod(0o600)
    assert read_password(config, env_for(path)).warnings == ()
