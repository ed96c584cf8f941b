"""What a rendered stack document may not ask of the cluster (issue 21).

Each check is a pure function of the interpolated, type-cast document (what would be
deployed) and returns `Finding`s, each at a path into the compose file, so that
`inv validate` names the file and the JSON pointer, and a deploy refuses before any
connection (render raises):

- `check_bounds`: integer fields within sane ranges: replicas at most the stack's
  `max_replicas` (a huge count once made the manager's dockerd grow to 22 GB), ports
  1-65535, parallelism, restart attempts, file modes, resource limits, ulimits;
- `check_unsupported`: `privileged: true` and `pid: host`, which swarm services do
  not support (`docker stack deploy` drops them without a word);
- `check_images`: image references that docker's reference grammar refuses;
- `check_externals`: external (or explicitly named) secrets, configs, networks and
  volumes that reach into another environment's namespace (one environment could
  read another's secrets); a stack shares one on purpose by listing it in its
  phoenix.json `shares`, and the share is then a note in the plan.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Collection, Iterator, Literal, Mapping

from .naming import ENV_NAME

DEFAULT_MAX_REPLICAS = 100
MAX_PORT = 65535
MAX_RESTART_ATTEMPTS = 10_000
MAX_HEALTHCHECK_RETRIES = 1_000
MAX_FILE_MODE = 0o777
MAX_CPUS = 1024
MIN_MEMORY = 6 * 1024 * 1024  # docker's own minimum for a memory limit
MAX_MEMORY = 4 << 40  # 4 TiB
MAX_PIDS = 4_194_304  # the kernel's pid_max ceiling
MAX_NOFILE = 1_048_576  # the kernel's default nr_open
MAX_ULIMIT = (1 << 63) - 1
MAX_REFERENCE = 255  # docker's limit for an image name
# Phoenix's own objects outside any stack namespace: the ledger and lock configs.
PHOENIX_PREFIXES = ("phx-ledger-", "phx-lock-")


@dataclass(frozen=True)
class Finding:
    path: tuple  # into the compose document
    message: str
    severity: Literal["error", "warning"] = "error"


def _q(value: Any, limit: int = 80) -> str:
    """`value` quoted for a message, cut to `limit` characters (a value can be 1 MiB)."""
    text = repr(value)
    return text if len(text) <= limit else text[:limit] + f"... ({len(str(value))} characters)"


def _at(doc: Any, *keys: Any) -> Any:
    for k in keys:
        if isinstance(doc, dict):
            doc = doc.get(k)
        elif isinstance(doc, list) and isinstance(k, int) and 0 <= k < len(doc):
            doc = doc[k]
        else:
            return None
    return doc


def _services(doc: Mapping) -> Iterator[tuple[str, dict]]:
    for name, svc in (doc.get("services") or {}).items():
        if isinstance(svc, dict):
            yield name, svc


def _whole(value: Any) -> int | None:
    """An int from an int or a string of digits; None for anything else (bool, float...)."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str) and re.fullmatch(r"\s*[+-]?\d{1,30}\s*", value):
        return int(value)
    return None


def _range(found: list[Finding], path: tuple, value: Any, low: int, high: int, what: str, limit: str = "") -> None:
    if value is None:
        return
    n = _whole(value)
    if n is None:
        found.append(Finding(path, f"{what} {_q(value)} is not a whole number"))
    elif not low <= n <= high:
        found.append(Finding(path, f"{what} {n} is out of range: {low} to {high}{limit}"))


# -- bounds --------------------------------------------------------------------------

_BYTES = re.compile(r"^(\d+(?:\.\d+)?) ?([kmgtp])?i?b?$", re.I)
_UNIT = {None: 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40, "p": 1 << 50}


