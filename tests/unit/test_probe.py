"""probe.py over real loopback servers (plain and TLS, in a thread of the test): the
request sent, the reply parsed, and every way a server can fail to answer as HTTP
ending as one ProbeFailed line.  No network beyond 127.0.0.1.

The servers here (`Server`, `serve`, `tls_context`) are also used by test_portainer.py."""

from __future__ import annotations

import shutil
import socket
import ssl
import struct
import subprocess
import threading
from pathlib import Path
from typing import Callable

import pytest

from phoenix_tasks.core.probe import MAX_REPLY, ProbeFailed, Reply, http_get, https_get, parse_reply, request_bytes

HOST = "198.18.42.11"
PATH = "/api/system/status"
STATUS_JSON = b'{"Version": "2.21.4", "InstanceID": "x"}'
OK_REPLY = (b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nX-Thing:  spaced value \r\n\r\n"
            + STATUS_JSON)


# -- loopback servers -----------------------------------------------------------------------

def read_request(conn) -> bytes:
    """What the client sent, up to the end of its header; a first byte that is not
    "G" (a TLS ClientHello sent to a plain server) ends the read at once."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = conn.recv(4096)
        if not chunk:
            break
        data += chunk
        if data[:1] != b"G":
            break
    return data


class Server:
    """A server on 127.0.0.1 (TLS when given a context) that serves each connection
    it accepts with `handler(server, conn)`, one after the other, in a thread (from
    start() on: the kernel completes a connection to the listener before that)."""

    def __init__(self, handler: Callable, tls: ssl.SSLContext | None = None):
        self.handler, self.tls = handler, tls
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.requests: list[bytes] = []
        self.errors: list[BaseException] = []
        self.stop = threading.Event()
        self.served = threading.Event()  # set once a connection's handler has returned
        self.thread = threading.Thread(target=self._serve, daemon=True)

    def start(self) -> None:
        self.thread.start()

    def _serve(self) -> None:
        while not self.stop.is_set():
            try:
                conn, _ = self.listener.accept()
            except OSError:
                return  # shut down by close()
            conn.settimeout(5)
            try:
                if self.tls is not None:
                    conn = self.tls.wrap_socket(conn, server_side=True)
                self.handler(self, conn)
            except OSError as exc:  # ssl.SSLError included: the client went away
                self.errors.append(exc)
            finally:
                conn.close()
                self.served.set()

    def close(self) -> None:
        self.stop.set()
        try:
            self.listener.shutdown(socket.SHUT_RDWR)  # wakes the accept() (Linux)
        except OSError:
            pass
        self.listener.close()
        if self.thread.is_alive():
            self.thread.join(10)


@pytest.fixture
def serve():
    """serve(handler, tls=None) -> (Server, a client socket connected to it).  Client
    sockets are closed before the servers stop (a server blocked in sendall ends)."""
    servers, clients = [], []

    def start(handler, tls=None):
        server = Server(handler, tls)
        servers.append(server)
        # Connected before the server thread runs: a handler that resets at once
        # would otherwise reach connect() itself.
        client = socket.create_connection(("127.0.0.1", server.port), timeout=5)
        clients.append(client)
        server.start()
        return server, client

    yield start
    for client in clients:
        client.close()
    for server in servers:
        server.close()


@pytest.fixture(scope="module")
def tls_context(tmp_path_factory) -> ssl.SSLContext:
    """A server context with a self-signed certificate made by the openssl CLI."""
    if shutil.which("openssl") is None:
        pytest.skip("the openssl CLI is not installed")
    d: Path = tmp_path_factory.mktemp("cert")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
                    "-nodes", "-days", "1", "-subj", "/CN=test", "-keyout", "k.pem", "-out", "c.pem"],
                   cwd=d, check=True, capture_output=True, timeout=60)
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(d / "c.pem", d / "k.pem")
    return ctx


def answer(reply: bytes, *, close_notify: bool = False):
    """A handler: read the request, record it, send `reply`, close."""
    def handler(server, conn):
        server.requests.append(read_request(conn))
        conn.sendall(reply)
        if close_notify:
            conn.unwrap()
    return handler


def silent(server, conn):
    """Accepts, reads nothing, answers nothing, until the test ends."""
    server.stop.wait(10)


def close_at_once(server, conn):
    pass


def reset(server, conn):
    """Closes with a TCP reset (SO_LINGER 0)."""
    conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))


def trickle(server, conn):
    """A status line, then one byte every 50 ms: never a complete reply."""
    server.requests.append(read_request(conn))
    conn.sendall(b"HTTP/1.0 200 OK\r\n")
    while not server.stop.wait(0.05):
        conn.sendall(b"x")


def flood(server, conn):
    """A 200 whose body (8 MiB) is far larger than MAX_REPLY."""
    server.requests.append(read_request(conn))
    conn.sendall(b"HTTP/1.0 200 OK\r\n\r\n" + b"x" * (8 * 1024 * 1024))


GETS = [http_get, https_get]


def plain_or_tls(get, tls_context):
    return tls_context if get is https_get else None


# -- request_bytes --------------------------------------------------------------------------

def test_request_bytes_is_one_http10_get_that_asks_the_server_to_close():
    assert request_bytes(HOST, PATH) == (
        b"GET /api/system/status HTTP/1.0\r\nHost: 198.18.42.11\r\nUser-Agent: phoenix-probe\r\n"
        b"Accept: application/json\r\nConnection: close\r\n\r\n")


def test_request_bytes_takes_a_plain_query():
    assert request_bytes("h", "/a/b.c?x=1&y=%20-_~").startswith(b"GET /a/b.c?x=1&y=%20-_~ HTTP/1.0\r\n")


@pytest.mark.parametrize("path", [
    "/a b", "/a\r\nX-Injected: 1", "/a\n", "/a\r", "a/relative", "", "/caf\u00e9", "/a#frag", "/a\tb",
], ids=["space", "crlf-header-injection", "lf", "cr", "relative", "empty", "non-ascii", "fragment", "tab"])
def test_request_bytes_refuses_a_path_that_is_not_plain(path):
    with pytest.raises(ValueError, match="not a plain request path"):
        request_bytes(HOST, path)


# -- parse_reply and Reply.json --------------------------------------------------------------

def test_parse_reply_reads_status_reason_headers_and_body():
    reply = parse_reply(OK_REPLY, "TLSv1.3")
    assert (reply.status, reply.reason, reply.tls) == (200, "OK", "TLSv1.3")
    assert reply.headers == {"content-type": "application/json", "x-thing": "spaced value"}
    assert reply.body == STATUS_JSON
    assert reply.json() == {"Version": "2.21.4", "InstanceID": "x"}


def test_parse_reply_with_bare_newlines_and_no_reason():
    reply = parse_reply(b"HTTP/1.0 204\nServer: x\n\nbody\n\nmore")
    assert (reply.status, reply.reason, reply.headers, reply.body, reply.tls) == (
        204, "", {"server": "x"}, b"body\n\nmore", None)


def test_parse_reply_with_bare_newlines_ends_the_header_at_the_first_blank_line():
    reply = parse_reply(b"HTTP/1.0 200 OK\nServer: x\n\n{\"a\":\r\n\r\n1}")
    assert reply.headers == {"server": "x"}
    assert reply.body == b"{\"a\":\r\n\r\n1}"


def test_parse_reply_keeps_a_multiword_reason_and_a_crlf_body():
    reply = parse_reply(b"HTTP/1.1 503 Service Unavailable\r\n\r\n{\"a\":\r\n\r\n1}")
    assert (reply.status, reply.reason) == (503, "Service Unavailable")
    assert reply.body == b"{\"a\":\r\n\r\n1}" and reply.json() == {"a": 1}


def test_parse_reply_of_nothing_says_the_server_closed():
    with pytest.raises(ProbeFailed) as info:
        parse_reply(b"")
    assert str(info.value) == "the server closed the connection without a reply"


@pytest.mark.parametrize("data", [
    b"SSH-2.0-OpenSSH_9.2p1 Debian-2\r\n",
    b"\x15\x03\x03\x00\x02\x02\x46",  # a TLS alert
    b"HTTP/1.1 20 OK\r\n\r\n",
    b"HTTP/1.1 OK\r\n\r\n",
    b"<html>hello</html>",
    b"\r\n\r\nHTTP/1.1 200 OK",
], ids=["ssh-banner", "tls-alert", "two-digit-status", "no-status", "html", "empty-status-line"])
def test_parse_reply_of_something_else_is_not_http(data):
    with pytest.raises(ProbeFailed) as info:
        parse_reply(data)
    message = str(info.value)
    assert message.startswith("the reply is not HTTP: ")
    assert "\n" not in message and "\r" not in message  # one line, control bytes escaped


def test_parse_reply_shows_at_most_60_bytes_of_what_came():
    with pytest.raises(ProbeFailed) as info:
        parse_reply(b"A" * 1000)
    assert str(info.value) == f"the reply is not HTTP: {'A' * 60!r}"


@pytest.mark.parametrize("body", [b"", b"<html/>", b"\xff\xfe{}", b"{\"a\": "])
def test_reply_json_is_none_for_a_body_that_is_not_json(body):
    assert Reply(200, "OK", {}, body, None).json() is None


# -- GET over loopback ----------------------------------------------------------------------

@pytest.mark.parametrize("close_notify", [False, True], ids=["ragged-eof", "close-notify"])
def test_https_get_over_loopback_tls(serve, tls_context, close_notify):
    server, client = serve(answer(OK_REPLY, close_notify=close_notify), tls_context)
    reply = https_get(client, HOST, PATH, timeout_s=5)
    assert (reply.status, reply.reason, reply.body) == (200, "OK", STATUS_JSON)
    assert reply.json() == {"Version": "2.21.4", "InstanceID": "x"}
    assert reply.headers["content-type"] == "application/json"
    assert reply.tls in {"TLSv1.2", "TLSv1.3"}
    client.close()
    server.served.wait(5)
    assert server.requests == [request_bytes(HOST, PATH)]  # decrypted on the server: the exact GET


def test_http_get_over_loopback(serve):
    server, client = serve(answer(OK_REPLY))
    reply = http_get(client, HOST, PATH, timeout_s=5)
    assert (reply.status, reply.body, reply.tls) == (200, STATUS_JSON, None)
    assert reply.json()["Version"] == "2.21.4"
    server.served.wait(5)
    assert server.requests == [request_bytes(HOST, PATH)]


def test_http_get_returns_an_error_status_as_a_reply(serve):
    _, client = serve(answer(b"HTTP/1.0 404 Not Found\r\nContent-Length: 0\r\n\r\n"))
    reply = http_get(client, HOST, "/nope", timeout_s=5)
    assert (reply.status, reply.reason, reply.body, reply.json()) == (404, "Not Found", b"", None)


def test_https_get_against_a_plain_http_server_is_a_tls_failure(serve):
    server, client = serve(answer(b"HTTP/1.0 400 Bad Request\r\nContent-Type: text/html\r\n\r\n<html>bad</html>"))
    with pytest.raises(ProbeFailed) as info:
        https_get(client, HOST, PATH, timeout_s=5)
    message = str(info.value)
    assert "TLS" in message or "plain HTTP" in message
    assert "\n" not in message and "Traceback" not in message and "_ssl.c" not in message
    assert info.value.__suppress_context__  # `from None`: no chained SSLError in a traceback
    server.served.wait(5)
    assert server.requests and server.requests[0][:1] == b"\x16"  # what reached it was a TLS handshake


@pytest.mark.parametrize("get", GETS)
def test_a_server_that_never_answers_is_no_reply_in_time(serve, get):
    # silent behind TLS too: the handshake is the server thread's, and it answers
    # nothing once done; a plain silent server never completes a handshake.
    _, client = serve(silent)
    with pytest.raises(ProbeFailed, match="^no complete reply in time$"):
        get(client, HOST, PATH, timeout_s=0.5)


def test_a_tls_server_that_never_answers_after_the_handshake_is_no_reply_in_time(serve, tls_context):
    _, client = serve(silent, tls_context)
    with pytest.raises(ProbeFailed, match="^no complete reply in time$"):
        https_get(client, HOST, PATH, timeout_s=0.5)


@pytest.mark.parametrize("get", GETS)
def test_the_deadline_covers_the_whole_reply_not_each_read(serve, tls_context, get):
    # A byte every 50 ms never lets one recv time out: only the reply's deadline ends it.
    server, client = serve(trickle, plain_or_tls(get, tls_context))
    with pytest.raises(ProbeFailed, match="^no complete reply in time$"):
        get(client, HOST, PATH, timeout_s=1.0)  # time enough for the handshake on a busy machine
    assert server.requests  # it did get the request, and started answering


@pytest.mark.parametrize("get", GETS)
def test_a_server_that_closes_at_once(serve, get):
    server, client = serve(close_at_once)
    assert server.served.wait(5)  # closed before the client sends anything
    with pytest.raises(ProbeFailed) as info:
        get(client, HOST, PATH, timeout_s=5)
    assert str(info.value) in {
        "the server closed the connection without a reply",
        "the server closed the connection during the TLS handshake (is it plain HTTP?)",
        "the connection broke: Connection reset by peer",
    }


@pytest.mark.parametrize("get", GETS)
def test_a_non_http_reply_is_not_http(serve, tls_context, get):
    _, client = serve(answer(b"SSH-2.0-OpenSSH_9.2p1\r\n"), plain_or_tls(get, tls_context))
    with pytest.raises(ProbeFailed, match="^the reply is not HTTP: 'SSH-2.0-OpenSSH_9.2p1"):
        get(client, HOST, PATH, timeout_s=5)


@pytest.mark.parametrize("get", GETS)
def test_a_reply_larger_than_max_reply_is_cut(serve, tls_context, get):
    _, client = serve(flood, plain_or_tls(get, tls_context))
    reply = get(client, HOST, PATH, timeout_s=5)
    assert reply.status == 200
    # Reading stops at the first chunk past MAX_REPLY (a chunk is at most 64 KiB),
    # far short of the 8 MiB the server sends.
    assert MAX_REPLY - 100 < len(reply.body) < MAX_REPLY + 65536
    assert set(reply.body) == {ord("x")}


@pytest.mark.parametrize("get", GETS)
def test_a_connection_reset_before_the_request_is_probe_failed(serve, get):
    # The server resets the connection before the client sends (on loopback the reset
    # has arrived once the server's close returned).  Over SSH the same happens to a
    # channel the far end closed: paramiko's sendall raises OSError("Socket is closed").
    server, client = serve(reset)
    assert server.served.wait(5)
    with pytest.raises(ProbeFailed) as info:
        get(client, HOST, PATH, timeout_s=5)
    assert str(info.value) == "the connection broke: Connection reset by peer"
    assert info.value.__suppress_context__


class ClosedChannel:
    """A paramiko channel whose far end closed: sendall raises, recv says EOF."""

    def sendall(self, data):
        raise OSError("Socket is closed")

    def recv(self, size):
        return b""

    def settimeout(self, timeout):
        pass

    def close(self):
        pass


@pytest.mark.parametrize("get", GETS)
def test_a_closed_channel_is_probe_failed(get):
    with pytest.raises(ProbeFailed) as info:
        get(ClosedChannel(), HOST, PATH, timeout_s=5)
    assert str(info.value) == "the connection broke: Socket is closed"
