"""The swarm's security: join-token rotation, autolock with its unlock key file, and
unlocking a locked manager (the init-only address pool is in init_settings.py; its drift
is one of the warnings here).

- **Token rotation**: `docker swarm join-token --rotate -q ROLE` on the control
  manager.  The new token is a `Secret` held in memory to check the rotation (read
  again: it differs from the old one) and is never printed; a cluster event
  (`events.py`) records that it happened, by whom and when, never the token.
- **Autolock**: `docker swarm update --autolock=true`, then the unlock key
  (`docker swarm unlock-key -q`, a `Secret`) is written to `swarm.autolock_key_file`
  with mode 0600 (a new file, created 0600, renamed over the old one: never readable
  by others, even briefly).  A manager found `locked` is unlocked from that file by the
  swarm converge (`swarm.init/join`, `sync-all`) before anything else: the key goes on
  `docker swarm unlock`'s stdin, never on a command line.

Plans here are pure functions of (config, facts, the key file as read); the flows
(`rotate`, `autolock`) are facts -> plan -> show -> apply -> read again.
"""

from __future__ import annotations

import dataclasses
import os
import re
import secrets as pysecrets
import stat
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable, Mapping, Sequence

from ..core.errors import PhoenixError
from ..core.model import VM, Config
from ..core.plan import LOCAL, Action, Blocked, Outcome, Payload, Plan
from ..core.secrets import Secret
from ..core.transport import Transport
from . import commands, events
from .facts import LOCKED, ClusterFacts, read_facts
from .init_settings import DOCKER_DEFAULT_POOL, DOCKER_DEFAULT_SUBNET_SIZE, pool_drift

KEY_PATTERN = re.compile(r"SWMKEY-1-[A-Za-z0-9+/=]{20,200}")
MAX_KEY_FILE_BYTES = 4096
ROLES = ("worker", "manager")
SETTING = "swarm.autolock_key_file"


class BadFlag(PhoenixError):
    """A flag's value is wrong (usage: exit 2); nothing was done."""

    exit_code = 2


# -- the unlock key file --------------------------------------------------------------------

@dataclass(frozen=True)
class KeyFile:
    """The unlock key file as read (once, before any connection): the key, or why not."""

    path: Path | None
    key: Secret | None = None
    problem: str | None = None  # None when `key` is usable

    @property
    def usable(self) -> bool:
        return self.key is not None and self.problem is None


def read_key_file(path: Path | None) -> KeyFile:
    """The key in `path`; a missing, open-to-others or malformed file is a problem, and
    nothing of its content is ever in a message."""
    if path is None:
        return KeyFile(None, problem=f"{SETTING} is not set")
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return KeyFile(path, problem=f"the unlock key file {path} ({SETTING}) does not exist")
    except OSError as exc:
        return KeyFile(path, problem=f"the unlock key file {path} cannot be read: {exc.strerror}")
    if not stat.S_ISREG(st.st_mode):
        return KeyFile(path, problem=f"the unlock key file {path} is not a regular file")
    if st.st_mode & 0o077:
        return KeyFile(path, problem=f"the unlock key file {path} is open to others (mode "
                                     f"{stat.S_IMODE(st.st_mode):04o}): chmod 600 {path}")
    if st.st_size > MAX_KEY_FILE_BYTES:
        return KeyFile(path, problem=f"the unlock key file {path} is too large for a key")
    try:
        with open(path, "rb") as fh:
            raw = fh.read(MAX_KEY_FILE_BYTES + 1)
    except OSError as exc:
        return KeyFile(path, problem=f"the unlock key file {path} cannot be read: {exc.strerror}")
    try:
        text = raw.decode("ascii").strip()
    except UnicodeDecodeError:
        text = ""
    if not KEY_PATTERN.fullmatch(text):
        return KeyFile(path, problem=f"the unlock key file {path} does not hold a swarm unlock key "
                                     f"(one line SWMKEY-1-...)")
    return KeyFile(path, Secret(text))


def check_key_file_writable(path: Path | None) -> Path:
    """Before any connection: where `autolock --enable` will write the key."""
    if path is None:
        raise PhoenixError(f"{SETTING} is not set in the hypervisor config: the unlock key must be written "
                           f"somewhere before autolock is enabled; nothing was done")
    if path.is_dir():
        raise PhoenixError(f"{SETTING} {path} is a directory; name a file; nothing was done")
    if not path.parent.is_dir():
        raise PhoenixError(f"the directory of {SETTING} {path} does not exist; create it (mode 0700); "
                           f"nothing was done")
    return path


