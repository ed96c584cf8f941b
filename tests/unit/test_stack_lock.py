"""The environment's lock (phoenix_tasks.stack.lock): names, exact argv, the parse of a
`docker config inspect` as docker prints it, the pure decision, and `Lock` over a real
Transport whose connection is FakeSwarm: a manager's config store that answers the
lock's, the ledger's and the clean-up's commands from its own state (an unrecorded
command fails the test).  Time is injected: no test sleeps.

FakeSwarm is shared with test_stack_ledger.py and test_stack_gc.py."""

from __future__ import annotations

import base64
import hashlib
import json
import shlex
from collections.abc import Callable
from pathlib import Path

import pytest
from invoke import Result

from phoenix_tasks.config import load_config
from phoenix_tasks.stack import gc, ledger, lock
from phoenix_tasks.stack.commands import SEPARATOR
from phoenix_tasks.stack.lock import (
    L_COMMAND,
    L_EXPIRES,
    L_GEN,
    L_HOLDER,
    L_SINCE,
    L_TOKEN,
    LABEL,
    Generation,
    Lock,
    LockHeld,
    LockLost,
    create_argv,
    decide,
    lock_name,
    parse_read,
    read_argv,
    read_lock,
    remove_argv,
)
from phoenix_tasks.docker.render import STACK_NAMESPACE_LABEL
from phoenix_tasks.core.transport import RemoteCommandFailed, Transport, shell_command

REPO = Path(__file__).resolve().parents[2]
CONFIG = load_config(REPO / "etc" / "lab", REPO / "stacks")
MANAGER = CONFIG.managers[0]
NS = "dev1_thinkheads_ai_app"
T0 = 1_700_000_000  # the manager's clock at the start of each test (epoch seconds)
HOSTILE = "dev1; rm -rf /"


# -- the fake manager ----------------------------------------------------------------------

def inspect_json(items: list[dict]) -> str:
    """What `docker config inspect ID...` prints: a JSON array, indented by 4."""
    return json.dumps(items, indent=4) + "\n"


def config_item(name: str, labels: dict | None, data: bytes = b"", ident: str | None = None) -> dict:
    spec: dict = {"Name": name, "Data": base64.b64encode(data).decode()}
    if labels is not None:
        spec["Labels"] = labels
    return {"ID": ident or hashlib.sha256(name.encode()).hexdigest()[:25],
            "Version": {"Index": 4242},
            "CreatedAt": "2024-05-01T10:00:00.123456789Z",
            "UpdatedAt": "2024-05-01T10:00:00.123456789Z",
            "Spec": spec}


def already_exists(kind: str, name: str) -> str:
    return (f"Error response from daemon: rpc error: code = AlreadyExists desc = {kind} {name} "
            "already exists\n")


