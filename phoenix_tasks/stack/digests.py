"""Image digests: a tag is a name that can move; a digest is what runs.

Each image of a rendered document is resolved on a manager, through its engine (so
a registry mirror, credentials and the daemon's DNS apply, as they will for the
tasks): the Engine API's `GET /distribution/NAME/json` asks the registry which digest
the tag names, without a pull (nothing is downloaded, on a dry run either), with the
registry's credential in the X-Registry-Auth header; `GET /images/NAME/json` says
whether the manager holds a copy.  Every request of a run goes pipelined on one
`docker system dial-stdio` stream (engine_api.call_many): one command, one round trip.  The document is then
rendered again with `name:tag@sha256:...`, so its hash, the diff and the ledger all
see a tag that moved as a change.

The endpoint's error is the registry's answer, and it is the deploy's image gate
(transaction.py): an image the registry says does not exist (manifest unknown, tag or
repository not found) or refuses (unauthorized, denied) is `blocked`: deploying it
would stop the running task for one that can never start.  A registry that cannot be
reached (DNS, refused, timeout, TLS) is `unreachable`: a warning, and the image stays
by tag (the engines may still have it), unless the deploy requires digests.  An image
with no digest and no error (only loaded locally) stays by tag, with a warning.
"""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass, field
from typing import Iterable, Mapping, Sequence
from urllib.parse import quote

from ..core import engine_api
from ..core.model import VM
from ..core.secrets import Secret
from ..core.transport import Transport
from . import registries
from ..docker.render import SwarmObject

# With logins: `$1` logins, then (server, username) pairs; the passwords come first on
# stdin, one a line, and reach docker login through the shell's builtin printf (never an
# argv); `read` takes them a byte at a time, so the rest of stdin (the API requests) is
# left whole for dial-stdio.  A login that fails logs out again (an older, stale login
# must not pass for this one).  The login stays: `docker stack deploy
# --with-registry-auth` hands the manager CLI's credentials on to the workers.
LOGIN_THEN_DIAL_SCRIPT = (
    'n=$1; shift; '
    'while [ "$n" -gt 0 ]; do '
    's=$1; u=$2; shift 2; n=$((n - 1)); IFS= read -r pw || pw=; '
    'if err=$(printf \'%s\\n\' "$pw" | docker login --username "$u" --password-stdin -- "$s" 2>&1 >/dev/null); '
    'then r=ok; else r=failed; docker logout -- "$s" >/dev/null 2>&1 || true; fi; '
    "printf 'login\\t%s\\t%s\\t%s\\n' \"$s\" \"$r\" \"$(printf %s \"$err\" | tr '\\t\\n' '  ')\"; "
    'done; pw=; '
    'exec docker system dial-stdio'
)


def resolve_argv(logins: Iterable[tuple[str, str]] = ()) -> list[str]:
    """The resolve command: the engine's API stream (`docker system dial-stdio`); with
    `logins` ((server, username) pairs), each registry is logged in to first (the
    passwords go first on its stdin, in the same order)."""
    logins = list(logins)
    if not logins:
        return list(engine_api.DIAL_STDIO)
    pairs = [part for server, user in logins for part in (server, user)]
    return ["sh", "-c", LOGIN_THEN_DIAL_SCRIPT, "phoenix", str(len(logins)), *pairs]


def registry_auth(credential) -> Secret:
    """The X-Registry-Auth header's value: base64url of the JSON credential, as the CLI
    sends it (a Secret: it carries the password)."""
    doc = {"username": credential.username, "password": credential.password.reveal(),
           "serveraddress": credential.server}
    return Secret(base64.urlsafe_b64encode(json.dumps(doc).encode()).decode())


SAFE = "/:@"  # a reference's separators stay; anything else a request line must not carry is %-encoded


def resolve_requests(images: Sequence[str], credentials: Sequence = ()) -> list[engine_api.EngineRequest]:
    """Per image, two reads: the registry's answer for its tag (`/distribution/NAME/json`:
    the digest, without a pull) and the manager's own copy (`/images/NAME/json`: its
    RepoDigests, to tell an image only loaded locally from one the registry lost)."""
    auth = {c.server: registry_auth(c) for c in credentials}
    out = []
    for image in images:
        headers = (("X-Registry-Auth", auth[registry_of(image)]),) if registry_of(image) in auth else ()
        out += [engine_api.EngineRequest("GET", f"/distribution/{quote(image, safe=SAFE)}/json", headers=headers),
                engine_api.EngineRequest("GET", f"/images/{quote(image, safe=SAFE)}/json")]
    return out


def resolve_lines(images: Sequence[str], answers: Sequence[engine_api.EngineAnswer]) -> str:
    """The engine's answers as the lines parse_resolve reads: `image TAB RepoDigests
    (JSON, or null) TAB the registry's error`."""
    lines = []
    for n, image in enumerate(images):
        dist = answers[2 * n] if 2 * n < len(answers) else None
        local = answers[2 * n + 1] if 2 * n + 1 < len(answers) else None
        found, error = "null", ""
        if dist is None:
            error = "the engine gave no answer"
        elif dist.ok:
            try:
                digest = json.loads(dist.body)["Descriptor"]["digest"]
            except (ValueError, KeyError, TypeError):
                digest = None
            if digest:
                found = json.dumps([f"{repository(image)}@{digest}"])
            else:
                error = f"the engine's answer names no digest: {dist.body[:120]}"
        else:
            error = dist.message() or f"HTTP {dist.status}"
            if local is not None and local.ok:
                try:
                    found = json.dumps(json.loads(local.body).get("RepoDigests") or [])
                except (ValueError, AttributeError):
                    found = "null"
        lines.append("\t".join((image, found, " ".join(error.split()))))
    return "".join(line + "\n" for line in lines)


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
    # a registry may be slow to answer: longer than an ordinary read's deadline
    before, answers = engine_api.call_many(
        transport, manager, resolve_requests(images, wanted),
        argv=resolve_argv([(c.server, c.username) for c in wanted]),
        preamble=registries.stdin_of(wanted) if wanted else None,
        timeout=max(transport.access.command_timeout_s, 120.0),
        display=(f"docker login to {', '.join(c.server for c in wanted)}, then " if wanted else "")
        + f"{' '.join(engine_api.DIAL_STDIO)}: GET /distribution/NAME/json and /images/NAME/json of "
        + ", ".join(images))
    return parse_resolve(before + resolve_lines(images, answers))


def render_by_digest(transport: Transport, manager: VM, renderer, first, credentials: Sequence = ()):
    """(the document rendered with its images by digest, the Resolution: its warnings
    and the gate's lines).  `first` is the document rendered without digests.  A dry
    run resolves too (its plan must show a tag that moved): it pulls nothing; the swarm
    is not touched."""
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