def _bytes(value: Any) -> int | None:
    """docker's RAMInBytes: 512m, 1.5g, 1GiB, 1048576."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    m = _BYTES.match(str(value).strip())
    if not m:
        return None
    return int(float(m[1]) * _UNIT[m[2].lower() if m[2] else None])


def _port_numbers(text: str) -> list[str] | None:
    """The port numbers of a short-syntax port or expose entry ([ip:][published:]target[/proto],
    each side a number or a range a-b); None when it is not that shape."""
    text = text.split("/", 1)[0]
    if text.startswith("["):  # [ipv6]:published:target
        text = text.rsplit("]:", 1)[-1]
    parts = text.split(":")
    if len(parts) == 3 or (len(parts) == 2 and "." in parts[0]):
        parts = parts[1:]  # host ip
    numbers = []
    for part in parts:
        if part == "":
            continue
        pieces = part.split("-")
        if len(pieces) > 2 or not all(re.fullmatch(r"\d{1,30}", p) for p in pieces):
            return None
        numbers.extend(pieces)
    return numbers or None


def check_bounds(doc: Mapping, max_replicas: int, limit_source: str = "") -> list[Finding]:
    """Integer fields within sane ranges; `limit_source` says where max_replicas is set."""
    found: list[Finding] = []
    replicas_limit = f" (max_replicas{limit_source})"
    for name, svc in _services(doc):
        s = ("services", name)
        deploy = svc.get("deploy") if isinstance(svc.get("deploy"), dict) else {}
        _range(found, s + ("deploy", "replicas"), deploy.get("replicas"), 0, max_replicas, "replicas", replicas_limit)
        _range(found, s + ("deploy", "placement", "max_replicas_per_node"),
               _at(deploy, "placement", "max_replicas_per_node"), 0, max_replicas, "max_replicas_per_node",
               replicas_limit)
        for section in ("update_config", "rollback_config"):
            _range(found, s + ("deploy", section, "parallelism"), _at(deploy, section, "parallelism"),
                   0, max_replicas, "parallelism", replicas_limit)
            ratio = _at(deploy, section, "max_failure_ratio")
            if ratio is not None and (isinstance(ratio, bool) or not isinstance(ratio, (int, float))
                                      or not 0 <= ratio <= 1):
                found.append(Finding(s + ("deploy", section, "max_failure_ratio"),
                                     f"max_failure_ratio {_q(ratio)} is out of range: 0 to 1"))
        _range(found, s + ("deploy", "restart_policy", "max_attempts"), _at(deploy, "restart_policy", "max_attempts"),
               0, MAX_RESTART_ATTEMPTS, "max_attempts")
        _range(found, s + ("healthcheck", "retries"), _at(svc, "healthcheck", "retries"),
               0, MAX_HEALTHCHECK_RETRIES, "healthcheck retries")
        for kind in ("limits", "reservations"):
            res = _at(deploy, "resources", kind)
            if not isinstance(res, dict):
                continue
            where = s + ("deploy", "resources", kind)
            cpus = res.get("cpus")
            if cpus is not None:
                try:
                    n = float(cpus) if not isinstance(cpus, bool) else -1.0
                except (TypeError, ValueError):
                    n = -1.0
                if not 0 < n <= MAX_CPUS:
                    found.append(Finding(where + ("cpus",), f"cpus {_q(cpus)} is out of range: more than 0, at most {MAX_CPUS}"))
            memory = res.get("memory")
            if memory is not None:
                n = _bytes(memory)
                if n is None:
                    found.append(Finding(where + ("memory",), f"memory {_q(memory)} is not a size (e.g. 512M, 2G)"))
                elif not MIN_MEMORY <= n <= MAX_MEMORY:
                    found.append(Finding(where + ("memory",), f"memory {_q(memory)} is out of range: 6M to 4T"))
            _range(found, where + ("pids",), res.get("pids"), 1, MAX_PIDS, "pids")
        for i, port in enumerate(svc.get("ports") or []):
            if isinstance(port, dict):
                for key in ("target", "published"):
                    value = port.get(key)
                    if isinstance(value, str) and "-" in value:  # a published range
                        for piece in value.split("-", 1):
                            _range(found, s + ("ports", i, key), piece, 1, MAX_PORT, "port")
                    else:
                        _range(found, s + ("ports", i, key), value, 1, MAX_PORT, "port")
            else:
                _ports_short(found, s + ("ports", i), port)
        for i, port in enumerate(svc.get("expose") or []):
            _ports_short(found, s + ("expose", i), port)
        for kind in ("configs", "secrets"):
            for i, ref in enumerate(svc.get(kind) or []):
                if isinstance(ref, dict) and ref.get("mode") is not None:
                    _range(found, s + (kind, i, "mode"), ref["mode"], 0, MAX_FILE_MODE, "mode",
                           f" (0{MAX_FILE_MODE:o} in octal)")
        for key, value in (svc.get("ulimits") or {}).items() if isinstance(svc.get("ulimits"), dict) else ():
            high = MAX_NOFILE if key == "nofile" else MAX_PIDS if key == "nproc" else MAX_ULIMIT
            low = 0 if key in ("nofile", "nproc") else -1
            if isinstance(value, dict):
                for side in ("soft", "hard"):
                    _range(found, s + ("ulimits", key, side), value.get(side), low, high, f"ulimit {key} {side}")
                soft, hard = _whole(value.get("soft")), _whole(value.get("hard"))
                if soft is not None and hard is not None and hard != -1 and (soft > hard or soft == -1):
                    found.append(Finding(s + ("ulimits", key), f"ulimit {key}: soft {soft} is above hard {hard}"))
            else:
                _range(found, s + ("ulimits", key), value, low, high, f"ulimit {key}")
    return found


def _ports_short(found: list[Finding], path: tuple, port: Any) -> None:
    if isinstance(port, bool):
        found.append(Finding(path, f"port {_q(port)} is not a port"))
        return
    numbers = _port_numbers(str(port)) if isinstance(port, (int, str)) else None
    if numbers is None:
        found.append(Finding(path, f"{_q(port)} is not a port ([ip:][published:]target[/protocol])"))
        return
    for n in numbers:
        _range(found, path, n, 1, MAX_PORT, "port")


# -- options swarm services do not have ------------------------------------------------

def check_unsupported(doc: Mapping) -> list[Finding]:
    """`privileged: true` and `pid: host`: the CLI would drop them silently, and the
    service would run without what its author asked for."""
    found = []
    for name, svc in _services(doc):
        if svc.get("privileged") is True:
            found.append(Finding(("services", name, "privileged"),
                                 "privileged: true is not supported by swarm services (docker stack deploy "
                                 "drops it): remove it, or grant what is needed with cap_add"))
        if svc.get("pid") is not None and svc.get("pid") != "":
            found.append(Finding(("services", name, "pid"),
                                 f"pid: {_q(svc['pid'])} is not supported by swarm services (docker stack deploy "
                                 "drops it): remove it"))
    return found


# -- image references (github.com/distribution/reference) --------------------------

_ALNUM = r"[a-z0-9]+"
_SEP = r"(?:[._]|__|-+)"
_PATH = rf"{_ALNUM}(?:{_SEP}{_ALNUM})*"
_DOMAIN_PART = r"(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])"
_DOMAIN = rf"(?:{_DOMAIN_PART}(?:\.{_DOMAIN_PART})*|\[[0-9a-fA-F:.]+\])(?::[0-9]+)?"
_NAME = rf"(?:{_DOMAIN}/)?{_PATH}(?:/{_PATH})*"
_TAG = r"[\w][\w.-]{0,127}"
_DIGEST = r"[A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*:[0-9a-fA-F]{32,}"
REFERENCE = re.compile(rf"(?P<name>{_NAME})(?::{_TAG})?(?:@{_DIGEST})?")


def image_problem(image: Any) -> str | None:
    """Why `image` is not an image reference docker accepts, or None."""
    if not isinstance(image, str):
        return f"image {_q(image)} is not a string"
    m = REFERENCE.fullmatch(image)
    if not m:
        return (f"image {_q(image)} is not a valid image reference ([registry/]name[:tag][@digest], "
                "the name in lower case)")
    if len(m["name"]) > MAX_REFERENCE:
        return f"image name is {len(m['name'])} characters; docker allows {MAX_REFERENCE}"
    return None


def check_images(doc: Mapping) -> list[Finding]:
    found = []
    for name, svc in _services(doc):
        if "image" not in svc:
            found.append(Finding(("services", name), "no image: a swarm service runs an image (build is ignored)"))
            continue
        problem = image_problem(svc["image"])
        if problem:
            found.append(Finding(("services", name, "image"), problem))
    return found


# -- references into other environments -------------------------------------------

def owner_env(name: str, stacks: Collection[str]) -> str | None:
    """The environment whose namespace an object name is in (`<env>_<stack>` or
    `<env>_<stack>_...` for a known stack), "phoenix" for Phoenix's own objects, or None
    when it is outside every Phoenix namespace."""
    if name.startswith(PHOENIX_PREFIXES):
        return "phoenix"
    env, sep, rest = name.partition("_")
    if not sep or not ENV_NAME.fullmatch(env):
        return None
    for stack in stacks:
        if rest == stack or rest.startswith(stack + "_"):
            return env
    return None


def named_objects(doc: Mapping) -> Iterator[tuple[str, str, str, bool]]:
    """(section, key, name, external) of every top-level secret, config, network and
    volume whose swarm name is not made by docker from the namespace: external ones
    (named, or by their key) and those with an explicit `name`."""
    for section in ("secrets", "configs", "networks", "volumes"):
        for key, spec in (doc.get(section) or {}).items():
            if not isinstance(spec, dict):
                continue
            external = spec.get("external")
            name = spec.get("name")
            if isinstance(external, dict):  # legacy `external: {name: ...}`
                name = external.get("name", name)
                external = True
            if external:
                yield section, key, str(name or key), True
            elif name:
                yield section, key, str(name), False


VOLUMES_DIR = "/var/lib/docker/volumes/"


def _bind_sources(doc: Mapping) -> Iterator[tuple[tuple, str]]:
    """(path, volume name) of every bind mount into docker's volume directory: a way
    round a volume's name (`/var/lib/docker/volumes/prod_app_data/_data:/data`)."""
    for name, svc in _services(doc):
        for i, mount in enumerate(svc.get("volumes") or []):
            if isinstance(mount, dict):
                source = mount.get("source") if mount.get("type") == "bind" else None
            else:
                source = str(mount).split(":", 1)[0] if ":" in str(mount) else None
            if isinstance(source, str) and source.startswith(VOLUMES_DIR):
                volume = source[len(VOLUMES_DIR):].split("/", 1)[0]
                if volume:
                    yield ("services", name, "volumes", i), volume


