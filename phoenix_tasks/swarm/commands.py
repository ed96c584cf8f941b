"""Every docker command Phoenix runs on a VM, as a pure function returning argv.

Nothing here quotes, formats shell text or talks to a VM: the transport quotes the
argv once.  Secrets stay `Secret` objects inside the argv.  A positional that comes
from data (a node ID, an address) follows `--`: whatever it holds, the docker CLI
never reads it as an option.
"""

from __future__ import annotations

from typing import Mapping, Sequence

from ..core.secrets import Secret
from ..core.argv import Arg, Script
from ..core.engine_api import EngineRequest
from ..docker.batch import SEPARATOR

DOCKER = "docker"
SWARM_PORT = 2377

# Reads (facts).
def info() -> list[str]:
    """The engine's state, swarm part included, as one JSON document."""
    return [DOCKER, "info", "--format", "{{json .}}"]


# One fixed script (no data from config in it): every node of the swarm, inspected,
# in a single round trip.  Only valid on a manager.
NODES_SCRIPT = "ids=$(docker node ls -q) && if [ -n \"$ids\" ]; then docker node inspect $ids; else echo '[]'; fi"


def inspect_nodes() -> list[str]:
    return ["sh", "-c", NODES_SCRIPT]


# A VM's facts in ONE round trip (one fixed script, no data from config in it): its
# engine's `docker info`, and, only when that engine is a manager, the swarm's nodes
# after NODES_SEPARATOR (so a converged run costs one command per VM).  `docker info`'s
# exit status and stderr pass through; a manager whose node list cannot be read prints
# the separator and nothing after it (the caller asks with inspect_nodes() then).
# Go's JSON has no spaces: `"ControlAvailable":true` in the output is the key itself
# (a string value holding those quotes would be escaped).
NODES_SEPARATOR = "--- nodes ---"
FACTS_SCRIPT = Script(
    "info=$(docker info --format '{{json .}}') || { rc=$?; printf '%s\\n' \"$info\"; exit $rc; }; "
    "printf '%s\\n' \"$info\"; "
    "case \"$info\" in *'\"ControlAvailable\":true'*) ;; *) exit 0;; esac; "
    f"echo '{NODES_SEPARATOR}'; "
    "ids=$(docker node ls -q 2>/dev/null) || exit 0; "
    "if [ -n \"$ids\" ]; then docker node inspect $ids 2>/dev/null || true; else echo '[]'; fi",
    "docker info, and the node list on a manager")


def facts() -> list[str]:
    return ["sh", "-c", FACTS_SCRIPT]


# `swarm init` only if the node is still in no swarm, checked and run in one round trip:
# another run (from this machine without the cluster lock, or from another machine) may
# have initialised it since the facts were read.  Exits 3 with NOT_INACTIVE otherwise.
NOT_INACTIVE = "phoenix: not run: the node is in a swarm now"
ONLY_IF_INACTIVE = Script(
    "state=$(docker info --format '{{.Swarm.LocalNodeState}}') || exit $?; "
    f'if [ "$state" != inactive ]; then echo "{NOT_INACTIVE} ($state)" >&2; exit 3; fi; '
    'exec "$@"',
    "only if the node is in no swarm:")


def only_if_inactive(argv: Sequence[Arg]) -> list[Arg]:
    """`argv` (a `swarm init`), run only while the engine is in no swarm."""
    return ["sh", "-c", ONLY_IF_INACTIVE, "phoenix", *argv]


def join_token(role: str) -> list[str]:
    if role not in ("manager", "worker"):
        raise ValueError(f"role must be manager or worker, not {role!r}")
    return [DOCKER, "swarm", "join-token", "-q", role]


def rotate_join_token(role: str) -> list[str]:
    """A new join token for `role` (the old one stops joining); prints the new one."""
    if role not in ("manager", "worker"):
        raise ValueError(f"role must be manager or worker, not {role!r}")
    return [DOCKER, "swarm", "join-token", "--rotate", "-q", role]


def unlock_key() -> list[str]:
    """The swarm's current unlock key (autolock on; only on an unlocked manager)."""
    return [DOCKER, "swarm", "unlock-key", "-q"]


def swarm_autolock(enabled: bool) -> list[str]:
    """Turn autolock on or off.  With `true`, docker prints the new unlock key: the
    caller keeps that output to itself and reads the key with `unlock_key()`."""
    return [DOCKER, "swarm", "update", f"--autolock={'true' if enabled else 'false'}"]


def swarm_unlock() -> list[str]:
    """Unlock a locked manager; the key is read on stdin, never on the command line."""
    return [DOCKER, "swarm", "unlock"]