class FakeSwarm:
    """The connection Transport gets for the manager (connect=): runs the lock, ledger
    and clean-up commands against its configs, secrets and services' references."""

    def __init__(self, now: int = T0):
        self.now = now
        self.configs: dict[str, dict] = {}  # name -> {"labels": {...}, "data": bytes}
        self.secrets: dict[str, dict] = {}
        self.used: list[str] = []  # "config NAME" / "secret NAME" the namespace's services use
        self.commands: list[list[str]] = []
        self.stdins: list[str | None] = []
        # called with the name before a `docker config create` takes effect (a rival's move)
        self.before_create: Callable[[str], None] | None = None

    # state helpers
    def add_config(self, name: str, labels: dict | None, data: bytes = b"") -> None:
        self.configs[name] = {"labels": labels, "data": data}

    def add_generation(self, namespace: str, generation: int, *, token: str = "rivaltoken0000",
                       holder: str = "alice@laptop", command: str = "swarm.deploy --stack x --env dev1",
                       since: int | None = None, expires: int | None = None) -> str:
        since = self.now - 10 if since is None else since
        expires = self.now + 60 if expires is None else expires
        name = lock_name(namespace, generation)
        self.add_config(name, {LABEL: namespace, L_GEN: str(generation), L_TOKEN: token, L_HOLDER: holder,
                               L_COMMAND: command, L_SINCE: str(since), L_EXPIRES: str(expires)},
                        f"phoenix lock of {namespace}\n".encode())
        return name

    def lock_names(self) -> list[str]:
        return sorted(n for n in self.configs if n.startswith("phx-lock-"))

    def _inspect(self, match: Callable[[dict], bool]) -> str:
        items = [config_item(name, c["labels"], c["data"]) for name, c in self.configs.items()
                 if match(c["labels"] or {})]
        return inspect_json(items) if items else "[]\n"

    # the connection
    def run(self, command: str, hide=None, warn=None, in_stream=None, timeout=None) -> Result:
        argv = shlex.split(command)
        self.commands.append(argv)
        self.stdins.append(in_stream.read() if in_stream else None)
        script_ns = argv[4] if argv[:2] == ["sh", "-c"] and len(argv) == 5 else None
        if argv[:3] == ["sh", "-c", lock.READ_SCRIPT]:
            return Result(stdout=f"{self.now}\n{SEPARATOR}\n" + self._inspect(lambda l: l.get(LABEL) == script_ns))
        if argv[:3] == ["sh", "-c", ledger.READ_SCRIPT]:
            return Result(stdout=f"{self.now}\n{SEPARATOR}\n" + self._inspect(
                lambda l: l.get(ledger.ENTRY) == script_ns or l.get(ledger.RESULT_OF) == script_ns))
        if argv[:3] == ["sh", "-c", gc.LIST_SCRIPT]:
            lines = [f"config {n}" for n, c in self.configs.items()
                     if (c["labels"] or {}).get(STACK_NAMESPACE_LABEL) == script_ns]
            lines += [f"secret {n}" for n, s in self.secrets.items()
                      if (s["labels"] or {}).get(STACK_NAMESPACE_LABEL) == script_ns]
            return Result(stdout="".join(f"{x}\n" for x in lines) + f"{SEPARATOR}\n" +
                          "".join(f"{x}\n" for x in self.used))
        if argv[:3] == ["docker", "config", "create"]:
            assert argv[-1] == "-" and argv[-3] == "--", argv
            name = argv[-2]
            labels = dict(argv[i + 1].split("=", 1) for i in range(3, len(argv) - 3, 2)
                          if argv[i] == "--label")
            if self.before_create:
                self.before_create(name)
            if name in self.configs:
                return Result(stderr=already_exists("config", name), exited=1)
            self.add_config(name, labels, (self.stdins[-1] or "").encode())
            return Result(stdout=hashlib.sha256(name.encode()).hexdigest()[:25] + "\n")
        if argv[:3] in (["docker", "config", "rm"], ["docker", "secret", "rm"]) and argv[3] == "--":
            store = self.configs if argv[1] == "config" else self.secrets
            missing = [n for n in argv[4:] if n not in store]
            for name in argv[4:]:
                store.pop(name, None)
            out = "".join(f"{n}\n" for n in argv[4:] if n not in missing)
            err = "".join(f"Error: No such {argv[1]}: {n}\n" for n in missing)
            return Result(stdout=out, stderr=err, exited=1 if missing else 0)
        raise AssertionError(f"unrecorded command: {command}")

    # what ran
    def mutating(self) -> list[list[str]]:
        return [a for a in self.commands if a[:2] in (["docker", "config"], ["docker", "secret"])]


def transport_on(swarm: FakeSwarm) -> Transport:
    return Transport(CONFIG.hypervisor.vm_access, connect=lambda host, access: swarm)


class Clock:
    """The lock's monotonic clock and its sleep: a sleep moves this clock and the manager's."""

    def __init__(self, swarm: FakeSwarm | None = None):
        self.t = 1000.0
        self.swarm = swarm
        self.slept: list[float] = []

    def __call__(self) -> float:
        return self.t

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.advance(seconds)

    def advance(self, seconds: float) -> None:
        self.t += seconds
        if self.swarm is not None:
            self.swarm.now += int(seconds)


@pytest.fixture
def swarm() -> FakeSwarm:
    return FakeSwarm()


@pytest.fixture
def clock(swarm) -> Clock:
    return Clock(swarm)


