"""Every docker command of the stack flows, as a pure function returning argv.

Reads that need several docker calls are fixed scripts (no data from the config in
their text): the namespace goes in as `$1`, an argument the transport quotes once.
A positional that comes from data (a namespace, a service, an object's name) follows
`--`: the docker CLI never reads it as an option.  Nothing here quotes, formats shell
text or talks to a host.
"""

from __future__ import annotations

from typing import Mapping, Sequence

from ..core.argv import Arg
from ..docker.batch import SEPARATOR

DOCKER = "docker"
DETACH_SINCE = (26, 0)  # `docker stack deploy --detach` exists from CLI 26.0 on


def _script(text: str, namespace: str) -> list[str]:
    return ["sh", "-c", text, "phoenix", namespace]


# The services of one namespace, inspected, then their replicas running/desired, in
# one round trip (the deploy's facts): no more docker calls than the inspect alone.
STACK_SERVICES_SCRIPT = (
    'rows=$(docker service ls --filter "label=com.docker.stack.namespace=$1" --format \'{{.ID}} {{.Replicas}}\') && '
    "ids=$(printf '%s\\n' \"$rows\" | cut -d' ' -f1) && "
    'if [ -n "$ids" ]; then docker service inspect $ids; else echo "[]"; fi && '
    f"echo '{SEPARATOR}' && printf '%s\\n' \"$rows\""
)


def stack_services(namespace: str) -> list[str]:
    return _script(STACK_SERVICES_SCRIPT, namespace)


# What the pre-flight checks need, in one round trip, only when a deploy changes
# something: CLI version and the manager's clock (the deploy's start: the wait judges
# what happened after it), nodes, every service, networks, volumes, configs, secrets.
PREFLIGHT_SCRIPT = "set -e; " + "; ".join([
    "docker version --format '{{.Client.Version}}'",
    "date +%s%N",
    f"echo '{SEPARATOR}'",
    "docker node inspect $(docker node ls -q)",
    f"echo '{SEPARATOR}'",
    'ids=$(docker service ls -q); if [ -n "$ids" ]; then docker service inspect $ids; else echo "[]"; fi',
    f"echo '{SEPARATOR}'",
    "docker network ls --format '{{json .}}'",
    f"echo '{SEPARATOR}'",
    "docker volume ls --format '{{json .}}'",
    f"echo '{SEPARATOR}'",
    "docker config ls --format '{{json .}}'",
    f"echo '{SEPARATOR}'",
    "docker secret ls --format '{{json .}}'",
])


def preflight(namespace: str) -> list[str]:
    return _script(PREFLIGHT_SCRIPT, namespace)


# The manager's clock (ns), the services of a namespace and all their tasks (history
# included), then every node's ID and hostname, for the wait.
PROGRESS_SCRIPT = (
    f'date +%s%N; echo \'{SEPARATOR}\'; '
    'ids=$(docker service ls -q --filter "label=com.docker.stack.namespace=$1"); '
    f'if [ -z "$ids" ]; then echo "[]"; echo \'{SEPARATOR}\'; echo "[]"; exit 0; fi; '
    'docker service inspect $ids && '
    f"echo '{SEPARATOR}' && "
    'tids=$(docker service ps -q --no-trunc $ids) && '
    # A task swarm prunes between the listing and the inspect is "not found": the
    # others are still printed, and the next read is whole again.
    'if [ -n "$tids" ]; then docker inspect --type task $tids 2>/dev/null || true; else echo "[]"; fi; '
    # Each node's ID, status, availability and hostname: a failed task's error names the
    # VM it failed on, and a global service waits only for nodes still ready and active.
    f"echo '{SEPARATOR}'; "
    "docker node ls --format '{{.ID}} {{.Status}} {{.Availability}} {{.Hostname}}' 2>/dev/null || true"
)


def progress(namespace: str) -> list[str]:
    return _script(PROGRESS_SCRIPT, namespace)


# What `docker stack rm` leaves to wait for: services, networks, configs, secrets.
LEFTOVERS_SCRIPT = "; ".join([
    'f="label=com.docker.stack.namespace=$1"',
    "docker service ls -q --filter \"$f\" | sed 's/^/service /'",
    "docker network ls -q --filter \"$f\" | sed 's/^/network /'",
    "docker config ls -q --filter \"$f\" | sed 's/^/config /'",
    "docker secret ls -q --filter \"$f\" | sed 's/^/secret /'",
])


def leftovers(namespace: str) -> list[str]:
    return _script(LEFTOVERS_SCRIPT, namespace)


def node_volumes(namespace: str) -> list[str]:
    """The volumes of a namespace on one node (volumes are per node)."""
    return [DOCKER, "volume", "ls", "-q", "--filter", f"label=com.docker.stack.namespace={namespace}"]


def cli_supports_detach(version: str) -> bool:
    parts = []
    for piece in version.split(".")[:2]:
        digits = "".join(ch for ch in piece if ch in "0123456789")
        parts.append(int(digits) if digits else 0)
    return tuple(parts) >= DETACH_SINCE


# Changes.
def stack_deploy(namespace: str, cli_version: str) -> list[str]:
    """`docker stack deploy` reading the rendered document on stdin.  Phoenix waits by
    itself, so the deploy is detached: explicitly where the CLI has the flag (>= 26),
    implicitly before (20.10 has no --detach and never waits)."""
    argv = [DOCKER, "stack", "deploy", "--compose-file", "-", "--prune", "--with-registry-auth"]
    if cli_supports_detach(cli_version):
        argv.append("--detach=true")
    return argv + ["--", namespace]


def stack_rm(namespace: str) -> list[str]:
    return [DOCKER, "stack", "rm", "--", namespace]


def service_resume(name: str) -> list[Arg]:
    """A new rollout of one service with its current spec (`--force`), detached: what
    takes a service whose update Swarm paused out of that state."""
    return [DOCKER, "service", "update", "--force", "--detach", "--", name]


def object_remove(kind: str, names: Sequence[str]) -> list[Arg]:
    """`docker config|secret rm -- NAME...` (the exit status fails if one is missing)."""
    if kind not in ("config", "secret"):
        raise ValueError(f"kind must be config or secret, not {kind!r}")
    return [DOCKER, kind, "rm", "--", *names]


def object_create(kind: str, name: str, labels: Mapping[str, str]) -> list[Arg]:
    """`docker config|secret create NAME -`: the content comes on stdin."""
    if kind not in ("config", "secret"):
        raise ValueError(f"kind must be config or secret, not {kind!r}")
    argv: list[Arg] = [DOCKER, kind, "create"]
    for key in sorted(labels):
        argv += ["--label", f"{key}={labels[key]}"]
    return argv + ["--", name, "-"]


def network_rm(ids: Sequence[str]) -> list[str]:
    return [DOCKER, "network", "rm", "--", *ids]


def volume_rm(names: Sequence[str]) -> list[str]:
    return [DOCKER, "volume", "rm", "--", *names]


def service_logs(service: str, lines: int = 20) -> list[str]:
    return [DOCKER, "service", "logs", "--no-task-ids", "--tail", str(lines), "--", service]


def service_nodes(services: Sequence[str]) -> list[str]:
    """The nodes running the services' tasks (hostnames), for port collisions."""
    return [DOCKER, "service", "ps", "--filter", "desired-state=running", "--format", "{{.Node}}", "--", *services]