def check_externals(doc: Mapping, env: str, stacks: Collection[str],
                    shares: Mapping[str, Collection[str]]) -> list[Finding]:
    """Errors for objects of another environment (or Phoenix's own); a warning (shown
    in the plan) for each one the stack's phoenix.json shares on purpose."""
    found = []
    for path, volume in _bind_sources(doc):
        owner = owner_env(volume, stacks)
        if owner is not None and owner != env and volume not in shares.get("volumes", ()):
            found.append(Finding(path, f"a bind mount of volume {_q(volume)}'s directory: it belongs to environment "
                                       f"{owner!r}, not {env!r} (to share it on purpose, list it in phoenix.json "
                                       "/shares/volumes)"))
    for section, key, name, external in named_objects(doc):
        owner = owner_env(name, stacks)
        if owner is None or owner == env:
            continue
        path = (section, key)
        what = f"{'external ' if external else ''}{section[:-1]} {_q(name)}"
        if owner == "phoenix":
            found.append(Finding(path, f"{what} is one of Phoenix's own objects (ledger or lock): a stack cannot use it"))
        elif name in shares.get(section, ()):
            found.append(Finding(path, f"shares {section[:-1]} {_q(name)} of environment {owner!r} "
                                       f"(listed in phoenix.json /shares/{section})", "warning"))
        else:
            found.append(Finding(path, f"{what} belongs to environment {owner!r}, not {env!r}: environments share "
                                       f"nothing but the nodes (to share it on purpose, list it in phoenix.json "
                                       f"/shares/{section})"))
    return found