def write_key_file(path: Path, key: Secret) -> None:
    """Write the key with mode 0600: a new file (O_EXCL, created 0600, whatever the umask
    adds) in the same directory, renamed over `path`: never readable by others."""
    tmp = path.parent / f".{path.name}.{os.getpid()}.{pysecrets.token_hex(4)}.tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    try:
        try:
            os.fchmod(fd, 0o600)
            os.write(fd, (key.reveal() + "\n").encode("ascii"))
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


# -- unlock: part of the swarm converge -----------------------------------------------------

def locked_hint(key: KeyFile | None) -> str:
    """What to do about a locked manager (Phoenix unlocks it only with a usable key file,
    and only in the phases that start with `unlock`: swarm.init/join, sync-all)."""
    if key is not None and key.usable:
        return f"`inv swarm.join` (or sync-all) unlocks it with the key in {key.path}"
    by_hand = ("run `docker swarm unlock` on the VM and give it the key (`docker swarm unlock-key -q` "
               "on an unlocked manager shows it)")
    if key is None or key.path is None:
        return f"{by_hand}, or set {SETTING} to a file holding the key so that Phoenix unlocks it; then run again"
    return f"{key.problem}: put the key there (mode 0600), or {by_hand}; then run again"


def with_unlock_hints(classes: Mapping[int, object], key: KeyFile | None) -> dict[int, object]:
    """Classes with each locked VM's detail saying what to do (the plan's blocked reason)."""
    return {vmid: dataclasses.replace(c, detail=locked_hint(key)) if c.kind == LOCKED else c
            for vmid, c in classes.items()}


def plan_unlock(classes: Mapping[int, object], key: KeyFile | None, wants: Callable[[VM], bool]) -> Plan:
    """One `unlock` action per locked VM, with the key on stdin; none without a usable key
    (the VM is then blocked by the other phases, with `locked_hint`)."""
    plan = Plan()
    if key is None or not key.usable:
        return plan
    for c in classes.values():
        if c.kind == LOCKED and wants(c.vm):
            plan.actions.append(Action(
                kind="unlock", where=c.vm, target=c.vm, phase="unlock",
                summary=f"unlock (key from {key.path})", argv=tuple(commands.swarm_unlock()),
                stdin=Payload(Secret(key.key.reveal() + "\n"), f"unlock key from {key.path}")))
    if plan.actions:
        names = ", ".join(a.target.name for a in plan.actions)
        plan.warnings.append(f"{names} locked: the other phases are planned once unlocked (a locked manager's "
                             f"swarm state cannot be read)")
    return plan


def swarm_warnings(config: Config, facts: ClusterFacts, key: KeyFile | None) -> list[str]:
    """Init-only drift and an autolocked swarm whose key Phoenix does not hold."""
    warnings = []
    drift = pool_drift(config.hypervisor.swarm, facts)
    if drift:
        warnings.append(drift)
    settings = facts.swarm_settings
    if settings is not None and settings.autolock and (key is None or not key.usable):
        problem = key.problem if key is not None else f"{SETTING} is not set"
        warnings.append(f"autolock is on, and {problem}: a manager that restarts stays locked until unlocked by "
                        f"hand (`inv swarm.autolock --enable` writes the key file)")
    return warnings


# -- token rotation --------------------------------------------------------------------------

def roles_from(flag: str) -> tuple[str, ...]:
    if flag == "both":
        return ROLES
    if flag in ROLES:
        return (flag,)
    raise BadFlag(f"--rotate {flag}: say worker, manager or both; nothing was done")


def plan_rotation(facts: ClusterFacts, roles: Iterable[str]) -> Plan:
    plan = Plan()
    if facts.control is None:
        plan.blocked.append(Blocked("swarm", "no reachable manager is in a swarm: run `inv swarm.init` first"))
        return plan
    for role in roles:
        plan.actions.append(Action(
            kind="rotate", where=facts.control, target=f"{role} join token",
            summary="the old token stops joining; nodes already in the swarm are not affected",
            argv=tuple(commands.rotate_join_token(role))))
    return plan


