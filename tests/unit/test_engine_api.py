"""Engine API requests over dial-stdio (engine_api.py): the join token travels in the
request body on the SSH channel's stdin, never on a command line; the engine's error
answers become the CLI's messages, secrets scrubbed (issue 21, item 3)."""

import json

import pytest
from invoke import Result

from phoenix_tasks.core import engine_api
from phoenix_tasks.core.secrets import Secret
from phoenix_tasks.swarm import commands
from phoenix_tasks.swarm.apply import ALREADY_IN_SWARM
from phoenix_tasks.core.transport import RemoteCommandFailed, Transport

from swarm_recorded import lab_config

TOKEN = "SWMTKN-1-3pu6hszjas19xyp7ghgosyx9k8atbfcr8p2is99znpy26u2lkl-1awxwuwd3z9j1z3puu7rcgdbx"


def answer(status: str, body: str = "", chunked: bool = False) -> str:
    if chunked:
        data = "".join(f"{len(part):x}\r\n{part}\r\n" for part in (body[:7], body[7:]) if part) + "0\r\n\r\n"
        return f"HTTP/1.1 {status}\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n{data}"
    return f"HTTP/1.1 {status}\r\nContent-Length: {len(body.encode())}\r\nConnection: close\r\n\r\n{body}"


class Engine:
    """A connection whose only command is dial-stdio: it keeps what came on stdin and
    answers with `reply` (what the engine would print)."""

    def __init__(self, reply: str, exited: int = 0, stderr: str = ""):
        self.reply, self.exited, self.stderr = reply, exited, stderr
        self.commands: list[str] = []
        self.stdin: list[str] = []

    def connect(self, host, access):
        return self

    def run(self, command, **kw):
        self.commands.append(command)
        self.stdin.append(kw["in_stream"].read() if kw.get("in_stream") else "")
        return Result(command=command, stdout=self.reply, stderr=self.stderr, exited=self.exited)

    def close(self):
        pass


@pytest.fixture
def vm(tmp_path):
    config = lab_config(tmp_path)
    return config, next(v for v in config.real_vms if v.name == "cpuworker")


def join_request():
    return commands.swarm_join(Secret(TOKEN), "198.18.90.11:2377", "198.18.90.13")


def test_parse_answer_content_length_chunked_and_none():
    ok = engine_api.parse_answer(answer("200 OK"))
    assert ok.ok and ok.status == 200 and ok.body == ""
    err = engine_api.parse_answer(answer("503 Service Unavailable", json.dumps({"message": "busy"}), chunked=True))
    assert not err.ok and err.status == 503 and err.message() == "busy"
    assert engine_api.parse_answer("") is None
    assert engine_api.parse_answer("garbage that is no HTTP") is None


def test_the_token_goes_on_stdin_only_and_a_join_answer_200_is_done(vm):
    config, target = vm
    engine = Engine(answer("200 OK"))
    echoed = []
    t = Transport(config.hypervisor.vm_access, connect=engine.connect, echo=echoed.append)
    engine_api.call(t, target, join_request(), mutating=True)
    assert engine.commands == ["docker system dial-stdio"]  # the command line: fixed, no token
    head, _, body = engine.stdin[0].partition("\r\n\r\n")
    assert head.startswith("POST /swarm/join HTTP/1.1") and json.loads(body)["JoinToken"] == TOKEN
    [record] = t.log
    assert record.mutating and record.stdin_bytes == len(engine.stdin[0].encode())
    shown = " ".join(echoed) + repr(t.log)
    assert TOKEN not in shown and "POST /swarm/join" in shown


@pytest.mark.parametrize("status,message", [
    ("503 Service Unavailable", 'This node is already part of a swarm. Use "docker swarm leave" to leave this '
                                "swarm and join another one."),
    ("500 Internal Server Error", "rpc error: code = Unavailable desc = connection error: desc = \"transport: "
                                  "Error while dialing dial tcp 198.18.90.11:2377: connect: connection refused\""),
    ("400 Bad Request", f"invalid join token {TOKEN}"),
])
def test_an_error_answer_is_the_clis_message_with_the_token_scrubbed(vm, status, message):
    config, target = vm
    engine = Engine(answer(status, json.dumps({"message": message})))
    t = Transport(config.hypervisor.vm_access, connect=engine.connect)
    with pytest.raises(RemoteCommandFailed) as exc:
        engine_api.call(t, target, join_request(), mutating=True)
    text = str(exc.value)
    assert TOKEN not in text and TOKEN not in exc.value.stderr
    assert exc.value.stderr == "Error response from daemon: " + message.replace(TOKEN, "***")
    assert exc.value.exited == 1  # as the CLI exits
    assert "docker swarm join --advertise-addr 198.18.90.13 -- 198.18.90.11:2377" in text
    if "already part" in message:
        assert ALREADY_IN_SWARM in exc.value.stderr  # what the apply reads as "joined by another run"


def test_no_engine_behind_dial_stdio_is_a_failed_command(vm):
    config, target = vm
    t = Transport(config.hypervisor.vm_access, connect=Engine(
        "", 1, f"failed to open the raw stream connection: dial unix /var/run/docker.sock: "
               f"connect: no such file or directory {TOKEN}").connect)
    with pytest.raises(RemoteCommandFailed) as exc:
        engine_api.call(t, target, join_request(), mutating=True)
    assert "failed to open the raw stream connection" in str(exc.value) and TOKEN not in str(exc.value)
    closed = Transport(config.hypervisor.vm_access, connect=Engine("").connect)
    with pytest.raises(RemoteCommandFailed) as exc:
        engine_api.call(closed, target, join_request(), mutating=True)
    assert "closed the API stream without an answer" in str(exc.value)
