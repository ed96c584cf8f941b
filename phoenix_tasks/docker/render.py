"""Render: compose file + phoenix.json + environment -> the document that is deployed.

Pure apart from reading the config/secret files a compose file names (through a
`read_file` callable, so tests pass data).  The rendered document:
- is the swarm stack `<env>_<stack>` (naming.namespace);
- has every `${VAR}` filled from the environment's variables merged over `default`
  (plus PHOENIX_ENV / PHOENIX_STACK), typed values cast as the docker CLI casts them,
  and every literal `$` escaped as `$$` so the CLI's own interpolation is a no-op;
- merges the stack-wide and per-service `placement_constraints` of phoenix.json into
  each service's `deploy.placement.constraints`, without duplicates;
- names each config and secret by a hash of its content (`<namespace>_<key>_<hash8>`),
  created by Phoenix before the deploy and referenced as external, so a changed file
  rolls the services instead of failing on an immutable object;
- labels every service with env, stack, Phoenix version and the hash of its own spec
  (the service, and the networks, volumes, configs and secrets it names): a change to
  one service changes that service's label only.  The document's hash is Rendered.hash
  (the plan and the ledger show it); no service carries it;
- drops the keys swarm ignores (container_name, restart, build, ...) with a warning.
"""

from __future__ import annotations

import copy
import hashlib
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Literal, Mapping

import yaml

from .. import __version__
from ..core import paths
from ..core import safe_read
from ..core.errors import PhoenixError
from ..core.model import Stack
from ..core.secrets import Secret
from . import naming
from . import refusals as refuse
from .interpolate import cast_types, escape_dollars, interpolate

LABEL_ENV = "io.phoenix.env"
LABEL_STACK = "io.phoenix.stack"
LABEL_HASH = "io.phoenix.hash"
LABEL_VERSION = "io.phoenix.version"
STACK_NAMESPACE_LABEL = "com.docker.stack.namespace"  # what docker stack deploy/rm use

# Service keys `docker stack deploy` ignores (it prints "Ignoring unsupported options").
IGNORED_SERVICE_KEYS = ("build", "cgroup_parent", "container_name", "depends_on", "devices",
                        "external_links", "links", "network_mode", "restart", "security_opt",
                        "userns_mode")
DEFAULT_VERSION = "3.8"
MAX_OBJECT_NAME = 64  # swarmkit's limit for config and secret names


class RenderError(PhoenixError):
    """The stack cannot be rendered for this environment (nothing was contacted).

    `items`: each problem as (path into the compose document, message), for
    `inv validate` to name the file and JSON pointer; `variables`: the variables
    with no value among them."""

    def __init__(self, message: str, items: list[tuple[tuple, str]] | None = None,
                 variables: tuple[str, ...] = ()):
        super().__init__(message)
        self.items = list(items or [])
        self.variables = variables


@dataclass(frozen=True)
class SwarmObject:
    """A config or secret Phoenix creates before the deploy (immutable, content-named)."""

    kind: Literal["config", "secret"]
    key: str  # its key under the compose file's top-level configs/secrets
    name: str  # <namespace>_<key>_<hash8>
    content: str | Secret
    labels: Mapping[str, str]


@dataclass(frozen=True)
class Rendered:
    stack: str
    env: str
    namespace: str
    document: Mapping[str, Any]  # what is deployed ($ not escaped: the values themselves)
    text: str  # the YAML sent on stdin to `docker stack deploy -c -`
    hash: str  # of the document, before the hash label itself
    objects: tuple[SwarmObject, ...]
    warnings: tuple[str, ...]

    @property
    def services(self) -> Mapping[str, Any]:
        return self.document["services"]

    def service_name(self, service: str) -> str:
        return naming.service_name(self.env, self.stack, service)


def variables_for(stack: Stack, env: str) -> Mapping[str, str]:
    """The environment's variables (its own over `default`), plus the built-ins; an
    environment that is not listed takes `default`, and with no `default` it is an error."""
    if env not in stack.environments and "default" not in stack.environments:
        known = ", ".join(sorted(stack.environments)) or "none"
        raise RenderError(f"stack {stack.name!r} has no environment {env!r} and no 'default' "
                          f"(environments in {stack.manifest_file.name}: {known})")
    return {**stack.variables_for(env), "PHOENIX_ENV": env, "PHOENIX_STACK": stack.name}


def _where(path: tuple) -> str:
    return ".".join(str(p) for p in path)


def compose_pointer(path: tuple) -> str:
    """`/services/api/deploy/replicas`: where in docker-compose.yml (RFC 6901)."""
    return "".join("/" + str(p).replace("~", "~0").replace("/", "~1") for p in path)


def _refuse(what: str, items: list[tuple[tuple, str]], tail: str = "", variables: tuple[str, ...] = ()) -> RenderError:
    lines = [message if message.startswith(f"{paths.STACK_COMPOSE_FILE} /") else f"{_where(path)}: {message}"
             for path, message in items]
    return RenderError(f"{what}: " + "; ".join(lines) + tail, items, variables)


