"""Docker Engine API requests sent over a VM's SSH connection, for what must not be an
argv word: a secret the CLI only takes as a flag (`docker swarm join --token T` puts
the join token on the VM's process list for the length of the join, readable by any
local user with `ps`).

How: `docker system dial-stdio` (what the docker SDK's and the CLI's `ssh://` hosts
run) connects its stdin/stdout to the engine's API socket, the one the session's
DOCKER_HOST names (on a real VM the default socket; in the lab, sshd's SetEnv points
each VM's sessions at its own engine).  The HTTP request goes on the SSH channel's
stdin, the answer comes back on its stdout: the secret travels in the request's JSON
body and is on no command line and in no file, here or on the VM.  The command line
is the fixed argv `DIAL_STDIO`.

A request is data (`EngineRequest`, built by pure functions like the argv builders);
`call` runs it through the transport (one connection per host, deadlines, scrubbing)
and turns an error answer into the same `RemoteCommandFailed` the CLI's message
would give: "Error response from daemon: <message>", secrets scrubbed.
"""

from __future__ import annotations

import http.client
import io
import json
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Mapping

from .secrets import Secret

if TYPE_CHECKING:  # the request is data: builders (swarm/commands.py) import no transport
    from .transport import Reachable, Transport

DIAL_STDIO = ("docker", "system", "dial-stdio")


@dataclass(frozen=True)
class EngineRequest:
    """One Engine API call: method, path (unversioned: the engine's own API version),
    a JSON body whose values may be `Secret`s, and how people and logs see it."""

    method: str
    path: str
    body: Mapping[str, Any] = field(default_factory=dict)
    display: str = ""  # e.g. "docker swarm join --advertise-addr A -- M (token in the request body)"
    # extra request headers, values may be Secrets (X-Registry-Auth: a registry's credential)
    headers: tuple[tuple[str, Any], ...] = ()

    def secrets(self) -> list[Secret]:
        return [v for v in (*_values(self.body), *(v for _, v in self.headers)) if isinstance(v, Secret)]

    def encode(self, keep_alive: bool = False) -> Secret:
        """The HTTP/1.1 request as sent: secrets revealed, so the whole of it is a Secret.
        `keep_alive`: another request follows on the same stream (pipelined)."""
        extra = "".join(f"{k}: {_reveal(v) if isinstance(v, Secret) else v}\r\n" for k, v in self.headers)
        connection = "keep-alive" if keep_alive else "close"
        if self.method == "GET" and not self.body:
            return Secret(f"GET {self.path} HTTP/1.1\r\nHost: docker\r\nUser-Agent: phoenix\r\n{extra}"
                          f"Connection: {connection}\r\n\r\n")
        data = json.dumps(self.body, default=_reveal, separators=(",", ":"))
        head = (f"{self.method} {self.path} HTTP/1.1\r\nHost: docker\r\nUser-Agent: phoenix\r\n{extra}"
                f"Content-Type: application/json\r\nContent-Length: {len(data.encode())}\r\n"
                f"Connection: {connection}\r\n\r\n")
        return Secret(head + data)


def _values(value):
    if isinstance(value, Mapping):
        for v in value.values():
            yield from _values(v)
    elif isinstance(value, (list, tuple)):
        for v in value:
            yield from _values(v)
    else:
        yield value


def _reveal(value):
    if isinstance(value, Secret):
        return value.reveal()
    raise TypeError(f"not JSON: {type(value).__name__}")


class _Unclosed(io.BytesIO):
    def close(self) -> None:  # http.client closes its file after each answer: the next one follows
        pass


class _Bytes:
    def __init__(self, data: bytes | io.BytesIO):
        self._file = data if isinstance(data, io.BytesIO) else io.BytesIO(data)

    def makefile(self, *args, **kwargs):
        return self._file


@dataclass(frozen=True)
class EngineAnswer:
    status: int
    body: str

    @property
    def ok(self) -> bool:
        return 200 <= self.status < 300

    def message(self) -> str:
        """The engine's error message ({"message": ...}), else the body as it is."""
        try:
            doc = json.loads(self.body)
        except ValueError:
            return self.body.strip()
        return str(doc.get("message", self.body)).strip() if isinstance(doc, dict) else self.body.strip()