def make_lock(swarm: FakeSwarm, clock: Clock, *, command: str = "swarm.deploy --stack thinkheads_ai_app --env dev1",
              **kw) -> tuple[Lock, list[str], Transport]:
    reports: list[str] = []
    t = transport_on(swarm)
    kw.setdefault("ttl_s", 120)
    kw.setdefault("wait_s", 30.0)
    lk = Lock(t, MANAGER, NS, command, report=reports.append, sleep=clock.sleep, clock=clock, **kw)
    return lk, reports, t


def gen(generation: int, expires: int, token: str = "t", namespace: str = NS) -> Generation:
    return Generation(lock_name(namespace, generation), namespace, generation, token, "bob@ci", "swarm.rm",
                      T0 - 100, expires)


def read_stdout(items: list[dict], clock: int = T0) -> str:
    return f"{clock}\n{SEPARATOR}\n" + (inspect_json(items) if items else "[]\n")


def lock_labels(generation, *, namespace=NS, token="abcd", holder="alice@laptop", command="swarm.deploy",
                since=T0 - 5, expires=T0 + 115) -> dict:
    return {LABEL: namespace, L_GEN: str(generation), L_TOKEN: token, L_HOLDER: holder, L_COMMAND: command,
            L_SINCE: str(since), L_EXPIRES: str(expires)}


# -- names and argv --------------------------------------------------------------------------

def test_lock_name_is_stable_short_and_per_namespace():
    sha12 = hashlib.sha256(NS.encode()).hexdigest()[:12]
    assert lock_name(NS, 1) == f"phx-lock-{sha12}-00000001"
    assert lock_name(NS, 1) == lock_name(NS, 1)
    assert lock_name(NS, 1) != lock_name("dev2_thinkheads_ai_app", 1)
    assert lock_name(NS, 1) != lock_name(NS, 2)
    assert len(lock_name("x" * 500, 99_999_999)) <= 64  # docker's limit on a config's name
    # generations sort as text in the order of their numbers
    assert sorted([lock_name(NS, 10), lock_name(NS, 9)]) == [lock_name(NS, 9), lock_name(NS, 10)]


def test_create_argv_exact():
    assert create_argv(NS, 3, "tok123", "alice@laptop", "swarm.deploy --stack s --env dev1", 100, 220) == [
        "docker", "config", "create",
        "--label", f"io.phoenix.lock={NS}",
        "--label", "io.phoenix.lock.generation=3",
        "--label", "io.phoenix.lock.token=tok123",
        "--label", "io.phoenix.lock.holder=alice@laptop",
        "--label", "io.phoenix.lock.command=swarm.deploy --stack s --env dev1",
        "--label", "io.phoenix.lock.since=100",
        "--label", "io.phoenix.lock.expires=220",
        "--", lock_name(NS, 3), "-"]


def test_remove_argv_exact():
    assert remove_argv(["a", "b"]) == ["docker", "config", "rm", "--", "a", "b"]


def test_read_argv_passes_a_hostile_namespace_as_one_quoted_argument():
    argv = read_argv(HOSTILE)
    assert argv == ["sh", "-c", lock.READ_SCRIPT, "phoenix", HOSTILE]
    assert "dev1" not in lock.READ_SCRIPT and '"label=io.phoenix.lock=$1"' in lock.READ_SCRIPT
    assert shlex.split(shell_command(argv)) == argv


# -- parse_read and decide -------------------------------------------------------------------

def test_parse_read_of_an_inspect_as_docker_prints_it():
    stdout = read_stdout([
        config_item(lock_name(NS, 2), lock_labels(2, token="new")),
        config_item(lock_name(NS, 1), lock_labels(1, token="old", since=T0 - 300, expires=T0 - 180)),
    ])
    now, gens = parse_read(stdout)
    assert now == T0
    assert gens == [
        Generation(lock_name(NS, 1), NS, 1, "old", "alice@laptop", "swarm.deploy", T0 - 300, T0 - 180),
        Generation(lock_name(NS, 2), NS, 2, "new", "alice@laptop", "swarm.deploy", T0 - 5, T0 + 115),
    ]


def test_parse_read_of_no_generation():
    assert parse_read(f"{T0}\n{SEPARATOR}\n[]\n") == (T0, [])