def _from_variable(stack: Stack, path: tuple) -> str:
    """' (from ${VAR})' when the compose file writes this value with a variable."""
    original: Any = stack.compose
    for key in path:
        try:
            original = original[key]
        except (KeyError, IndexError, TypeError):
            return ""
    if isinstance(original, str) and "$" in original:
        return f" (from {original!r})"
    return ""


def refusals(stack: Stack, env: str, doc: Mapping) -> tuple[list[tuple[tuple, str]], list[str]]:
    """(errors by path, warnings) of docker/refusals.py's checks on the interpolated document."""
    found = [*refuse.check_bounds(doc, stack.max_replicas, stack.max_replicas_source),
             *refuse.check_unsupported(doc), *refuse.check_images(doc),
             *refuse.check_externals(doc, env, stack.known_stacks or (stack.name,), stack.shares)]
    file = stack.compose_file.name
    errors = [(f.path, f"{file} {compose_pointer(f.path)}: {f.message}{_from_variable(stack, f.path)}")
              for f in found if f.severity == "error"]
    warnings = [f"{file} {compose_pointer(f.path)}: {f.message}" for f in found if f.severity == "warning"]
    return errors, warnings


def normalise_constraint(text: str) -> str:
    """`node.labels.gpu==true` and `node.labels.gpu == true` are the same constraint."""
    m = re.fullmatch(r"\s*(\S+?)\s*(==|!=)\s*(\S+)\s*", text)
    return f"{m[1]} {m[2]} {m[3]}" if m else text.strip()


def _constraints(stack: Stack, service: str, compose_constraints: list) -> list[str]:
    # The typed StackService holds every constraint the config knows (manifest and
    # compose); one with a variable is taken from the interpolated compose instead.
    known = stack.services[service].placement_constraints if service in stack.services else ()
    merged: dict[str, str] = {}
    for text in [*stack.placement_constraints, *(c for c in known if "$" not in c),
                 *(c for c in compose_constraints if isinstance(c, str))]:
        merged.setdefault(normalise_constraint(text), text.strip())
    return list(merged.values())


def _labels(value: Any) -> dict[str, str]:
    """deploy.labels as a mapping (compose allows a list of key=value too)."""
    if isinstance(value, list):
        return dict(str(item).split("=", 1) if "=" in str(item) else (str(item), "") for item in value)
    return {str(k): "" if v is None else str(v) for k, v in (value or {}).items()}