@dataclass
class Rotated:
    outcome: Outcome
    at: int | None = None
    event: events.Event | None = None
    problems: list[str] = field(default_factory=list)


def rotate(transport: Transport, config: Config, roles: Sequence[str], *, dry_run: bool = False,
           show: Callable[[Plan], None] = lambda plan: None) -> Rotated:
    """Rotate the join tokens of `roles` on the control manager; read again: each role's
    token differs from the one before.  Tokens stay Secrets in memory."""
    facts = read_facts(transport, config)
    plan = plan_rotation(facts, roles)
    show(plan)
    result = Rotated(Outcome(plan, dry_run=dry_run, blocked=list(plan.blocked), facts=facts))
    if dry_run or not plan.actions:
        return result
    manager = facts.control
    before = {role: _read_token(transport, manager, role) for role in roles}
    result.at = int(time.time())
    for action, role in zip(plan.actions, roles):
        try:
            res = transport.run(manager, action.argv, mutating=True, secret_output=True)
        except PhoenixError as exc:
            result.outcome.failed.append((action.subject, str(exc)))
            continue
        transport.keep_secret(Secret(res.stdout.strip()))  # the new token: scrubbed from anything after
        result.outcome.applied.append(action)
    for action, role in zip(plan.actions, roles):
        if action in result.outcome.applied and _read_token(transport, manager, role) == before[role]:
            result.outcome.pending.append(action)  # read again: still the old token
    done = [role for action, role in zip(plan.actions, roles) if action in result.outcome.applied]
    if done:
        try:
            result.event = events.record(transport, manager, events.ROTATE_JOIN_TOKEN, "+".join(done), result.at)
        except PhoenixError as exc:
            result.problems.append(f"the rotation was not recorded as a cluster event: {exc}")
    return result


def _read_token(transport: Transport, manager: VM, role: str) -> Secret:
    res = transport.run(manager, commands.join_token(role), mutating=False, secret_output=True)
    return transport.keep_secret(Secret(res.stdout.strip()))


# -- autolock ------------------------------------------------------------------------------

@dataclass(frozen=True)
class AutolockFacts:
    enabled: bool | None  # None: no manager answers
    current_key: Secret | None  # the swarm's unlock key (autolock on), read from the manager
    file: KeyFile


def read_autolock(transport: Transport, config: Config, facts: ClusterFacts) -> AutolockFacts:
    settings = facts.swarm_settings
    file = read_key_file(config.hypervisor.swarm.autolock_key_file)
    if settings is None:
        return AutolockFacts(None, None, file)
    key = None
    if settings.autolock:
        res = transport.run(facts.control, commands.unlock_key(), mutating=False, secret_output=True)
        key = transport.keep_secret(Secret(res.stdout.strip()))
    return AutolockFacts(bool(settings.autolock), key, file)


def plan_autolock(config: Config, facts: ClusterFacts, state: AutolockFacts, enable: bool) -> Plan:
    plan = Plan()
    if facts.control is None or state.enabled is None:
        plan.blocked.append(Blocked("swarm", "no reachable manager is in a swarm: run `inv swarm.init` first"))
        return plan
    path = config.hypervisor.swarm.autolock_key_file
    write = Action(kind="key-file", where=LOCAL, target=path, phase="autolock",
                   summary="write the unlock key (mode 0600; the key is read from the manager, never shown)")
    if enable:
        if not state.enabled:
            plan.actions.append(Action(kind="autolock", where=facts.control, target="swarm", phase="autolock",
                                       summary="turn autolock on: a manager that restarts stays locked until unlocked with the key",
                                       argv=tuple(commands.swarm_autolock(True))))
            plan.actions.append(write)
        elif not (state.file.usable and state.file.key == state.current_key):
            why = state.file.problem or "it holds another key"
            plan.actions.append(dataclasses.replace(write, summary=write.summary + f" ({why})"))
    elif state.enabled:
        plan.actions.append(Action(kind="autolock", where=facts.control, target="swarm", phase="autolock",
                                   summary="turn autolock off",
                                   argv=tuple(commands.swarm_autolock(False))))
        if path is not None and path.exists():
            plan.warnings.append(f"the unlock key file {path} is no longer needed once autolock is off; Phoenix "
                                 f"leaves it (remove it yourself)")
    return plan