def test_parse_read_ignores_configs_with_missing_or_garbage_labels():
    stdout = read_stdout([
        config_item("no-labels-at-all", None),
        config_item("null-labels", None) | {"Spec": {"Name": "null-labels", "Labels": None}},
        config_item("no-generation", {LABEL: NS}),
        config_item("garbage-generation", lock_labels(1) | {L_GEN: "one"}),
        config_item("garbage-expiry", lock_labels(2) | {L_EXPIRES: "soon"}),
        config_item("no-namespace", {L_GEN: "3"}),
        config_item(lock_name(NS, 4), lock_labels(4)),
    ])
    _, gens = parse_read(stdout)
    assert [g.name for g in gens] == [lock_name(NS, 4)]


def test_parse_read_defaults_for_missing_optional_labels():
    _, [g] = parse_read(read_stdout([config_item(lock_name(NS, 5), {LABEL: NS, L_GEN: "5"})]))
    assert (g.token, g.holder, g.command, g.since, g.expires) == ("", "?", "?", 0, 0)


def test_decide_no_generation_is_free():
    assert decide([], T0) == lock.Decision(True, None, False)


def test_decide_newest_expired_is_free_and_stale():
    newest = gen(2, expires=T0)  # expiring this very second counts as expired
    d = decide([gen(1, T0 - 200), newest], T0)
    assert (d.free, d.current, d.stale) == (True, newest, True)


def test_decide_newest_live_is_held():
    newest = gen(2, expires=T0 + 1)
    d = decide([gen(1, T0 - 200), newest], T0)
    assert (d.free, d.current, d.stale) == (False, newest, False)


def test_decide_goes_by_generation_not_by_list_order():
    # docker lists configs in no particular order: generation 10 (live) listed before 9 (expired)
    stdout = read_stdout([
        config_item(lock_name(NS, 10), lock_labels(10, expires=T0 + 50)),
        config_item(lock_name(NS, 9), lock_labels(9, expires=T0 - 50)),
    ])
    now, gens = parse_read(stdout)
    assert [g.generation for g in gens] == [9, 10]
    d = decide(gens, now)
    assert not d.free and d.current.generation == 10
    # and the other way round: the live one is older, the newest expired
    stdout = read_stdout([
        config_item(lock_name(NS, 10), lock_labels(10, expires=T0 - 1)),
        config_item(lock_name(NS, 2), lock_labels(2, expires=T0 + 500)),
    ])
    d = decide(*reversed(parse_read(stdout)))
    assert d.free and d.stale and d.current.generation == 10


def test_describe_names_holder_command_and_time_left():
    g = gen(1, expires=T0 + 30)
    assert g.describe(T0) == "bob@ci since 2023-11-14 22:11:40 UTC (swarm.rm, expires in 30 s)"
    assert g.describe() == "bob@ci since 2023-11-14 22:11:40 UTC (swarm.rm)"


# -- Lock over the fake manager ----------------------------------------------------------------

def test_acquire_when_free_creates_generation_1_and_nothing_else(swarm, clock):
    lk, reports, t = make_lock(swarm, clock)
    held = lk.acquire()
    assert held.generation == 1 and held.token == lk.token and held.holder == lk.holder
    assert (held.since, held.expires) == (T0, T0 + 120)
    assert [r.mutating for r in t.log] == [False, True]
    assert t.mutating_commands[0].display == shell_command(
        create_argv(NS, 1, lk.token, lk.holder, lk.command, T0, T0 + 120))
    assert t.mutating_commands[0].stdin_bytes == len(f"phoenix lock of {NS}\n")
    assert swarm.lock_names() == [lock_name(NS, 1)]
    assert swarm.configs[lock_name(NS, 1)]["labels"][L_TOKEN] == lk.token
    assert reports == [] and clock.slept == []


def test_acquire_ignores_another_namespaces_lock(swarm, clock):
    swarm.add_generation("dev2_thinkheads_ai_app", 7)
    lk, _, _ = make_lock(swarm, clock)
    assert lk.acquire().generation == 1
    assert lock_name("dev2_thinkheads_ai_app", 7) in swarm.configs


