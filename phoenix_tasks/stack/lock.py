"""A lock per environment and stack, kept in the swarm itself: any machine with the
config sees it, a restart of Phoenix loses nothing, and a killed holder never blocks
for ever.

The primitive is `docker config create`, which fails when the name exists: atomic on
the managers' Raft store.  A lock is a series of generations, each a tiny swarm config
named `phx-lock-<sha12(namespace)>-<generation>` whose labels say who holds it (user@host,
a random token per run), since when, for which command, and until when (the manager's
clock, never this machine's).  The newest generation is the lock's state:

- acquire: read the generations and the manager's clock; free (no generation, or the
  newest expired: a stale holder, reported) -> create generation+1.  Two callers that
  race create the same name: one wins, the other reads again.
- renew: create generation+1 with the same token and a later expiry (the same race:
  losing it means another caller took the lock over after it expired).
- release: remove our generation and older ones (never a newer one: that is someone
  else's).  No generation left means free.

Reads and decisions are pure (`decide`); the commands are argv builders.
"""

from __future__ import annotations

import hashlib
import json
import secrets
import time
from dataclasses import dataclass
from typing import Any, Callable

from ..core.cluster_text import clean
from ..core.identity import me
from ..core.errors import PhoenixError
from ..core.model import VM
from ..swarm import raft
from ..core.transport import RemoteCommandFailed, Transport
from .commands import SEPARATOR, object_remove

LABEL = "io.phoenix.lock"  # = the namespace
L_GEN, L_TOKEN, L_HOLDER = "io.phoenix.lock.generation", "io.phoenix.lock.token", "io.phoenix.lock.holder"
L_COMMAND, L_SINCE, L_EXPIRES = "io.phoenix.lock.command", "io.phoenix.lock.since", "io.phoenix.lock.expires"
DEFAULT_TTL_S = 120
DEFAULT_WAIT_S = 30.0


class LockHeld(PhoenixError):
    """Another run holds the environment's lock (and it did not come free in time)."""


class LockLost(PhoenixError):
    """Our lock expired and another run took it over."""


@dataclass(frozen=True)
class Generation:
    name: str
    namespace: str
    generation: int
    token: str
    holder: str
    command: str
    since: int
    expires: int

    def describe(self, now: int | None = None) -> str:
        left = f", expires in {self.expires - now} s" if now is not None and self.expires > now else ""
        return (f"{self.holder} since {_clock(self.since)} ({self.command}{left})")


def _clock(epoch: int) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(epoch))


def lock_name(namespace: str, generation: int) -> str:
    return f"phx-lock-{hashlib.sha256(namespace.encode()).hexdigest()[:12]}-{generation:08d}"


# The manager's clock, then every generation of the namespace's lock, inspected.
READ_SCRIPT = (
    "date +%s; "
    f"echo '{SEPARATOR}'; "
    f'ids=$(docker config ls -q --filter "label={LABEL}=$1"); '
    'if [ -n "$ids" ]; then docker config inspect $ids; else echo "[]"; fi'
)


def read_argv(namespace: str) -> list[str]:
    return ["sh", "-c", READ_SCRIPT, "phoenix", namespace]


def parse_read(stdout: str) -> tuple[int, list[Generation]]:
    clock, _, rest = stdout.partition(SEPARATOR)
    gens = []
    for item in json.loads(rest.strip() or "[]"):
        labels = (item.get("Spec") or {}).get("Labels") or {}
        try:
            gens.append(Generation(
                name=item["Spec"]["Name"], namespace=labels[LABEL], generation=int(labels[L_GEN]),
                token=labels.get(L_TOKEN, ""), holder=clean(labels.get(L_HOLDER, "?")),
                command=clean(labels.get(L_COMMAND, "?")), since=int(labels.get(L_SINCE, "0")),
                expires=int(labels.get(L_EXPIRES, "0"))))
        except (KeyError, ValueError):
            continue  # not one of ours after all: ignored, never removed
    return int(clock.strip()), sorted(gens, key=lambda g: g.generation)


@dataclass(frozen=True)
class Decision:
    free: bool
    current: Generation | None  # the newest generation
    stale: bool  # the newest expired: its holder is gone (or hung)


def decide(gens: list[Generation], now: int) -> Decision:
    current = gens[-1] if gens else None
    if current is None:
        return Decision(True, None, False)
    if current.expires <= now:
        return Decision(True, current, True)
    return Decision(False, current, False)


def create_argv(namespace: str, generation: int, token: str, holder: str, command: str,
                since: int, expires: int) -> list[str]:
    labels = {LABEL: namespace, L_GEN: str(generation), L_TOKEN: token, L_HOLDER: holder,
              L_COMMAND: command, L_SINCE: str(since), L_EXPIRES: str(expires)}
    argv = ["docker", "config", "create"]
    for key, value in labels.items():
        argv += ["--label", f"{key}={value}"]
    return [*argv, "--", lock_name(namespace, generation), "-"]


def remove_argv(names: list[str]) -> list[str]:
    return object_remove("config", names)


