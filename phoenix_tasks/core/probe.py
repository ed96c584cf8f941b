"""Does a web server answer?  One HTTP(S) GET over any stream a caller opened.

The stream is socket-like (`sendall`, `recv`, `settimeout`, `close`): a TCP socket, or
a paramiko channel that a VM's sshd opened to an address on the VM's network (SSH
`direct-tcpip`), so that "it answers" is checked from the VM, over its network, with
nothing installed on the VM (no curl, no wget).

TLS runs over that stream through memory BIOs (an `ssl.SSLObject`): `ssl.wrap_socket`
needs a real socket, a channel is not one.  The certificate is not verified: a probe
asks "does it answer, and what", it sends no credential (Portainer's certificate is
self-signed until an operator gives it one).
"""

from __future__ import annotations

import json
import re
import ssl
import time
from dataclasses import dataclass
from typing import Any, Protocol

MAX_REPLY = 256 * 1024


class Stream(Protocol):
    def sendall(self, data: bytes) -> Any: ...

    def recv(self, size: int) -> bytes: ...

    def settimeout(self, timeout: float | None) -> Any: ...

    def close(self) -> Any: ...


class ProbeFailed(Exception):
    """The server did not answer as HTTP (reset, closed, timed out, not HTTP, TLS failed)."""


@dataclass(frozen=True)
class Reply:
    status: int
    reason: str
    headers: dict[str, str]
    body: bytes
    tls: str | None  # the TLS version, None for plain HTTP

    def json(self) -> Any | None:
        try:
            return json.loads(self.body.decode("utf-8"))
        except (UnicodeDecodeError, ValueError):
            return None


def request_bytes(host: str, path: str) -> bytes:
    """An HTTP/1.0 GET (the server closes the connection after its reply: no chunking)."""
    if not re.fullmatch(r"/[A-Za-z0-9._~/?=&%-]*", path):
        raise ValueError(f"not a plain request path: {path!r}")
    return (f"GET {path} HTTP/1.0\r\nHost: {host}\r\nUser-Agent: phoenix-probe\r\n"
            "Accept: application/json\r\nConnection: close\r\n\r\n").encode("ascii")


def parse_reply(data: bytes, tls: str | None = None) -> Reply:
    crlf, lf = data.find(b"\r\n\r\n"), data.find(b"\n\n")  # the first blank line ends the head
    if lf != -1 and (crlf == -1 or lf < crlf):
        head, body = data[:lf], data[lf + 2:]
    elif crlf != -1:
        head, body = data[:crlf], data[crlf + 4:]
    else:
        head, body = data, b""
    lines = head.decode("iso-8859-1").splitlines()
    m = re.fullmatch(r"HTTP/\d(?:\.\d)? (\d{3})(?: (.*))?", lines[0].strip()) if lines else None
    if not m:
        shown = data[:60].decode("ascii", "replace")
        raise ProbeFailed(f"the reply is not HTTP: {shown!r}" if data else "the server closed the connection without a reply")
    headers = {}
    for line in lines[1:]:
        key, _, value = line.partition(":")
        headers[key.strip().lower()] = value.strip()
    return Reply(int(m[1]), (m[2] or "").strip(), headers, body, tls)


class _Deadline:
    def __init__(self, stream: Stream, seconds: float):
        self.stream, self.end = stream, time.monotonic() + seconds

    def recv(self) -> bytes:
        left = self.end - time.monotonic()
        if left <= 0:
            raise ProbeFailed("no complete reply in time")
        self.stream.settimeout(left)
        try:
            return self.stream.recv(65536)
        except TimeoutError:
            raise ProbeFailed("no complete reply in time") from None
        except OSError as exc:
            raise ProbeFailed(f"the connection broke: {exc.strerror or exc}") from None


def _send(stream: Stream, data: bytes) -> None:
    try:
        stream.sendall(data)
    except TimeoutError:
        raise ProbeFailed("no complete reply in time") from None
    except OSError as exc:  # a channel the server closed, a reset
        raise ProbeFailed(f"the connection broke: {exc.strerror or exc}") from None


def _read_all(read) -> bytes:
    chunks, size = [], 0
    while True:
        chunk = read()
        if not chunk:
            return b"".join(chunks)
        chunks.append(chunk)
        size += len(chunk)
        if size > MAX_REPLY:
            return b"".join(chunks)


def http_get(stream: Stream, host: str, path: str, *, timeout_s: float) -> Reply:
    """GET path over a plain stream."""
    deadline = _Deadline(stream, timeout_s)
    _send(stream, request_bytes(host, path))
    return parse_reply(_read_all(deadline.recv))


def https_get(stream: Stream, host: str, path: str, *, timeout_s: float) -> Reply:
    """GET path over TLS on the stream (certificate not verified, see the module doc)."""
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    tls = ctx.wrap_bio(incoming, outgoing, server_hostname=None)
    deadline = _Deadline(stream, timeout_s)

    def flush() -> None:
        data = outgoing.read()
        if data:
            _send(stream, data)

    def pump() -> bool:
        """Feed the TLS object what the server sent; False at the end of the stream."""
        data = deadline.recv()
        if not data:
            incoming.write_eof()
            return False
        incoming.write(data)
        return True

    def step(operation):
        while True:
            try:
                result = operation()
                flush()
                return result
            except ssl.SSLWantReadError:
                flush()
                if not pump():
                    raise ProbeFailed("the server closed the connection during the TLS handshake "
                                      "(is it plain HTTP?)") from None
            except ssl.SSLError as exc:
                raise ProbeFailed(f"TLS failed: {exc.reason or exc}") from None

    step(tls.do_handshake)
    step(lambda: tls.write(request_bytes(host, path)))

    def read() -> bytes:
        while True:
            try:
                return tls.read(65536)
            except ssl.SSLWantReadError:
                if not pump():
                    return b""
            except ssl.SSLZeroReturnError:
                return b""
            except ssl.SSLEOFError:  # closed without close_notify: what was read is the reply
                return b""
            except ssl.SSLError as exc:
                raise ProbeFailed(f"TLS failed: {exc.reason or exc}") from None

    return parse_reply(_read_all(read), tls.version())