def parse_answer(text: str) -> EngineAnswer | None:
    """The HTTP answer dial-stdio printed (Content-Length or chunked), or None when
    there is none (the engine closed the stream without answering)."""
    if not text.strip():
        return None
    response = http.client.HTTPResponse(_Bytes(text.encode()))  # type: ignore[arg-type]
    try:
        response.begin()
        body = response.read()
    except (http.client.HTTPException, ValueError):
        return None
    return EngineAnswer(response.status, body.decode(errors="replace"))


def parse_answers(text: str) -> list[EngineAnswer]:
    """The answers to pipelined requests, in order (as many as the engine sent whole)."""
    data = _Unclosed(text.encode())
    out = []
    while data.tell() < len(data.getvalue()):
        response = http.client.HTTPResponse(_Bytes(data))  # type: ignore[arg-type]
        try:
            response.begin()
            body = response.read()
        except (http.client.HTTPException, ValueError):
            break
        out.append(EngineAnswer(response.status, body.decode(errors="replace")))
    return out


def encode_all(requests: "list[EngineRequest]") -> Secret:
    """Requests pipelined on one stream: every one keeps it open but the last."""
    return Secret("".join(r.encode(keep_alive=i < len(requests) - 1).reveal() for i, r in enumerate(requests)))


def call_many(transport: "Transport", host: "Reachable", requests: "list[EngineRequest]", *,
              argv: tuple[str, ...] | list[str] = DIAL_STDIO, preamble: Secret | None = None,
              timeout: float | None = None, display: str = "") -> "tuple[str, list[EngineAnswer]]":
    """Reads only: `requests` pipelined on ONE dial-stdio stream (one command, one round
    trip); the answers in order, error answers included (each is the engine's word on its
    request).  `argv`/`preamble`: a command that reads `preamble` from stdin first, prints
    lines of its own, then execs dial-stdio on the rest (digests.py: registry logins).
    Returns (what the command printed before the first answer, the answers).  The
    command's stdin stays open until the engine has answered: an engine sees a closed
    stream as a client gone, and cancels the request it is working on."""
    for secret in (s for r in requests for s in r.secrets()):
        transport.keep_secret(secret)
    data = encode_all(requests)
    if preamble is not None:
        transport.keep_secret(preamble)
        data = Secret(preamble.reveal() + data.reveal())
    display = display or f"{' '.join(DIAL_STDIO)}: " + "; ".join(f"{r.method} {r.path}" for r in requests)
    res = transport.run(host, tuple(argv), mutating=False, stdin=data, timeout=timeout, display=display,
                        secret_output=True, hold_stdin=True)
    text = res.stdout
    start = text.find("HTTP/1.")
    before, http_part = (text, "") if start < 0 else (text[:start], text[start:])
    answers = [EngineAnswer(a.status, transport.scrub(a.body)) for a in parse_answers(http_part)]
    if len(answers) < len(requests) and res.exited:
        from .transport import RemoteCommandFailed
        raise RemoteCommandFailed(host, display, res.exited or 1,
                                  res.stderr or "the engine closed the API stream without an answer")
    return transport.scrub(before), answers


def call(transport: "Transport", host: "Reachable", request: EngineRequest, *, mutating: bool,
         timeout: float | None = None) -> EngineAnswer:
    """Send `request` to the host's engine; an error answer raises RemoteCommandFailed
    ("Error response from daemon: ..."), as the CLI's would, secrets scrubbed."""
    from .transport import RemoteCommandFailed

    for secret in request.secrets():
        transport.keep_secret(secret)
    display = f"{' '.join(DIAL_STDIO)}: {request.method} {request.path}" + (
        f" ({request.display})" if request.display else "")
    # Parsed as the engine sent it (a scrubbed body would no longer match its
    # Content-Length), scrubbed right after.
    res = transport.run(host, DIAL_STDIO, mutating=mutating, stdin=request.encode(), timeout=timeout,
                        display=display, secret_output=True)
    answer = parse_answer(res.stdout)
    if answer is None:
        raise RemoteCommandFailed(host, display, res.exited or 1,
                                  res.stderr or "the engine closed the API stream without an answer")
    answer = EngineAnswer(answer.status, transport.scrub(answer.body))
    if not answer.ok:  # exit 1 and the message, as the CLI says it
        raise RemoteCommandFailed(host, display, 1, f"Error response from daemon: {answer.message()}")
    return answer
