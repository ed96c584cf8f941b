"""Portainer, the swarm's pane of glass: a stack deployed like any other, plus the
admin password secret, plus "does the server answer?".

- The stack is `portainer.stack` deployed as environment `portainer.env` (etc/:
  `prod_portainer_service`), through the same render -> plan -> deploy -> wait path as
  every stack (stack/deploy.py).
- The server runs on the first configured manager (`node.hostname == <its name>`):
  its data volume is on that node, and a server that moved would start empty.
- `portainer.images` pins the image of each role, a role being a service of that
  stack: the pinned image replaces the compose file's (a check at validate time says
  so when a role names no service).  The `portainer` role is the server.
- The admin password: from the file `PHOENIX_PORTAINER_ADMIN_PASSWORD_FILE` names, else
  `portainer.admin_password_file`.  It becomes a swarm secret (created over stdin,
  content-named), mounted in the server's container and handed to Portainer by file
  (`--admin-password-file`): never on a command line, in a document, in output or in
  a file Phoenix writes.  Without one, Portainer shows its own first-login page.
- "Answers": an HTTPS GET of /api/system/status on the server's published port, on
  the address of the node that runs it, opened from a manager over SSH (probe.py).
"""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

from ..core import safe_read
from ..core.errors import PhoenixError
from ..core.model import VM, Config, Stack
from ..core.probe import ProbeFailed, https_get
from ..core.secrets import Secret
from ..docker import naming
from ..stack.deploy import read_stack
from ..stack.facts import StackRead
from ..stack.digests import chain, pin
from ..docker.render import Rendered, RenderError, SwarmObject, object_labels, render, secret_name
from ..core.transport import Transport, TunnelRefused

PASSWORD_ENV = "PHOENIX_PORTAINER_ADMIN_PASSWORD_FILE"
SERVER_ROLE = "portainer"
SECRET_KEY = "portainer_admin_password"
SECRET_PATH = f"/run/secrets/{SECRET_KEY}"
HTTPS_TARGET = 9443  # the server's HTTPS port in its container
STATUS_PATH = "/api/system/status"
MIN_PASSWORD = 12  # Portainer refuses a shorter admin password
PROBE_TIMEOUT_S = 10.0


class PortainerError(PhoenixError):
    """Portainer cannot be deployed as configured (nothing was contacted)."""


@dataclass(frozen=True)
class Password:
    source: str  # where it came from, for people: never the value
    value: Secret
    warnings: tuple[str, ...] = ()  # e.g. the file is readable by others


def password_path(config: Config, environ: Mapping[str, str]) -> tuple[Path, str] | None:
    """The password file and how it was configured, or None."""
    if environ.get(PASSWORD_ENV):
        return Path(environ[PASSWORD_ENV]), f"${PASSWORD_ENV}"
    path = config.hypervisor.portainer.admin_password_file
    if path is not None:
        return path, f"{config.hypervisor_file}: /portainer/admin_password_file"
    return None


def read_password(config: Config, environ: Mapping[str, str] = os.environ) -> Password | None:
    """The admin password, read before anything connects; PortainerError names the file
    and where it was configured.  One trailing newline (`echo ... > file`) is not part
    of it."""
    found = password_path(config, environ)
    if found is None:
        return None
    path, origin = found
    try:
        data = safe_read.read_bytes(path)
    except (OSError, safe_read.Unreadable) as exc:
        raise PortainerError(f"Portainer admin password file {path} ({origin}): "
                             f"{getattr(exc, 'strerror', None) or exc}") from None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise PortainerError(f"Portainer admin password file {path} ({origin}): not UTF-8 text") from None
    text = text[:-2] if text.endswith("\r\n") else text[:-1] if text.endswith("\n") else text
    if not text:
        raise PortainerError(f"Portainer admin password file {path} ({origin}): the file is empty")
    if "\n" in text or "\r" in text:
        raise PortainerError(f"Portainer admin password file {path} ({origin}): the password must be one line")
    if len(text) < MIN_PASSWORD:
        raise PortainerError(f"Portainer admin password file {path} ({origin}): Portainer needs at least "
                             f"{MIN_PASSWORD} characters, the file holds {len(text)}")
    return Password(f"file {path}", Secret(text), _mode_warnings(path, origin))


def _mode_warnings(path: Path, origin: str) -> tuple[str, ...]:
    """As ssh says of a private key: a password file others can read is a warning."""
    try:
        mode = stat.S_IMODE(os.stat(path).st_mode)
    except OSError:
        return ()
    if mode & 0o077:
        return (f"Portainer admin password file {path} ({origin}) can be read by others (mode {mode:04o}): "
                f"chmod 600 {path}",)
    return ()


def stack_of(config: Config) -> Stack:
    return config.stacks[config.hypervisor.portainer.stack]


def namespace(config: Config) -> str:
    p = config.hypervisor.portainer
    return naming.namespace(p.env, p.stack)


def server_service(config: Config) -> str:
    p = config.hypervisor.portainer
    return naming.service_name(p.env, p.stack, SERVER_ROLE)


