"""The Proxmox API HTTP client against `RecordedProxmoxApi`: a loopback HTTPS server
(127.0.0.1 only, a throwaway self-signed certificate) that replays the recorded
answers of tests/data/proxmox by method and path and records what it was sent.  It is
not a Proxmox host: it knows only the recorded answers."""

from __future__ import annotations

import dataclasses
import json
import logging
import socket
import ssl
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qsl, urlsplit

import pytest

from phoenix_tasks.core.errors import PhoenixError
from phoenix_tasks.core.model import ProxmoxSettings
from phoenix_tasks.providers.proxmox import api
from phoenix_tasks.providers.proxmox.http import Client
from phoenix_tasks.providers.proxmox.task_wait import ApiError, wait_task
from phoenix_tasks.providers.proxmox.token import api_token

from proxmox_recorded import data, recorded
from proxmox_sim import make_cert

SECRET = "5f0c3d1e-7a2b-4c9d-8e6f-0123456789ab"
TOKEN_ENV = {"PHOENIX_PROXMOX_API_TOKEN": f"root@pam!phoenix={SECRET}"}
UPID = data("clone_response.json")
UPID_WIRE = "UPID%3Aphoenix%3A000A1B2C%3A01F2E3D4%3A6650A1B2%3Aqmclone%3A9000%3Aroot%40pam%21phoenix%3A"


@dataclasses.dataclass(frozen=True)
class Sent:
    method: str
    path: str  # as on the wire, quoted, without the query
    query: tuple[tuple[str, str], ...]
    body: bytes
    headers: dict


class RecordedProxmoxApi:
    """Replays recorded Proxmox API documents by (method, path under /api2/json); a
    route given several documents answers them in turn, repeating the last.  A
    document with `_http` is an error: that status, its reason in the status line (as
    pveproxy does), the rest as the JSON body.  An unrecorded request answers 501."""

    def __init__(self, cert, key, routes: dict[tuple[str, str], list]):
        self.routes = {k: list(v) for k, v in routes.items()}
        self.sent: list[Sent] = []
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def _answer(self):
                url = urlsplit(self.path)
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                server.sent.append(Sent(self.command, url.path, tuple(parse_qsl(url.query)), body,
                                        dict(self.headers)))
                docs = server.routes.get((self.command, url.path.removeprefix("/api2/json")))
                if not docs:
                    self.send_response(501, f"unrecorded: {self.command} {url.path}")
                    self.end_headers()
                    return
                doc = docs.pop(0) if len(docs) > 1 else docs[0]
                doc = recorded(doc) if isinstance(doc, str) else doc
                status = doc.get("_http", {"status": 200, "reason": "OK"})
                payload = json.dumps({k: v for k, v in doc.items() if not k.startswith("_")}).encode()
                self.send_response(status["status"], status["reason"])
                self.send_header("Content-Type", "application/json;charset=UTF-8")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            do_GET = do_POST = do_PUT = _answer

        class Server(ThreadingHTTPServer):
            daemon_threads = True

            def handle_error(self, request, client_address):
                pass  # a client that refuses the certificate is the test, not an error

        self.httpd = Server(("127.0.0.1", 0), Handler)
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(cert, key)
        self.httpd.socket = ctx.wrap_socket(self.httpd.socket, server_side=True)
        self.port = self.httpd.server_address[1]
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(5)


@pytest.fixture(scope="module")
def cert(tmp_path_factory):
    return make_cert(tmp_path_factory.mktemp("pve-cert"))


def settings(port, **kw) -> ProxmoxSettings:
    return ProxmoxSettings(host="127.0.0.1", node="phoenix", ssh_user="root", ssh_port=22,
                           api_token_env="PHOENIX_PROXMOX_API_TOKEN", api_port=port, **kw)


def client(port, **kw) -> Client:
    s = settings(port, **kw)
    return Client(s, api_token(s, TOKEN_ENV), timeout_s=5)


@pytest.fixture
def serve(cert):
    def make(routes):
        return RecordedProxmoxApi(*cert, routes)
    return make


def test_get_with_query_sends_the_token_header_and_returns_data(serve, cert, caplog):
    caplog.set_level(logging.DEBUG)
    with serve({("GET", "/cluster/resources"): ["cluster_resources_vm.json"]}) as pve:
        c = client(pve.port, ca_file=cert[0])
        answer = c.request(api.cluster_vms())
    assert answer == data("cluster_resources_vm.json")
    [sent] = pve.sent
    assert (sent.method, sent.path, sent.query, sent.body) == ("GET", "/api2/json/cluster/resources",
                                                               (("type", "vm"),), b"")
    assert sent.headers["Authorization"] == f"PVEAPIToken=root@pam!phoenix={SECRET}"
    assert SECRET not in repr(c) + str(c) and "***" in repr(c)
    assert SECRET not in caplog.text and "GET /cluster/resources" in caplog.text