class Lock:
    """The lock of one namespace, taken on one manager; use as a context manager."""

    def __init__(self, transport: Transport, manager: VM, namespace: str, command: str, *,
                 ttl_s: int = DEFAULT_TTL_S, wait_s: float = DEFAULT_WAIT_S, force: bool = False,
                 report: Callable[[str], None] = lambda line: None,
                 sleep: Callable[[float], None] = time.sleep, clock: Callable[[], float] = time.monotonic):
        self.transport, self.manager, self.namespace, self.command = transport, manager, namespace, command
        self.ttl_s, self.wait_s, self.force, self.report = ttl_s, wait_s, force, report
        self.sleep, self.clock = sleep, clock
        self.token = secrets.token_hex(8)
        self.holder = me()
        self.held: Generation | None = None
        self._renewed_at = 0.0

    def _read(self) -> tuple[int, list[Generation]]:
        res = self.transport.run(self.manager, read_argv(self.namespace), mutating=False, quiet=self.held is not None)
        return parse_read(res.stdout)

    def _mine(self, generation: int) -> bool:
        """Our token holds `generation` (a create answered "busy" may have landed)."""
        return any(g.generation == generation and g.token == self.token for g in self._read()[1])

    def _create(self, generation: int, now: int) -> bool:
        argv = create_argv(self.namespace, generation, self.token, self.holder, self.command, now, now + self.ttl_s)
        tries = []

        def create():
            tries.append(1)
            return self.transport.run(self.manager, argv, mutating=True, stdin=f"phoenix lock of {self.namespace}\n")

        try:
            # Right after a role change Raft may answer "busy" (DeadlineExceeded...): sent
            # again, bounded, unless it landed after all (swarm/raft.py).
            raft.retry_while_busy(create, landed=lambda: self._mine(generation), sleep=self.sleep)
        except RemoteCommandFailed as exc:
            if "already exists" not in exc.stderr and "AlreadyExists" not in exc.stderr:
                raise
            if len(tries) == 1 or not self._mine(generation):  # a busy first try may have landed late
                return False  # another run won this generation
        self.held = Generation(lock_name(self.namespace, generation), self.namespace, generation, self.token,
                               self.holder, self.command, now, now + self.ttl_s)
        self._renewed_at = self.clock()
        return True

    def acquire(self) -> Generation:
        deadline = self.clock() + self.wait_s
        told = None
        while True:
            now, gens = self._read()
            if self.force:
                self.force = False  # once: never a rival's lock taken after this read
                if gens:
                    self.transport.run(self.manager, remove_argv([g.name for g in gens]), mutating=True)
                    self.report(f"lock of {self.namespace}: removed by --force-unlock (was held by "
                                f"{gens[-1].describe(now)})")
                    continue
            d = decide(gens, now)
            if d.free:
                if d.stale:
                    self.report(f"lock of {self.namespace}: the holder {d.current.describe()} did not renew it "
                                f"(expired {now - d.current.expires} s ago): taking it over")
                next_gen = d.current.generation + 1 if d.current else 1
                if self._create(next_gen, now):
                    return self.held
                continue
            if self.clock() >= deadline:
                raise LockHeld(f"{self.namespace} is locked by {d.current.describe(now)}; try again later, "
                               f"wait longer (--lock-wait), or take it with --force-unlock if that run is gone")
            if told != d.current.name:
                told = d.current.name
                self.report(f"lock of {self.namespace}: held by {d.current.describe(now)}; waiting up to "
                            f"{self.wait_s:.0f} s")
            self.sleep(1.0)

    def renew_if_due(self) -> None:
        """Renew when a third of the TTL has passed (called from the deploy's wait loop)."""
        if self.held is None or self.clock() - self._renewed_at < self.ttl_s / 3:
            return
        now, gens = self._read()
        newest = gens[-1] if gens else None
        if newest is None or newest.token != self.token:
            holder = newest.describe(now) if newest else "nobody"
            raise LockLost(f"lock of {self.namespace} was lost (now held by {holder})")
        old = [g.name for g in gens if g.generation <= newest.generation]
        if not self._create(newest.generation + 1, now):
            raise LockLost(f"lock of {self.namespace} was taken over while renewing it")
        self.transport.run(self.manager, remove_argv(old), mutating=True, check=False, quiet=True)

    def release(self) -> None:
        if self.held is None:
            return
        try:
            now, gens = self._read()
            # Only while our generation is still there: if it was force-unlocked, numbering
            # may have started again, and generation 1 is then someone else's.
            ours = any(g.generation == self.held.generation and g.token == self.token for g in gens)
            mine = [g.name for g in gens if g.generation <= self.held.generation] if ours else []
            if mine:
                self.transport.run(self.manager, remove_argv(mine), mutating=True, check=False)
        finally:
            self.held = None

    def __enter__(self) -> "Lock":
        self.acquire()
        return self

    def __exit__(self, *exc: Any) -> None:
        try:
            self.release()
        except PhoenixError:
            if exc[0] is None:
                raise  # nothing else failed: say it; otherwise the original error wins (the TTL frees it)


def read_lock(transport: Transport, manager: VM, namespace: str) -> tuple[int, Decision]:
    res = transport.run(manager, read_argv(namespace), mutating=False)
    now, gens = parse_read(res.stdout)
    return now, decide(gens, now)