# Stacks, then services with their replicas, then each service's labels (which
# environment, stack and deployed hash), in one round trip (a fixed script).
SERVICES_SEPARATOR = "--- services ---"
LABELS_SEPARATOR = "--- labels ---"
SERVICES_SCRIPT = (
    "docker stack ls --format '{{json .}}' && echo '" + SERVICES_SEPARATOR + "' && "
    "docker service ls --format '{{json .}}' && echo '" + LABELS_SEPARATOR + "' && "
    "ids=$(docker service ls -q) && if [ -n \"$ids\" ]; then docker service inspect --format "
    "'{\"name\":{{json .Spec.Name}},\"labels\":{{json .Spec.Labels}}}' $ids; fi"
)


def services() -> list[str]:
    return ["sh", "-c", SERVICES_SCRIPT]


# Changes.
def swarm_init(advertise_addr: str, default_addr_pool: Sequence[object] = (),
               subnet_size: int | None = None) -> list[str]:
    """Init; the overlay address pools and their subnet size are init-only (security.py)."""
    argv = [DOCKER, "swarm", "init", "--advertise-addr", advertise_addr]
    for pool in default_addr_pool:
        argv += ["--default-addr-pool", str(pool)]
    if subnet_size is not None:
        argv += ["--default-addr-pool-mask-length", str(int(subnet_size))]
    return argv


# `docker swarm join` takes the token only as a flag: an argv word, on the joining VM's
# process list for the length of the join.  The join is an Engine API request instead
# (engine_api.py): the token travels in its JSON body, on the SSH channel's stdin.
# The same fields the CLI sends (its --listen-addr default included).
JOIN_LISTEN_ADDR = f"0.0.0.0:{SWARM_PORT}"


def swarm_join(token: Secret, manager_addr: str, advertise_addr: str) -> EngineRequest:
    """`docker swarm join --token T --advertise-addr A -- M`, as `POST /swarm/join`."""
    if not isinstance(token, Secret):
        raise TypeError("a join token must be a Secret")
    return EngineRequest(
        "POST", "/swarm/join",
        {"ListenAddr": JOIN_LISTEN_ADDR, "AdvertiseAddr": advertise_addr, "RemoteAddrs": [manager_addr],
         "JoinToken": token},
        display=f"docker swarm join --advertise-addr {advertise_addr} -- {manager_addr}; the token in the request body")


def swarm_leave(force: bool = False) -> list[str]:
    return [DOCKER, "swarm", "leave"] + (["--force"] if force else [])


def node_promote(node_id: str) -> list[str]:
    return [DOCKER, "node", "promote", "--", node_id]


def node_demote(node_id: str) -> list[str]:
    return [DOCKER, "node", "demote", "--", node_id]


AVAILABILITIES = ("active", "pause", "drain")


def node_availability(node_id: str, availability: str) -> list[str]:
    """Set a node's availability: `drain` moves its tasks away, `pause` takes no new ones."""
    if availability not in AVAILABILITIES:
        raise ValueError(f"availability must be one of {', '.join(AVAILABILITIES)}, not {availability!r}")
    return [DOCKER, "node", "update", "--availability", availability, "--", node_id]


def node_rm(node_id: str, force: bool = False) -> list[str]:
    """Remove a node's entry (a down one; `force`: one that is still up)."""
    return [DOCKER, "node", "rm"] + (["--force"] if force else []) + ["--", node_id]


# The manager's clock (ns), every service inspected, and every task of every service
# (history included), in one round trip: what a drain checks and waits on.  The same
# three sections as the stack wait's read (stack.facts.parse_progress reads both).
TASKS_SCRIPT = (
    f"date +%s%N; echo '{SEPARATOR}'; "
    'ids=$(docker service ls -q); '
    f'if [ -z "$ids" ]; then echo "[]"; echo \'{SEPARATOR}\'; echo "[]"; exit 0; fi; '
    'docker service inspect $ids && '
    f"echo '{SEPARATOR}' && "
    'tids=$(docker service ps -q --no-trunc $ids) && '
    'if [ -n "$tids" ]; then docker inspect --type task $tids 2>/dev/null || true; else echo "[]"; fi'
)


def tasks() -> list[str]:
    return ["sh", "-c", TASKS_SCRIPT]


def node_update_labels(node_id: str, add: Mapping[str, str], remove: Sequence[str]) -> list[str]:
    """One `docker node update` that adds/updates `add` and removes `remove`."""
    argv = [DOCKER, "node", "update"]
    for key in sorted(add):
        argv += ["--label-add", f"{key}={add[key]}"]
    for key in sorted(remove):
        argv += ["--label-rm", key]
    return argv + ["--", node_id]
