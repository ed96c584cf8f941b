"""The lab registry: the process that serves the stand-in images under their real names.

Debian's `docker-registry` (distribution 2.8), `docker-registry serve CONFIG`, with a
config of the lab's own: it listens on the lab bridge's address (the lab gateway),
port 5000, and nowhere else, and keeps its storage in <state_dir>/registry/.  It has
no upstream (no `proxy:` section): it never fetches anything, it only serves what the
lab pushed (``mirror``).  Every lab engine names it as its Docker Hub mirror
(``commands.daemon_config``).

No systemd: `lab.up` starts it detached (``commands.registry_serve``) with its pid
in its pid file; a pid counts as this lab's registry only while its command line
names this lab's config file (a recycled pid never does).  Like a VM: read facts ->
plan -> apply; a running registry with the same config yields no action.
"""

from __future__ import annotations

import ipaddress
import shutil
import time
from dataclasses import dataclass

import yaml

from phoenix_tasks.core.errors import PhoenixError
from phoenix_tasks.lab import commands, keys, procs, registry_api, system
from phoenix_tasks.lab.naming import REGISTRY_PORT, LabNames
from phoenix_tasks.core.plan import LOCAL, Action

READY_TIMEOUT_S = 20.0
WHAT = "lab registry"


class RegistryNotReady(PhoenixError):
    pass


@dataclass(frozen=True)
class Facts:
    config_text: str | None  # the config file on disk (None: missing)
    pid: int | None  # the lab registry's process (None: not running)
    answers: bool  # GET /v2/ on its address gives 200


def address(gateway: ipaddress.IPv4Interface) -> str:
    """"host:port" of the lab registry: the lab bridge's own address, port 5000."""
    return f"{gateway.ip}:{REGISTRY_PORT}"


def config_text(names: LabNames, addr: str) -> str:
    """The registry's config (YAML): listen on addr only, storage in the state dir,
    no upstream, no debug listener, nothing purged behind the lab's back."""
    return yaml.safe_dump({
        "version": 0.1,
        "log": {"level": "info", "formatter": "text", "fields": {"service": "phoenix-lab-registry"}},
        "storage": {
            "filesystem": {"rootdirectory": str(names.registry_storage)},
            "delete": {"enabled": True},
            "maintenance": {"uploadpurging": {"enabled": False}},
        },
        "http": {"addr": addr, "headers": {"X-Content-Type-Options": ["nosniff"]}},
    }, sort_keys=False)


def pid(names: LabNames) -> int | None:
    return procs.lab_pid(names.registry_pidfile, str(names.registry_config))


def read_facts(names: LabNames, addr: str) -> Facts:
    running = pid(names)
    return Facts(
        config_text=names.registry_config.read_text() if names.registry_config.is_file() else None,
        pid=running,
        answers=bool(running) and registry_api.answers(addr),
    )


def _act(kind: str, summary: str, argv=None) -> Action:
    return Action(kind=kind, where=LOCAL, summary=f"{WHAT}: {summary}",
                  argv=tuple(argv) if argv is not None else None, target=WHAT)


def plan(names: LabNames, addr: str, desired: str, facts: Facts) -> list[Action]:
    """Actions that bring the registry from facts to desired (empty: nothing to do)."""
    actions = []
    changed = facts.config_text != desired
    if changed:
        actions.append(_act("registry-config", f"write {names.registry_config}"))
    if facts.pid is None:
        actions.append(_act("registry-start", f"start on {addr}", commands.registry_serve(names)))
    elif changed or not facts.answers:
        why = "its config changed" if changed else f"it does not answer on {addr}"
        actions.append(_act("registry-restart", f"restart (pid {facts.pid}: {why})",
                            commands.registry_serve(names)))
    return actions


def apply(names: LabNames, desired: str, action: Action) -> None:
    if action.kind == "registry-config":
        names.registry_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        keys.write_private(names.registry_config, desired)
    elif action.kind in ("registry-start", "registry-restart"):
        stop(names)
        names.registry_pidfile.unlink(missing_ok=True)
        names.registry_storage.mkdir(mode=0o700, parents=True, exist_ok=True)
        with open(names.registry_log, "ab") as log:
            log.write(f"--- phoenix lab: starting the registry {time.ctime()}\n".encode())
        system.spawn(list(action.argv), names.registry_log)
    else:  # pragma: no cover - plan() only makes the steps above
        raise ValueError(action.kind)


def ensure(names: LabNames, addr: str) -> list[str]:
    """Make the registry run with its config on addr; the summaries of what was done."""
    desired = config_text(names, addr)
    done = []
    for action in plan(names, addr, desired, read_facts(names, addr)):
        apply(names, desired, action)
        done.append(action.summary)
    if done:
        wait_ready(names, addr)
    return done


def wait_ready(names: LabNames, addr: str, timeout_s: float = READY_TIMEOUT_S) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if registry_api.answers(addr, timeout=0.5):
            return
        # It wrote its pid file and died (e.g. the address is taken).  Only a pid that
        # was read whole and is gone counts: a pid file being written reads as empty.
        written = procs.read_pidfile(names.registry_pidfile)
        if written is not None and not procs.is_running(written):
            break
        time.sleep(0.05)
    raise RegistryNotReady(f"the {WHAT} does not answer on {addr}; see {names.registry_log}: "
                           f"{system.last_line(names.registry_log)}")


def stop(names: LabNames) -> list[str]:
    running = pid(names)
    if running is None:
        return []
    left = procs.stop([running], 10)
    if left:
        raise PhoenixError(f"the {WHAT} (pid {running}) did not stop")
    return [f"stopped the {WHAT} (pid {running})"]


def remove(names: LabNames) -> list[str]:
    """Stop the registry and remove its config, storage, pid file and log."""
    done = stop(names)
    if names.registry_dir.exists():
        shutil.rmtree(names.registry_dir)
        done.append(f"removed {names.registry_dir}")
    return done