def test_acquire_when_held_waits_then_raises_naming_holder_and_command(swarm, clock):
    swarm.add_generation(NS, 4, holder="alice@laptop", command="swarm.rm --stack thinkheads_ai_app --env dev1",
                         expires=T0 + 100)
    lk, reports, t = make_lock(swarm, clock, wait_s=3)
    with pytest.raises(LockHeld) as exc:
        lk.acquire()
    message = str(exc.value)
    assert message.startswith(f"{NS} is locked by alice@laptop since ")
    assert "(swarm.rm --stack thinkheads_ai_app --env dev1, expires in 97 s)" in message
    assert "--lock-wait" in message and "--force-unlock" in message
    assert clock.slept == [1.0, 1.0, 1.0]  # read at 0, 1, 2, 3 s: at 3 s the wait is over
    assert t.mutating_commands == []
    assert len(reports) == 1  # told once, not at every read
    assert reports[0].startswith(f"lock of {NS}: held by alice@laptop") and reports[0].endswith("waiting up to 3 s")
    assert swarm.lock_names() == [lock_name(NS, 4)]


def test_acquire_with_no_wait_fails_after_one_read(swarm, clock):
    swarm.add_generation(NS, 1)
    lk, _, t = make_lock(swarm, clock, wait_s=0)
    with pytest.raises(LockHeld):
        lk.acquire()
    assert len(t.log) == 1 and clock.slept == []


def test_a_lock_that_expires_during_the_wait_is_taken_over(swarm, clock):
    swarm.add_generation(NS, 4, expires=T0 + 3)
    lk, reports, t = make_lock(swarm, clock, wait_s=30)
    held = lk.acquire()
    assert held.generation == 5
    assert [r.mutating for r in t.log] == [False, False, False, False, True]  # 4 reads, 1 create
    assert clock.slept == [1.0, 1.0, 1.0]
    assert "held by" in reports[0] and "did not renew it" in reports[1]


def test_a_stale_lock_is_taken_over_with_the_next_generation(swarm, clock):
    swarm.add_generation(NS, 6, holder="ci@runner", command="swarm.deploy --stack a --env dev1",
                         since=T0 - 500, expires=T0 - 380)
    lk, reports, t = make_lock(swarm, clock)
    held = lk.acquire()
    assert held.generation == 7 and held.token == lk.token
    assert len(t.mutating_commands) == 1
    assert reports == [(f"lock of {NS}: the holder ci@runner since 2023-11-14 22:05:00 UTC "
                        "(swarm.deploy --stack a --env dev1) did not renew it (expired 380 s ago): taking it over")]
    assert [a[:3] for a in swarm.mutating()] == [["docker", "config", "create"]]
    assert swarm.lock_names() == [lock_name(NS, 6), lock_name(NS, 7)]
    assert clock.slept == []


def test_losing_the_create_race_reads_again_then_waits(swarm, clock):
    rival = {}

    def rival_wins(name):
        if not rival:  # the rival creates generation 1 just before us
            rival["name"] = swarm.add_generation(NS, 1, holder="carol@desk", expires=swarm.now + 120)

    swarm.before_create = rival_wins
    lk, reports, _ = make_lock(swarm, clock, wait_s=2)
    with pytest.raises(LockHeld, match="locked by carol@desk"):
        lk.acquire()
    reads = [a for a in swarm.commands if a[:3] == ["sh", "-c", lock.READ_SCRIPT]]
    creates = [a for a in swarm.commands if a[:3] == ["docker", "config", "create"]]
    assert len(creates) == 1 and creates[0][-2] == lock_name(NS, 1)
    assert len(reads) == 4  # before the create, after losing it, then at 1 s and 2 s
    assert clock.slept == [1.0, 1.0]
    assert reports == [f"lock of {NS}: held by {swarm_describe(swarm, rival['name'], T0)}; waiting up to 2 s"]
    assert lk.held is None
    assert swarm.lock_names() == [lock_name(NS, 1)]
    assert swarm.configs[lock_name(NS, 1)]["labels"][L_HOLDER] == "carol@desk"


def swarm_describe(swarm: FakeSwarm, name: str, now: int) -> str:
    _, gens = parse_read(read_stdout([config_item(name, swarm.configs[name]["labels"])]))
    return gens[0].describe(now)