def _short_hash(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()[:8]


def object_labels(namespace: str, env: str, stack: str) -> dict[str, str]:
    """The labels of a config or secret Phoenix creates (docker's stack namespace too)."""
    return {STACK_NAMESPACE_LABEL: namespace, LABEL_ENV: env, LABEL_STACK: stack}


def secret_name(namespace: str, key: str, data: bytes) -> str:
    """Content-named: new content is a new name, so a deploy replaces it (swarm
    secrets and configs are immutable)."""
    return f"{namespace}_{key}_{_short_hash(data)}"


def _hash(value: Any) -> str:
    return hashlib.sha256(json.dumps(value, sort_keys=True, default=str).encode()).hexdigest()[:12]


def _refs(items: Any, top: Mapping[str, Any]) -> dict[str, Any]:
    """The top-level definitions (under `top`) that a service's list names."""
    keys = []
    for item in items or []:
        if isinstance(item, str):
            keys.append(item.split(":", 1)[0])
        elif isinstance(item, Mapping):
            keys.append(str(item.get("source", "")))
    if isinstance(items, Mapping):  # networks: {name: {aliases...}}
        keys = [str(k) for k in items]
    return {k: top.get(k) for k in sorted(set(keys)) if k in top}


def service_hash(doc: Mapping[str, Any], name: str) -> str:
    """The hash of one service's own spec: the service as rendered (without its image,
    its hash and version labels), and the top-level networks, volumes, configs and
    secrets it names.
    Another service's change, or a top-level entry it does not use, leaves it alone."""
    svc = copy.deepcopy(doc["services"][name])
    # The image is compared on its own (diff.FIELDS), as a tag or a digest: a document
    # rendered by tag (`swarm.diff`) and the same one by digest have the same hash.
    svc.pop("image", None)
    labels = (svc.get("deploy") or {}).get("labels")
    if isinstance(labels, dict):  # its own hash and Phoenix's version are not its spec
        for key in (LABEL_HASH, LABEL_VERSION):
            labels.pop(key, None)
    volumes = [v.get("source") if isinstance(v, Mapping) else str(v).split(":", 1)[0]
               for v in svc.get("volumes") or []]
    return _hash({
        "service": svc,
        "networks": _refs(svc.get("networks"), doc.get("networks") or {}),
        "volumes": _refs([v for v in volumes if v], doc.get("volumes") or {}),
        "configs": _refs(svc.get("configs"), doc.get("configs") or {}),
        "secrets": _refs(svc.get("secrets"), doc.get("secrets") or {}),
    })


# What a flow adds to a stack's document after the interpolation (Portainer's admin
# password secret): (document, namespace) -> the swarm objects it needs created.
Amend = Callable[[dict, str], list[SwarmObject]]


def _objects(stack: Stack, namespace: str, doc: dict, env: str,
             read_file: Callable[[Path], bytes]) -> tuple[list[SwarmObject], list[tuple[tuple, str]]]:
    """Content-named configs and secrets; the document's entries become external refs."""
    objects: list[SwarmObject] = []
    errors: list[tuple[tuple, str]] = []
    for kind in ("config", "secret"):
        section = doc.get(kind + "s") or {}
        for key, spec in list(section.items()):
            if not isinstance(spec, dict) or spec.get("external"):
                continue
            file = spec.get("file")
            if not isinstance(file, str):
                errors.append(((kind + "s", key), f"only 'file' {kind}s (or external ones) can be deployed"))
                continue
            path = (stack.directory / file).resolve()
            if not path.is_relative_to(stack.directory.resolve()):
                errors.append(((kind + "s", key), f"file {file!r} is outside the stack directory"))
                continue
            try:
                data = read_file(path)  # a regular file of at most 1 MiB: a FIFO never hangs a deploy
            except (OSError, safe_read.Unreadable) as exc:
                errors.append(((kind + "s", key),
                               f"cannot read {file!r}: {getattr(exc, 'strerror', None) or exc}"))
                continue
            try:
                text = data.decode("utf-8")
            except UnicodeDecodeError:
                errors.append(((kind + "s", key), f"{file!r} is not UTF-8 text"))
                continue
            name = secret_name(namespace, key, data)
            if len(name) > MAX_OBJECT_NAME:
                errors.append(((kind + "s", key), f"the swarm {kind} name {name!r} would be {len(name)} characters; "
                                              f"docker allows {MAX_OBJECT_NAME}: give it a shorter key"))
                continue
            labels = object_labels(namespace, env, stack.name)
            objects.append(SwarmObject(kind, key, name, Secret(text) if kind == "secret" else text, labels))
            section[key] = {"external": True, "name": name}
    return objects, errors


def render(stack: Stack, env: str, read_file: Callable[[Path], bytes] = safe_read.read_bytes,
           amend: Amend | None = None) -> Rendered:
    """The document deployed as `<env>_<stack>`; RenderError names stack, env and what.
    `amend` changes the interpolated document before it is hashed (see Amend)."""
    problem = naming.check_env_name(env)
    if problem:
        raise RenderError(problem)
    what = f"stack {stack.name!r}, environment {env!r}"
    namespace = naming.namespace(env, stack.name)
    variables = variables_for(stack, env)
    doc, errors = interpolate(copy.deepcopy(dict(stack.compose)), variables)
    if errors:
        raise _refuse(what, [(path, str(exc)) for path, exc in errors],
                      f" (set it under environments.{env if env in stack.environments else 'default'}"
                      f".variables in {stack.manifest_file.name})",
                      tuple(exc.variable for _, exc in errors if exc.variable and str(exc).startswith("no value")))
    doc, cast_errors = cast_types(doc)
    if cast_errors:
        raise _refuse(what, cast_errors)
    doc.setdefault("version", DEFAULT_VERSION)
    refused, warnings = refusals(stack, env, doc)
    if refused:
        raise _refuse(what, refused)
    objects, object_errors = _objects(stack, namespace, doc, env, read_file)
    if object_errors:
        raise _refuse(what, object_errors)
    if amend is not None:
        objects += amend(doc, namespace)
    for name, service in doc["services"].items():
        ignored = [k for k in IGNORED_SERVICE_KEYS if k in service]
        if ignored:
            warnings.append(f"{what}: service {name!r}: swarm ignores {', '.join(ignored)}: left out")
            for k in ignored:
                del service[k]
        deploy = service.setdefault("deploy", {})
        placement = deploy.setdefault("placement", {})
        placement["constraints"] = _constraints(stack, name, placement.get("constraints") or [])
        if not placement["constraints"]:
            del placement["constraints"]
        if not placement:
            del deploy["placement"]
        deploy["labels"] = {**_labels(deploy.get("labels")), LABEL_ENV: env, LABEL_STACK: stack.name}
    digest = _hash(doc)
    own = {name: service_hash(doc, name) for name in doc["services"]}
    for name, service in doc["services"].items():
        service["deploy"]["labels"].update({LABEL_HASH: own[name], LABEL_VERSION: __version__})
    text = yaml.safe_dump(escape_dollars(doc), sort_keys=False, default_flow_style=False, width=1000)
    return Rendered(stack.name, env, namespace, doc, text, digest, tuple(objects), tuple(warnings))
