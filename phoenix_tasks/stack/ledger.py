"""The ledger: every deploy, rm and rollback of an environment, kept in the swarm.

One record is two swarm configs (immutable, so a record is appended, never edited):

- the entry, `phx-ledger-<sha12(namespace)>-<seq>`, created just before the change: what
  was deployed (the rendered document exactly as sent, the configs and secrets it
  names, the image digests), by whom, when, for which command;
- its result, `<entry>-r`, created when the change ends: converged, failed (with the
  reason), rolled back (swarm undid the update), removed; and how long it took.

An entry without a result is "incomplete": the run was killed, or lost its manager.
Neither holds a secret value: the document names secrets, never their content.
Labels make `docker config ls --filter` find them; the data holds the rest.
"""

from __future__ import annotations

import base64
import hashlib
import json
import time
from dataclasses import dataclass, field
from typing import Any, Mapping

from ..core.cluster_text import clean
from ..core.model import VM
from ..core.transport import RemoteCommandFailed, Transport
from .commands import SEPARATOR, object_remove

ENTRY = "io.phoenix.ledger"  # = namespace
RESULT_OF = "io.phoenix.ledger.result-of"  # = namespace
L_SEQ, L_KIND, L_HASH = "io.phoenix.ledger.seq", "io.phoenix.ledger.kind", "io.phoenix.ledger.hash"
L_RESULT = "io.phoenix.ledger.result"

CONVERGED, FAILED, ROLLED_BACK, REMOVED, INCOMPLETE = "converged", "failed", "rolled-back", "removed", "incomplete"
KINDS = ("deploy", "rm", "rollback")


def entry_name(namespace: str, seq: int) -> str:
    return f"phx-ledger-{hashlib.sha256(namespace.encode()).hexdigest()[:12]}-{seq:06d}"


@dataclass
class Entry:
    namespace: str
    seq: int
    kind: str
    env: str
    stack: str
    hash: str | None
    who: str
    command: str
    started: int  # the manager's clock, epoch seconds
    document: str | None = None  # the rendered compose document, as sent
    objects: tuple[str, ...] = ()  # configs and secrets it names
    digests: Mapping[str, str] = field(default_factory=dict)  # image as written -> image@digest
    services: tuple[str, ...] = ()  # what the deploy changed: "add|change|remove <service>"
    result: str = INCOMPLETE
    reason: str = ""
    duration_s: float | None = None
    finished: int | None = None

    @property
    def name(self) -> str:
        return entry_name(self.namespace, self.seq)

    def to_dict(self, with_document: bool = False) -> dict[str, Any]:
        d = {"seq": self.seq, "kind": self.kind, "env": self.env, "stack": self.stack, "hash": self.hash,
             "who": self.who, "command": self.command, "started": self.started, "result": self.result,
             "reason": self.reason, "duration_s": self.duration_s, "finished": self.finished,
             "digests": dict(self.digests), "objects": list(self.objects), "services": list(self.services)}
        if with_document:
            d["document"] = self.document
        return d


def entry_data(entry: Entry) -> str:
    return json.dumps({"namespace": entry.namespace, "kind": entry.kind, "env": entry.env, "stack": entry.stack,
                       "hash": entry.hash, "who": entry.who, "command": entry.command, "started": entry.started,
                       "document": entry.document, "objects": list(entry.objects),
                       "digests": dict(entry.digests), "services": list(entry.services)}, sort_keys=True) + "\n"


def result_data(entry: Entry) -> str:
    return json.dumps({"result": entry.result, "reason": entry.reason, "duration_s": entry.duration_s,
                       "finished": entry.finished}, sort_keys=True) + "\n"


def create_entry_argv(entry: Entry) -> list[str]:
    labels = {ENTRY: entry.namespace, L_SEQ: str(entry.seq), L_KIND: entry.kind, L_HASH: entry.hash or "-"}
    return _create(labels, entry.name)


def create_result_argv(entry: Entry) -> list[str]:
    labels = {RESULT_OF: entry.namespace, L_SEQ: str(entry.seq), L_RESULT: entry.result}
    return _create(labels, entry.name + "-r")


def _create(labels: Mapping[str, str], name: str) -> list[str]:
    argv = ["docker", "config", "create"]
    for key, value in labels.items():
        argv += ["--label", f"{key}={value}"]
    return [*argv, "--", name, "-"]