def _amend(config: Config, password: Password | None):
    p = config.hypervisor.portainer

    def amend(doc: dict, ns: str) -> list[SwarmObject]:
        services = doc["services"]
        for role, image in p.images.items():
            services[role]["image"] = image
        if config.managers:  # the server's data volume lives on one node: keep it there
            placement = services[SERVER_ROLE].setdefault("deploy", {}).setdefault("placement", {})
            placement["constraints"] = [*(placement.get("constraints") or []),
                                        f"node.hostname == {config.managers[0].name}"]
        if password is None:
            return []
        value = password.value.reveal()
        name = secret_name(ns, SECRET_KEY, value.encode())
        doc.setdefault("secrets", {})[SECRET_KEY] = {"external": True, "name": name}
        server = services[SERVER_ROLE]
        server["secrets"] = [*(server.get("secrets") or []),
                             {"source": SECRET_KEY, "target": SECRET_KEY, "mode": 0o400}]
        flag = ["--admin-password-file", SECRET_PATH]
        command = server.get("command")
        server["command"] = (f"{command} {' '.join(flag)}" if isinstance(command, str)
                             else [*(command or []), *flag])
        return [SwarmObject("secret", SECRET_KEY, name, Secret(value), object_labels(ns, p.env, p.stack))]

    return amend


def render_portainer(config: Config, password: Password | None, digests: Mapping[str, str] | None = None) -> Rendered:
    """Portainer's document: the stack as `portainer.env`, pinned images (by digest when
    resolved), the secret."""
    p = config.hypervisor.portainer
    try:
        return render(stack_of(config), p.env, amend=chain(_amend(config, password), pin(digests or {})))
    except RenderError as exc:
        raise PortainerError(str(exc)) from None


def published_port(rendered: Rendered) -> int:
    """The port the server publishes for its HTTPS target (9443), else its first one."""
    ports = []
    for p in rendered.services[SERVER_ROLE].get("ports") or []:
        if isinstance(p, Mapping):
            ports.append(p)
        elif ":" in str(p):  # short syntax: [ip:]published:target[/proto]
            published, target = str(p).split("/")[0].rsplit(":", 2)[-2:]
            if published.isdigit() and target.isdigit():
                ports.append({"published": published, "target": target})
    for port in ports:
        if int(port.get("target", 0)) == HTTPS_TARGET and port.get("published"):
            return int(port["published"])
    for port in ports:
        if port.get("published"):
            return int(port["published"])
    raise PortainerError(f"stack {rendered.stack!r}: service {SERVER_ROLE!r} publishes no port "
                         "(it needs `ports: [{target: 9443, published: 9443, mode: host}]`)")


# Where the server's running tasks are: "<state> <node address> <hostname>" per task.
WHERE_SCRIPT = (
    "set -e; "
    'for t in $(docker service ps -q --no-trunc --filter desired-state=running -- "$1"); do '
    "docker inspect --type task --format '{{.NodeID}} {{.Status.State}}' \"$t\"; "
    "done | while read -r node state; do "
    "echo \"$state $(docker node inspect --format '{{.Status.Addr}} {{.Description.Hostname}}' \"$node\")\"; "
    "done"
)


def where_argv(service: str) -> list[str]:
    return ["sh", "-c", WHERE_SCRIPT, "phoenix", service]


@dataclass(frozen=True)
class ServerTask:
    state: str
    address: str
    hostname: str


def parse_where(stdout: str) -> list[ServerTask]:
    tasks = []
    for line in stdout.splitlines():
        parts = line.split()
        if len(parts) == 3:
            tasks.append(ServerTask(*parts))
    return tasks


@dataclass
class PortainerStatus:
    namespace: str
    deployed: bool
    replicas: Mapping[str, str]  # service -> running/desired
    manager: VM | None = None
    url: str | None = None
    answers: bool = False
    detail: str = ""
    version: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"namespace": self.namespace, "deployed": self.deployed, "replicas": dict(self.replicas),
                "url": self.url, "answers": self.answers, "detail": self.detail, "version": self.version,
                "read_from": self.manager.name if self.manager else None}


def read_status(transport: Transport, config: Config, port: int, *, timeout_s: float = PROBE_TIMEOUT_S,
                first_read: tuple[VM, StackRead] | None = None) -> PortainerStatus:
    """Is Portainer deployed, where does its server run, does it answer?  Reads only.
    `first_read`: the namespace's services as the caller read them moments ago (sync-all's
    plan, when nothing changed since), so they are not read twice."""
    ns = namespace(config)
    manager, read = first_read or read_stack(transport, config, ns)
    status = PortainerStatus(ns, bool(read.services), dict(read.replicas), manager)
    server = server_service(config)
    if server not in read.services:
        status.detail = f"not deployed: no service {server} (inv portainer.deploy)"
        return status
    tasks = [t for t in parse_where(transport.run(manager, where_argv(server), mutating=False).stdout)
             if t.state == "running"]
    if not tasks:
        status.detail = f"{server} has no running task"
        return status
    task = tasks[0]
    status.url = f"https://{task.address}:{port}"
    try:
        stream = transport.tunnel(manager, task.address, port)
    except TunnelRefused as exc:
        status.detail = f"does not answer on {status.url} (node {task.hostname}): {exc}"
        return status
    try:
        reply = https_get(stream, task.address, STATUS_PATH, timeout_s=timeout_s)
    except ProbeFailed as exc:
        status.detail = f"does not answer HTTPS on {status.url} (node {task.hostname}): {exc}"
        return status
    finally:
        stream.close()
    body = reply.json()
    status.version = str(body.get("Version")) if isinstance(body, dict) and body.get("Version") else None
    status.answers = reply.status == 200
    status.detail = (f"answers on {status.url} (node {task.hostname}, HTTP {reply.status}"
                     + (f", Portainer {status.version}" if status.version else "") + ")")
    return status