def test_a_create_failing_for_another_reason_is_raised(swarm, clock):
    lk, _, _ = make_lock(swarm, clock)
    original = swarm.run

    def refusing(command, **kw):
        if command.startswith("docker config create"):
            swarm.commands.append(shlex.split(command))
            return Result(stderr="Error response from daemon: This node is not a swarm manager.\n", exited=1)
        return original(command, **kw)

    swarm.run = refusing
    with pytest.raises(RemoteCommandFailed, match="not a swarm manager"):
        lk.acquire()
    assert lk.held is None


def test_force_removes_every_generation_then_acquires(swarm, clock):
    swarm.add_generation(NS, 2, expires=T0 - 1)
    swarm.add_generation(NS, 3, holder="dave@box", command="swarm.deploy --stack z --env dev1")
    swarm.add_generation("prod_thinkheads_ai_app", 9)
    lk, reports, _ = make_lock(swarm, clock, force=True)
    held = lk.acquire()
    assert held.generation == 1
    assert swarm.mutating()[0] == ["docker", "config", "rm", "--", lock_name(NS, 2), lock_name(NS, 3)]
    assert swarm.mutating()[1][:3] == ["docker", "config", "create"]
    assert len(swarm.mutating()) == 2
    assert reports[0].startswith(f"lock of {NS}: removed by --force-unlock (was held by dave@box since ")
    assert swarm.lock_names() == sorted([lock_name(NS, 1), lock_name("prod_thinkheads_ai_app", 9)])
    assert clock.slept == []


def test_force_with_no_lock_just_acquires(swarm, clock):
    lk, reports, _ = make_lock(swarm, clock, force=True)
    assert lk.acquire().generation == 1
    assert [a[:3] for a in swarm.mutating()] == [["docker", "config", "create"]] and reports == []


def test_renew_does_nothing_before_a_third_of_the_ttl(swarm, clock):
    lk, _, t = make_lock(swarm, clock, ttl_s=120)
    lk.acquire()
    before = len(t.log)
    clock.advance(39)
    lk.renew_if_due()
    assert len(t.log) == before
    assert lk.held.generation == 1


def test_renew_without_a_lock_does_nothing(swarm, clock):
    lk, _, t = make_lock(swarm, clock)
    clock.advance(1000)
    lk.renew_if_due()
    assert t.log == []


def test_renew_after_a_third_creates_the_next_generation_and_removes_older(swarm, clock):
    lk, _, t = make_lock(swarm, clock, ttl_s=120)
    lk.acquire()
    clock.advance(40)
    lk.renew_if_due()
    assert lk.held.generation == 2 and lk.held.token == lk.token
    assert (lk.held.since, lk.held.expires) == (T0 + 40, T0 + 160)
    assert swarm.mutating()[1:] == [
        create_argv(NS, 2, lk.token, lk.holder, lk.command, T0 + 40, T0 + 160),
        ["docker", "config", "rm", "--", lock_name(NS, 1)]]
    assert swarm.lock_names() == [lock_name(NS, 2)]
    # the renewal read is quiet (a poll), but still in the run log as a read
    assert [r.mutating for r in t.log] == [False, True, False, True, True]
    # and the next renewal is a third of the TTL after this one
    clock.advance(39)
    lk.renew_if_due()
    assert lk.held.generation == 2
    clock.advance(1)
    lk.renew_if_due()
    assert lk.held.generation == 3 and swarm.lock_names() == [lock_name(NS, 3)]


def test_renew_raises_lock_lost_when_another_token_holds_the_newest(swarm, clock):
    lk, _, _ = make_lock(swarm, clock, ttl_s=120)
    lk.acquire()
    clock.advance(200)  # we hung: expired, and someone took it over
    swarm.add_generation(NS, 2, holder="erin@desk", token="erintoken")
    with pytest.raises(LockLost, match=r"lock of dev1_thinkheads_ai_app was lost \(now held by erin@desk"):
        lk.renew_if_due()
    assert swarm.lock_names() == [lock_name(NS, 1), lock_name(NS, 2)]
    assert [a[:3] for a in swarm.mutating()] == [["docker", "config", "create"]]  # our acquire only


