"""Image digests: a tag is a name that can move; a digest is what runs.

Each image of a rendered document is resolved on a manager, through its engine (so
a registry mirror, credentials and the daemon's DNS apply, as they will for the
tasks): `docker pull`, then the RepoDigest of that repository.  The document is then
rendered again with `name:tag@sha256:...`, so its hash, the diff and the ledger all
see a tag that moved as a change.

The pull's error is the registry's answer, and it is the deploy's image gate
(transaction.py): an image the registry says does not exist (manifest unknown, tag or
repository not found) or refuses (unauthorized, denied) is `blocked`: deploying it
would stop the running task for one that can never start.  A registry that cannot be
reached (DNS, refused, timeout, TLS) is `unreachable`: a warning, and the image stays
by tag (the engines may still have it), unless the deploy requires digests.  An image
with no digest and no error (only loaded locally) stays by tag, with a warning.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Iterable, Mapping, Sequence

from ..core.model import VM
from ..core.transport import Transport
from . import registries
from ..docker.render import SwarmObject

RESOLVE_SCRIPT = (
    'for i in "$@"; do '
    'err=$(docker pull -q -- "$i" 2>&1 >/dev/null) || true; '
    "d=$(docker image inspect --format '{{json .RepoDigests}}' -- \"$i\" 2>/dev/null) || d=null; "
    "printf '%s\\t%s\\t%s\\n' \"$i\" \"$d\" \"$(printf %s \"$err\" | tr '\\t\\n' '  ')\"; "
    "done"
)


# The same, after a `docker login` to each registry that needs one: `$1` logins, then
# (server, username) pairs, then the images; the passwords come on stdin, one a line,
# and reach docker login through the shell's builtin printf (never an argv).  A login
# that fails logs out again (an older, stale login must not pass for this one).
LOGIN_THEN_RESOLVE_SCRIPT = (
    'n=$1; shift; '
    'while [ "$n" -gt 0 ]; do '
    's=$1; u=$2; shift 2; n=$((n - 1)); IFS= read -r pw || pw=; '
    'if err=$(printf \'%s\\n\' "$pw" | docker login --username "$u" --password-stdin -- "$s" 2>&1 >/dev/null); '
    'then r=ok; else r=failed; docker logout -- "$s" >/dev/null 2>&1 || true; fi; '
    "printf 'login\\t%s\\t%s\\t%s\\n' \"$s\" \"$r\" \"$(printf %s \"$err\" | tr '\\t\\n' '  ')\"; "
    'done; pw=; '
    + RESOLVE_SCRIPT
)


def resolve_argv(images: Iterable[str], logins: Iterable[tuple[str, str]] = ()) -> list[str]:
    """The resolve command; with `logins` ((server, username) pairs), each registry is
    logged in to first (the passwords go on its stdin, in the same order)."""
    logins = list(logins)
    if not logins:
        return ["sh", "-c", RESOLVE_SCRIPT, "phoenix", *images]
    pairs = [part for server, user in logins for part in (server, user)]
    return ["sh", "-c", LOGIN_THEN_RESOLVE_SCRIPT, "phoenix", str(len(logins)), *pairs, *images]


def repository(image: str) -> str:
    """`registry:5000/a/b:tag` -> `registry:5000/a/b` (a port is not a tag)."""
    name = image.split("@", 1)[0]
    last = name.rsplit("/", 1)[-1]
    return name.rsplit(":", 1)[0] if ":" in last else name


def _normal(repo: str) -> str:
    for prefix in ("docker.io/library/", "docker.io/", "index.docker.io/library/", "index.docker.io/"):
        if repo.startswith(prefix):
            repo = repo[len(prefix):]
    return repo.removeprefix("library/")


def registry_of(image: str) -> str:
    """The registry an image reference names: its first component when that is a host
    (has a dot or a port, or is `localhost`), else Docker Hub."""
    first, slash, _ = image.split("@", 1)[0].partition("/")
    if slash and ("." in first or ":" in first or first == "localhost"):
        return first
    return "docker.io"


# What the engine's pull error says, in the words registries and dockerd use.  The
# first group is checked first: "lookup registry-1.docker.io: no such host" after a
# mirror's 404 is a registry not reached, whatever the mirror said.
UNREACHABLE = ("dial tcp", "no such host", "connection refused", "i/o timeout", "timeout exceeded",
               "tls handshake timeout", "network is unreachable", "no route to host", "server misbehaving",
               "request canceled", "context deadline exceeded", "x509:", "certificate",
               "server gave http response to https client", "unexpected eof")
NOT_FOUND = ("manifest unknown", "not found", "repository does not exist", "name unknown", "name_unknown",
             "manifest_unknown")
DENIED = ("unauthorized", "denied", "no basic auth credentials", "authentication required")


def classify(error: str) -> str:
    """`not-found`, `denied`, `unreachable` or `unknown` for one pull error."""
    text = error.lower()
    if any(k in text for k in UNREACHABLE):
        return "unreachable"
    if any(k in text for k in NOT_FOUND):
        return "not-found"
    if any(k in text for k in DENIED):
        return "denied"
    return "unknown"


def _answer(error: str, limit: int = 240) -> str:
    text = " ".join(error.split()).removeprefix("Error response from daemon: ")
    return text if len(text) <= limit else text[:limit - 3] + "..."


@dataclass
class Resolution:
    digests: dict[str, str] = field(default_factory=dict)  # image as written -> image@sha256:...
    warnings: list[str] = field(default_factory=list)
    # The gate: one line per image the registry says does not exist or refuses to serve.
    blocked: list[str] = field(default_factory=list)
    # One line per image whose registry was not reached (deployed by tag, or blocked
    # with --require-digests).
    unreachable: list[str] = field(default_factory=list)


def parse_resolve(stdout: str) -> Resolution:
    out = Resolution()
    for line in stdout.splitlines():
        parts = line.split("\t")
        if len(parts) == 4 and parts[0] == "login":
            _, server, result, error = parts
            if result != "ok":
                kind = classify(error)
                line = f"registry {server}: docker login refused: {_answer(error) or 'no answer'}"
                if kind == "unreachable":
                    out.unreachable.append(line)
                    out.warnings.append(line)
                else:
                    out.blocked.append(line)
            continue
        if len(parts) != 3 or not parts[0]:
            continue
        image, found, error = parts
        try:
            repo_digests = json.loads(found) or []
        except ValueError:
            repo_digests = []
        want = _normal(repository(image))
        digest = next((d.split("@", 1)[1] for d in repo_digests
                       if "@" in d and _normal(d.split("@", 1)[0]) == want), None)
        kind = classify(error) if error.strip() else ""
        local_only = found.strip() == "[]"  # in the engine, never pulled: a local build or a `docker load`
        if kind in ("not-found", "denied") and local_only:
            # Swarm's nodes run an image they hold even when the pull fails: as before, by tag
            out.warnings.append(f"image {image}: only in the manager's engine (registry {registry_of(image)} "
                                f"answered: {_answer(error, 160)}): deployed by tag")
        elif kind in ("not-found", "denied"):
            # before a digest the engine kept from earlier: the nodes cannot pull it now
            answer = _answer(error)
            if kind == "denied" and "unauthorized" not in answer.lower():
                answer += " (unauthorized)"
            out.blocked.append(f"image {image}: registry {registry_of(image)} answered: {answer}")
        elif digest:
            out.digests[image] = f"{image.split('@', 1)[0]}@{digest}"
        elif kind == "unreachable":
            line = f"image {image}: registry {registry_of(image)} not reached ({_answer(error, 160)})"
            out.unreachable.append(line)
            out.warnings.append(f"{line}: deployed by tag")
        else:
            why = error.strip() or "the engine knows no digest for it (an image loaded locally, not pulled)"
            why = why if len(why) <= 160 else why[:157] + "..."
            out.warnings.append(f"image {image}: no digest ({why}): deployed by tag")
    return out


def images_of(document: Mapping) -> list[str]:
    """The images a document runs, once each, without digests already written."""
    seen: dict[str, None] = {}
    for service in (document.get("services") or {}).values():
        image = (service or {}).get("image")
        if isinstance(image, str) and "@" not in image:
            seen.setdefault(image)
    return list(seen)


def resolve(transport: Transport, manager: VM, images: list[str], credentials: Sequence = ()) -> Resolution:
    """`credentials` (registries.Credential): the registries to log in to first, in
    the same command (no round trip more)."""
    if not images:
        return Resolution()
    wanted = registries.needed(credentials, {registry_of(i) for i in images})
    # a pull may take a while: longer than an ordinary command's deadline
    res = transport.run(manager, resolve_argv(images, [(c.server, c.username) for c in wanted]), mutating=False,
                        timeout=max(transport.access.command_timeout_s, 120.0),
                        stdin=registries.stdin_of(wanted) if wanted else None)
    return parse_resolve(res.stdout)


def render_by_digest(transport: Transport, manager: VM, renderer, first, credentials: Sequence = ()):
    """(the document rendered with its images by digest, the Resolution: its warnings
    and the gate's lines).  `first` is the document rendered without digests.  A dry
    run resolves too (its plan must show a tag that moved): the pull may add an image
    to the manager's engine; the swarm is not touched."""
    resolution = resolve(transport, manager, images_of(first.document), credentials)
    return (renderer(resolution.digests) if resolution.digests else first), resolution


def pin(digests: Mapping[str, str]):
    """A render `amend` that writes each image by digest."""
    def amend(doc: dict, namespace: str) -> list[SwarmObject]:
        for service in (doc.get("services") or {}).values():
            image = (service or {}).get("image")
            if isinstance(image, str) and image in digests:
                service["image"] = digests[image]
        return []
    return amend


def chain(*amends):
    """Several `amend`s, in order, as one."""
    real = [a for a in amends if a is not None]
    if not real:
        return None

    def amend(doc: dict, namespace: str) -> list[SwarmObject]:
        objects: list[SwarmObject] = []
        for a in real:
            objects += a(doc, namespace)
        return objects
    return amend


def images_digests(document: Mapping) -> dict[str, str]:
    """{image as written: image@digest} for each image a document runs by digest."""
    out = {}
    for service in (document.get("services") or {}).values():
        image = (service or {}).get("image")
        if isinstance(image, str) and "@" in image:
            out[image.split("@", 1)[0]] = image
    return out
