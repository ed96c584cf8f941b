"""`swarm.logs`: the logs of one environment's services, read on a manager.

The commands are `docker service logs` (pure argv, one per service); docker prefixes
each line with `<service>.<slot>.<task>@<node>    | `.  Several services are read
with `--timestamps` and merged by time (docker's own timestamps, RFC 3339 with
nanoseconds); the timestamps are then cut unless asked for.  Following streams each
service on its own channel (`Transport.stream`, on a terminal so that Ctrl-C ends the
remote command too) and prints lines as they come.
"""

from __future__ import annotations

import re
import threading
from dataclasses import dataclass
from typing import Callable, Sequence

from ..core.argv import Arg
from ..core.errors import PhoenixError
from .commands import DOCKER
from .facts import parse_time

# Docker's --since takes a Go duration (10m, 1h30m, 45s) or a timestamp (RFC 3339,
# a date, or Unix seconds): the same forms are accepted here, nothing else.
_DURATION = re.compile(r"(?:\d+(?:\.\d+)?(?:ns|us|µs|ms|s|m|h))+")
_TIMESTAMP = re.compile(r"\d{4}-\d\d-\d\d(?:[T ]\d\d:\d\d(?::\d\d(?:\.\d{1,9})?)?(?:Z|[+-]\d\d:\d\d)?)?|\d{1,10}(?:\.\d{1,9})?")

# `2026-12-08T04:00:00.123456789Z name.1.abcdef@node    | message`: docker's CLI puts
# --timestamps first; the message follows the bar.
_STAMPED = re.compile(r"^(?P<time>\d{4}-\d\d-\d\dT\S+) (?P<prefix>[^|]*\|) ?(?P<message>.*)$", re.S)


class LogsError(PhoenixError):
    """A bad --tail/--since, or a service the environment does not have."""


def service_names(namespace: str) -> list[Arg]:
    """The names of a namespace's services (`docker stack deploy` labels them)."""
    return [DOCKER, "service", "ls", "--filter", f"label=com.docker.stack.namespace={namespace}",
            "--format", "{{.Name}}"]


def check_tail(value) -> str | None:
    """--tail as docker takes it: a whole number of lines, or None (everything)."""
    if value is None:
        return None
    text = str(value).strip()
    if text == "all":
        return None
    if not text.isdigit() or len(text) > 9:
        raise LogsError(f"--tail must be a whole number of lines (or 'all'), not {value!r}")
    return str(int(text))


def check_since(value) -> str | None:
    """--since as docker takes it: a duration (10m, 1h30m) or a timestamp."""
    if value is None:
        return None
    text = str(value).strip()
    if _DURATION.fullmatch(text) or _TIMESTAMP.fullmatch(text):
        return text
    raise LogsError(f"--since must be a duration (e.g. 10m, 1h30m) or a timestamp "
                    f"(e.g. 2026-12-08T04:00:00Z), not {value!r}")


def service_logs(service: str, *, follow: bool = False, tail: str | None = None, since: str | None = None,
                 timestamps: bool = True) -> list[Arg]:
    """`docker service logs` of one service (the name after `--`: never an option)."""
    argv: list[Arg] = [DOCKER, "service", "logs"]
    if follow:
        argv.append("--follow")
    if timestamps:
        argv.append("--timestamps")
    if tail is not None:
        argv += ["--tail", tail]
    if since is not None:
        argv += ["--since", since]
    return argv + ["--", service]


@dataclass(frozen=True)
class LogLine:
    time_ns: int | None  # None: a line without docker's timestamp (an error, a note)
    prefix: str  # `name.slot.task@node    |`
    stamp: str
    message: str

    def text(self, timestamps: bool = False) -> str:
        if self.time_ns is None:
            return self.message
        return f"{self.stamp} {self.prefix} {self.message}" if timestamps else f"{self.prefix} {self.message}"


def parse_line(line: str) -> LogLine:
    m = _STAMPED.match(line)
    if m:
        when = parse_time(m["time"])
        if when is not None:
            return LogLine(when, m["prefix"], m["time"], m["message"])
    return LogLine(None, "", "", line)


def merge(outputs: Sequence[str]) -> list[LogLine]:
    """The lines of several services' outputs, in time order (stable: lines with the same
    time keep their order; a line without a timestamp stays after the line before it)."""
    keyed = []
    for k, text in enumerate(outputs):
        last = 0
        for i, raw in enumerate(text.splitlines()):
            line = parse_line(raw)
            if line.time_ns is not None:
                last = line.time_ns
            keyed.append(((last, k, i), line))
    return [line for _, line in sorted(keyed, key=lambda kv: kv[0])]


def follow(transport, manager, services: Sequence[str], emit: Callable[[LogLine], None], *,
           tail: str | None, since: str | None, stop: threading.Event | None = None) -> dict[str, int | None]:
    """Stream every service's logs until each command ends or `stop` is set (Ctrl-C sets
    it): one channel per service, in threads; lines are emitted as they come, one at a
    time.  Returns each service's exit status (None: stopped)."""
    stop = stop or threading.Event()
    lock = threading.Lock()
    results: dict[str, int | None] = {}
    failures: dict[str, BaseException] = {}

    def on_line(raw: str) -> None:
        with lock:
            emit(parse_line(raw))

    def run(service: str) -> None:
        try:
            results[service] = transport.stream(
                manager, service_logs(service, follow=True, tail=tail, since=since), on_line, stop=stop)
        except BaseException as exc:  # noqa: BLE001 - reported by the caller, per service
            failures[service] = exc
        finally:
            if len(results) + len(failures) == len(services):
                stop.set()  # wake the waiting caller: every stream is over

    threads = [threading.Thread(target=run, args=(s,), daemon=True, name=f"logs {s}") for s in services]
    for t in threads:
        t.start()
    try:
        while not stop.wait(0.2):
            pass
    finally:
        stop.set()
        for t in threads:
            t.join(timeout=5)
    for exc in failures.values():
        raise exc  # a PhoenixError (unreachable, ...), or the reader's own (a closed pipe)
    return results
