"""Cluster events: one line in the swarm itself that a security change happened.

A join-token rotation or an autolock change is recorded as one small swarm config,
`phx-cluster-event-<UTC time>-<6 hex>` (immutable, like the stack ledger's records),
whose labels say what happened (the role rotated, autolock on/off), who did it, on
which manager and when.  It never holds a token or a key: what changed is named, never
its value.  Any machine with the configuration sees the same history (`swarm.tokens`,
`swarm.autolock` print the last ones).  Events are a few hundred bytes and are not pruned.
"""

from __future__ import annotations

import json
import secrets
import time
from dataclasses import dataclass

from ..core.model import VM
from ..core.identity import me
from ..core.transport import Transport

EVENT = "io.phoenix.event"  # = kind
E_WHAT, E_WHO, E_AT, E_ON = "io.phoenix.event.what", "io.phoenix.event.who", "io.phoenix.event.at", "io.phoenix.event.on"
ROTATE_JOIN_TOKEN, AUTOLOCK = "rotate-join-token", "autolock"


@dataclass(frozen=True)
class Event:
    name: str
    kind: str
    what: str  # e.g. "worker", "worker+manager", "on", "off"
    who: str
    at: int  # epoch seconds, the clock of the machine that ran Phoenix
    on: str  # the manager's name

    def describe(self) -> str:
        return f"{self.kind} {self.what} at {clock(self.at)} by {self.who} on {self.on}"


def clock(epoch: int) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(epoch))


def event_name(at: int) -> str:
    return f"phx-cluster-event-{time.strftime('%Y%m%dT%H%M%SZ', time.gmtime(at))}-{secrets.token_hex(3)}"


def create_argv(event: Event) -> list[str]:
    labels = {EVENT: event.kind, E_WHAT: event.what, E_WHO: event.who, E_AT: str(event.at), E_ON: event.on}
    argv = ["docker", "config", "create"]
    for key, value in labels.items():
        argv += ["--label", f"{key}={value}"]
    return [*argv, "--", event.name, "-"]


def event_data(event: Event) -> str:
    return json.dumps({"kind": event.kind, "what": event.what, "who": event.who, "at": event.at,
                       "on": event.on}, sort_keys=True) + "\n"


# Every event config's labels, one JSON object per line (Labels as docker prints them: a map).
READ_SCRIPT = (f'ids=$(docker config ls -q --filter "label={EVENT}"); '
               'if [ -n "$ids" ]; then docker config inspect --format "{{json .Spec}}" $ids; fi')


def read_argv() -> list[str]:
    return ["sh", "-c", READ_SCRIPT]


def parse_read(stdout: str) -> list[Event]:
    """Events oldest first; a config that is not one of ours is ignored."""
    events = []
    for line in stdout.splitlines():
        if not line.strip():
            continue
        spec = json.loads(line)
        labels = spec.get("Labels") or {}
        try:
            events.append(Event(spec["Name"], labels[EVENT], labels.get(E_WHAT, ""), labels.get(E_WHO, "?"),
                                int(labels.get(E_AT, "0")), labels.get(E_ON, "?")))
        except (KeyError, ValueError):
            continue
    return sorted(events, key=lambda e: (e.at, e.name))


def read(transport: Transport, manager: VM) -> list[Event]:
    return parse_read(transport.run(manager, read_argv(), mutating=False).stdout)


def record(transport: Transport, manager: VM, kind: str, what: str, at: int | None = None) -> Event:
    """Append one event (a swarm config) on `manager`."""
    at = int(time.time()) if at is None else at
    event = Event(event_name(at), kind, what, me(), at, manager.name)
    transport.run(manager, create_argv(event), mutating=True, stdin=event_data(event))
    return event


def last(events: list[Event], kind: str) -> Event | None:
    found = [e for e in events if e.kind == kind]
    return found[-1] if found else None