def test_post_and_put_send_a_form_body_on_the_exact_path(serve, cert):
    routes = {("POST", "/nodes/phoenix/qemu/9000/clone"): ["clone_response.json"],
              ("PUT", "/nodes/phoenix/qemu/1002/resize"): [{"data": UPID}]}
    with serve(routes) as pve:
        c = client(pve.port, ca_file=cert[0])
        assert c.request(api.clone("phoenix", 9000, 1002, "drphoenix", storage="local-lvm")) == UPID
        assert c.request(api.resize("phoenix", 1002, "scsi0", 32)) == UPID
    clone, resize = pve.sent
    assert (clone.method, clone.path, clone.query) == ("POST", "/api2/json/nodes/phoenix/qemu/9000/clone", ())
    assert clone.headers["Content-Type"] == "application/x-www-form-urlencoded"
    assert clone.body == b"newid=1002&name=drphoenix&full=1&storage=local-lvm"
    assert (resize.method, resize.path, resize.body) == ("PUT", "/api2/json/nodes/phoenix/qemu/1002/resize",
                                                         b"disk=scsi0&size=32G")


def test_a_task_status_path_is_quoted_once_on_the_wire(serve, cert):
    with serve({("GET", f"/nodes/phoenix/tasks/{UPID_WIRE}/status"): ["task_status_ok.json"]}) as pve:
        assert client(pve.port, ca_file=cert[0]).request(api.task_status("phoenix", UPID))["exitstatus"] == "OK"
    assert [s.path for s in pve.sent] == [f"/api2/json/nodes/phoenix/tasks/{UPID_WIRE}/status"]


def test_tls_is_verified_by_default_and_the_ca_file_is_the_trust_anchor(serve, cert):
    with serve({("GET", "/cluster/resources"): ["cluster_resources_vm.json"]}) as pve:
        with pytest.raises(PhoenixError) as refused:
            client(pve.port).request(api.cluster_vms())
        assert client(pve.port, ca_file=cert[0]).request(api.cluster_vms())
        assert client(pve.port, verify_tls=False).request(api.cluster_vms())
    msg = str(refused.value)
    assert f"127.0.0.1:{pve.port}" in msg and "TLS certificate not verified" in msg and "ca_file" in msg
    assert "\n" not in msg and SECRET not in msg
    assert len(pve.sent) == 2  # the refused handshake sent nothing, not even the token


def test_an_unreadable_ca_file_is_named(tmp_path):
    with pytest.raises(PhoenixError, match="proxmox.ca_file .*missing.pem cannot be used"):
        client(8006, ca_file=tmp_path / "missing.pem")


def test_an_http_500_is_an_api_error_with_proxmox_reason(serve, cert):
    routes = {("POST", "/nodes/phoenix/qemu/1002/status/start"): ["error_vm_locked_clone.json"]}
    with serve(routes) as pve:
        with pytest.raises(ApiError) as err:
            client(pve.port, ca_file=cert[0]).request(api.start("phoenix", 1002))
    assert (err.value.status, err.value.reason, err.value.lock) == (500, "VM is locked (clone)", "clone")
    assert str(err.value) == "HTTP 500: VM is locked (clone)" and SECRET not in repr(err.value)


def test_a_parameter_error_carries_the_json_errors(serve, cert):
    bad = {"_http": {"status": 400, "reason": "Parameter verification failed."},
           "data": None, "errors": {"size": "unable to parse size '32X'"}}
    with serve({("PUT", "/nodes/phoenix/qemu/1002/resize"): [bad]}) as pve:
        with pytest.raises(ApiError) as err:
            client(pve.port, ca_file=cert[0]).request(api.resize("phoenix", 1002, "scsi0", 32))
    assert err.value.status == 400
    assert err.value.reason == "Parameter verification failed. (size: unable to parse size '32X')"


def test_wait_task_through_the_client_running_then_ok(serve, cert):
    path = f"/nodes/phoenix/tasks/{UPID_WIRE}/status"
    routes = {("GET", path): ["task_status_running.json", "task_status_running.json", "task_status_ok.json"]}
    now, slept = [0.0], []

    def sleep(s):
        slept.append(s)
        now[0] += s

    with serve(routes) as pve:
        c = client(pve.port, ca_file=cert[0])
        result = wait_task(lambda: c.request(api.task_status("phoenix", UPID)), timeout_s=60, interval_s=2,
                           clock=lambda: now[0], sleep=sleep)
    assert (result.ok, result.exitstatus, result.polls, result.upid) == (True, "OK", 3, UPID)
    assert slept == [2, 2] and [s.path for s in pve.sent] == [f"/api2/json{path}"] * 3


def test_a_refused_connection_is_one_line_naming_host_and_port():
    with socket.socket() as s:  # a loopback port that nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with pytest.raises(PhoenixError) as err:
        client(port, verify_tls=False).request(api.cluster_vms())
    msg = str(err.value)
    assert msg == f"cannot reach the Proxmox API at 127.0.0.1:{port}: Connection refused"
    assert err.value.__suppress_context__ and SECRET not in msg


def test_an_api_that_never_answers_times_out_in_one_line(cert):
    """A listener on loopback that accepts and says nothing (a hung pveproxy): the
    client gives up after its timeout with one line naming host:port."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(1)
        port = listener.getsockname()[1]
        s = settings(port, ca_file=cert[0])
        c = Client(s, api_token(s, TOKEN_ENV), timeout_s=0.5)
        with pytest.raises(PhoenixError) as err:
            c.request(api.cluster_vms())
    assert str(err.value) == f"cannot reach the Proxmox API at 127.0.0.1:{port}: no answer within 0.5 s"
    assert SECRET not in str(err.value)