def remove_argv(names: list[str]) -> list[str]:
    return object_remove("config", names)


# The manager's clock, then every entry and result of the namespace, inspected (data included).
READ_SCRIPT = (
    "date +%s; "
    f"echo '{SEPARATOR}'; "
    f'ids=$(docker config ls -q --filter "label={ENTRY}=$1"; docker config ls -q --filter "label={RESULT_OF}=$1"); '
    'if [ -n "$ids" ]; then docker config inspect $ids; else echo "[]"; fi'
)


def read_argv(namespace: str) -> list[str]:
    return ["sh", "-c", READ_SCRIPT, "phoenix", namespace]


def _data(item: Mapping[str, Any]) -> dict[str, Any]:
    try:
        value = json.loads(base64.b64decode((item.get("Spec") or {}).get("Data") or "").decode("utf-8") or "{}")
    except (ValueError, UnicodeDecodeError):
        return {}
    return value if isinstance(value, dict) else {}


def parse_read(stdout: str) -> tuple[int, list[Entry]]:
    """(the manager's clock, the entries oldest first, each with its result if any)."""
    clock, _, rest = stdout.partition(SEPARATOR)
    entries: dict[int, Entry] = {}
    results: dict[int, dict] = {}
    for item in json.loads(rest.strip() or "[]"):
        labels = (item.get("Spec") or {}).get("Labels") or {}
        try:
            seq = int(labels[L_SEQ])
        except (KeyError, ValueError):
            continue
        data = _data(item)
        if ENTRY in labels:
            entries[seq] = Entry(
                namespace=labels[ENTRY], seq=seq, kind=data.get("kind", labels.get(L_KIND, "?")),
                env=data.get("env", ""), stack=data.get("stack", ""), hash=data.get("hash"),
                who=clean(data.get("who", "?")), command=clean(data.get("command", "")), started=int(data.get("started") or 0),
                document=data.get("document"), objects=tuple(data.get("objects") or ()),
                digests=dict(data.get("digests") or {}), services=tuple(data.get("services") or ()))
        elif RESULT_OF in labels:
            results[seq] = data
    for seq, data in results.items():
        if seq in entries:
            e = entries[seq]
            e.result, e.reason = clean(data.get("result", INCOMPLETE)), clean(data.get("reason", ""), 2000)
            e.duration_s, e.finished = data.get("duration_s"), data.get("finished")
    return int(clock.strip() or 0), [entries[k] for k in sorted(entries)]


def read(transport: Transport, manager: VM, namespace: str) -> tuple[int, list[Entry]]:
    return parse_read(transport.run(manager, read_argv(namespace), mutating=False).stdout)


class Recorder:
    """Appends one record: `start` before the change, `finish` after it."""

    def __init__(self, transport: Transport, manager: VM):
        self.transport, self.manager = transport, manager
        self._t0 = 0.0

    def start(self, entry: Entry) -> Entry:
        now, entries = read(self.transport, self.manager, entry.namespace)
        entry.started = now
        entry.seq = (entries[-1].seq if entries else 0) + 1
        while True:  # under the environment's lock nobody else appends; still, never overwrite
            try:
                self.transport.run(self.manager, create_entry_argv(entry), mutating=True, stdin=entry_data(entry))
                break
            except RemoteCommandFailed as exc:
                if "already exists" not in exc.stderr and "AlreadyExists" not in exc.stderr:
                    raise
                entry.seq += 1
        self._t0 = time.monotonic()
        return entry

    def finish(self, entry: Entry, result: str, reason: str = "") -> Entry:
        entry.result, entry.reason = result, reason[:2000]
        entry.duration_s = round(time.monotonic() - self._t0, 1)
        entry.finished = entry.started + int(entry.duration_s)
        self.transport.run(self.manager, create_result_argv(entry), mutating=True, stdin=result_data(entry))
        return entry


def retained(entries: list[Entry], keep: int) -> tuple[list[Entry], list[Entry]]:
    """(the last `keep` entries, the older ones).  The last converged deploy is always
    kept: a run of failures must not push out the one a rollback goes back to."""
    if keep <= 0:
        return list(entries), []
    kept, old = entries[-keep:], entries[:-keep]
    if not any(e.result == CONVERGED and e.document for e in kept):
        good = [e for e in old if e.result == CONVERGED and e.document]
        if good:
            old.remove(good[-1])
            kept = [good[-1], *kept]
    return kept, old