def test_renew_raises_lock_lost_when_every_generation_is_gone(swarm, clock):
    lk, _, _ = make_lock(swarm, clock)
    lk.acquire()
    swarm.configs.clear()  # swarm.unlock --force
    clock.advance(60)
    with pytest.raises(LockLost, match=r"now held by nobody"):
        lk.renew_if_due()
    assert swarm.configs == {}


def test_renew_losing_the_race_is_lock_lost(swarm, clock):
    lk, _, _ = make_lock(swarm, clock)
    lk.acquire()
    clock.advance(60)
    swarm.before_create = lambda name: swarm.add_generation(NS, 2, token="fast") if name == lock_name(NS, 2) else None
    with pytest.raises(LockLost, match="taken over while renewing"):
        lk.renew_if_due()
    assert swarm.lock_names() == [lock_name(NS, 1), lock_name(NS, 2)]  # nothing removed


def test_release_removes_ours_and_older_never_a_newer_one(swarm, clock):
    swarm.add_generation(NS, 1, expires=T0 - 10)  # a stale holder we took over from
    lk, _, _ = make_lock(swarm, clock)
    assert lk.acquire().generation == 2
    clock.advance(300)  # we hung; generation 3 is someone else's
    swarm.add_generation(NS, 3, token="other", holder="frank@box")
    lk.release()
    assert swarm.mutating()[-1] == ["docker", "config", "rm", "--", lock_name(NS, 1), lock_name(NS, 2)]
    assert swarm.lock_names() == [lock_name(NS, 3)]
    assert lk.held is None


def test_release_frees_the_lock_and_twice_is_nothing(swarm, clock):
    lk, _, t = make_lock(swarm, clock)
    lk.acquire()
    lk.release()
    assert swarm.lock_names() == []
    count = len(t.log)
    lk.release()
    assert len(t.log) == count


def test_release_with_nothing_left_runs_no_rm(swarm, clock):
    lk, _, _ = make_lock(swarm, clock)
    lk.acquire()
    swarm.configs.clear()
    lk.release()
    assert [a[:3] for a in swarm.mutating()] == [["docker", "config", "create"]]
    assert lk.held is None


def test_release_never_removes_a_new_holders_lock_after_numbering_restarted(swarm, clock):
    swarm.add_generation(NS, 2, expires=T0 - 10)
    slow, _, _ = make_lock(swarm, clock)
    assert slow.acquire().generation == 3
    swarm.configs.clear()  # swarm.unlock --force by someone who thought the run was gone
    fresh, _, _ = make_lock(swarm, clock)
    assert fresh.acquire().generation == 1
    slow.release()  # the hung run wakes up and releases
    assert swarm.lock_names() == [lock_name(NS, 1)]
    assert swarm.configs[lock_name(NS, 1)]["labels"][L_TOKEN] == fresh.token


def test_context_manager_acquires_and_releases(swarm, clock):
    lk, _, _ = make_lock(swarm, clock)
    with lk as entered:
        assert entered is lk and swarm.lock_names() == [lock_name(NS, 1)]
    assert swarm.lock_names() == [] and lk.held is None


def test_context_manager_keeps_the_original_error_when_release_fails(swarm, clock):
    lk, _, _ = make_lock(swarm, clock)
    original = swarm.run

    with pytest.raises(KeyError, match="boom"), lk:
        def failing_read(command, **kw):
            if command.startswith("sh -c"):
                return Result(stderr="Cannot connect to the Docker daemon\n", exited=1)
            return original(command, **kw)
        swarm.run = failing_read
        raise KeyError("boom")
    assert lk.held is None


def test_each_lock_has_its_own_token(swarm, clock):
    a, _, _ = make_lock(swarm, clock)
    b, _, _ = make_lock(swarm, clock)
    assert a.token != b.token and len(a.token) == 16


def test_read_lock_reads_and_decides(swarm):
    swarm.add_generation(NS, 1, expires=T0 + 5)
    now, d = read_lock(transport_on(swarm), MANAGER, NS)
    assert now == T0 and not d.free and d.current.generation == 1