@dataclass
class Autolocked:
    outcome: Outcome
    state: AutolockFacts | None = None  # as read again after the apply
    event: events.Event | None = None
    problems: list[str] = field(default_factory=list)
    last: events.Event | None = None  # the last autolock change recorded (status only)


def autolock(transport: Transport, config: Config, enable: bool, *, dry_run: bool = False,
             show: Callable[[Plan], None] = lambda plan: None) -> Autolocked:
    """Turn autolock on (and keep the key in the key file) or off; read again."""
    facts = read_facts(transport, config)
    state = read_autolock(transport, config, facts)
    plan = plan_autolock(config, facts, state, enable)
    show(plan)
    result = Autolocked(Outcome(plan, dry_run=dry_run, blocked=list(plan.blocked), facts=facts), state)
    if dry_run or not plan.actions:
        return result
    manager = facts.control
    path = config.hypervisor.swarm.autolock_key_file
    key = state.current_key
    for action in plan.actions:
        try:
            if action.kind == "autolock":
                transport.run(manager, action.argv, mutating=True)  # its output holds the key: not kept
                if enable:
                    res = transport.run(manager, commands.unlock_key(), mutating=False, secret_output=True)
                    key = transport.keep_secret(Secret(res.stdout.strip()))
            elif action.kind == "key-file":
                if key is None or not KEY_PATTERN.fullmatch(key.reveal()):
                    raise PhoenixError(f"{manager}: `docker swarm unlock-key -q` did not print a key")
                write_key_file(path, key)
        except (PhoenixError, OSError) as exc:
            message = f"{path}: {exc.strerror}" if isinstance(exc, OSError) else str(exc)
            result.outcome.failed.append((action.subject, message))
            break
        result.outcome.applied.append(action)
    if any(a.kind == "autolock" for a in result.outcome.applied):
        try:
            result.event = events.record(transport, manager, events.AUTOLOCK, "on" if enable else "off")
        except PhoenixError as exc:
            result.problems.append(f"the change was not recorded as a cluster event: {exc}")
    final = read_facts(transport, config)
    result.state = read_autolock(transport, config, final)
    result.outcome.facts = final
    if not result.outcome.failed:
        result.outcome.pending = plan_autolock(config, final, result.state, enable).actions
    return result


def key_file_state(file: KeyFile, current: Secret | None = None) -> str:
    """The key file's state in words (never its content); with the swarm's current key,
    whether the file holds it."""
    if file.path is None:
        return f"not configured ({SETTING})"
    if not file.usable:
        return file.problem
    if current is not None and file.key != current:
        return (f"{file.path} holds another key than the swarm's (`inv swarm.autolock --enable` "
                f"writes the current one)")
    return f"{file.path} (mode 0600" + (", the swarm's current key)" if current is not None else ")")


def read_autolock_status(transport: Transport, config: Config) -> Autolocked:
    """`swarm.autolock` without a flag: autolock on/off, the key file, the last change; a
    read.  Not ok (exit 1) when no manager answers, or autolock is on and the key file
    does not hold the swarm's key."""
    facts = read_facts(transport, config)
    state = read_autolock(transport, config, facts)
    plan = Plan()
    result = Autolocked(Outcome(plan, facts=facts), state)
    if facts.control is None:
        plan.blocked.append(Blocked("swarm", "no reachable manager is in a swarm: run `inv swarm.init` first"))
    elif state.enabled and not (state.file.usable and state.file.key == state.current_key):
        plan.blocked.append(Blocked("autolock", "on, and the key file does not hold the swarm's key: a manager that "
                                    "restarts stays locked; `inv swarm.autolock --enable` writes it"))
    result.outcome.blocked = list(plan.blocked)
    if facts.control is not None:
        result.last = events.last(events.read(transport, facts.control), events.AUTOLOCK)
    return result


def status_fields(config: Config, facts: ClusterFacts, key: KeyFile) -> dict:
    """The swarm's pool, subnet size and autolock for `swarm.status` (and its warnings)."""
    settings = facts.swarm_settings
    fields = {"autolock_key_file": key_file_state(key), "warnings": swarm_warnings(config, facts, key)}
    if settings is None or settings.default_addr_pool is None:
        return fields
    return {**fields, "default_addr_pool": list(settings.default_addr_pool or DOCKER_DEFAULT_POOL),
            "subnet_size": settings.subnet_size or DOCKER_DEFAULT_SUBNET_SIZE, "autolock": settings.autolock}
