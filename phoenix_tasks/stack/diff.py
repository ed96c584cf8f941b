"""Desired services (from the rendered document) against the running ones, field by
field.  Pure: the same comparison serves the plan ("no changes" or which fields
change) and `swarm.diff` (every field, before and after)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping

from .facts import Port, ServiceFacts, ServiceShape
from ..docker.render import LABEL_HASH, Rendered

# Fields compared one by one; everything else of a service's own spec is covered by its
# hash label (render.service_hash; a change there shows as "other settings").
FIELDS = ("image", "mode", "replicas", "constraints", "env", "ports", "configs", "secrets")


@dataclass(frozen=True)
class Desired(ServiceShape):
    """What the rendered document wants of one service, and the hash it is labelled with
    (its own spec's hash; a document rendered before per-service hashes, as an old
    ledger record holds it, labels each service with the document's hash)."""

    hash: str


def _env(value: Any) -> tuple[str, ...]:
    if isinstance(value, dict):
        items = [k if v is None else f"{k}={'true' if v is True else 'false' if v is False else v}"
                 for k, v in value.items()]
    else:
        items = [str(v) for v in value or []]
    return tuple(sorted(items))


def _range(text: str) -> list[int]:
    first, _, last = text.partition("-")
    return list(range(int(first), int(last or first) + 1))


def _ports(p: Any) -> list[Port]:
    """One compose `ports` entry (long syntax, or short `[ip:][published:]target[/proto]`
    with ranges) -> the swarm ports it publishes, one per port as swarm lists them."""
    if isinstance(p, dict):
        return [Port(p.get("published"), int(p["target"]), p.get("protocol", "tcp"), p.get("mode", "ingress"))]
    text = str(p)
    proto = "tcp"
    if "/" in text:
        text, proto = text.rsplit("/", 1)
    parts = text.split(":")
    targets = _range(parts[-1])
    published = _range(parts[-2]) if len(parts) >= 2 and parts[-2] else [None] * len(targets)
    if len(published) != len(targets):
        published = [published[0]] * len(targets)
    return [Port(pub, target, proto, "ingress") for pub, target in zip(published, targets)]


def _names(refs: Any, top: Mapping[str, Any]) -> tuple[str, ...]:
    """Service config/secret references -> the swarm object names they resolve to."""
    names = []
    for ref in refs or []:
        key = ref if isinstance(ref, str) else ref.get("source")
        spec = top.get(key) or {}
        names.append(spec.get("name") or key)
    return tuple(sorted(names))


def desired_services(rendered: Rendered) -> dict[str, Desired]:
    doc = rendered.document
    out = {}
    for svc_name, svc in doc["services"].items():
        deploy = svc.get("deploy") or {}
        mode = deploy.get("mode", "replicated")
        name = rendered.service_name(svc_name)
        out[name] = Desired(
            name=name,
            image=str(svc.get("image", "")),
            mode=mode,
            replicas=deploy.get("replicas", 1) if mode == "replicated" else None,
            constraints=tuple(sorted((deploy.get("placement") or {}).get("constraints") or [])),
            env=_env(svc.get("environment")),
            ports=tuple(sorted((port for p in svc.get("ports") or [] for port in _ports(p)),
                               key=lambda p: (p.published or 0, p.target, p.protocol))),
            configs=_names(svc.get("configs"), doc.get("configs") or {}),
            secrets=_names(svc.get("secrets"), doc.get("secrets") or {}),
            hash=str(((deploy.get("labels") or {}) if isinstance(deploy.get("labels"), Mapping) else {})
                     .get(LABEL_HASH) or rendered.hash),
            restart_condition=((deploy.get("restart_policy") or {}).get("condition") or "any"),
        )
    return out


def normal_image(ref: str, keep_digest: bool = True) -> str:
    """An image reference in the daemon's familiar form: `docker.io/library/nginx` is
    `nginx`, a missing tag is `:latest` (as the daemon pins it); the digest kept or not."""
    name, at, digest = ref.partition("@")
    for prefix in ("docker.io/library/", "index.docker.io/library/", "docker.io/", "index.docker.io/"):
        if name.startswith(prefix):
            name = name[len(prefix):]
            break
    if ":" not in name.rsplit("/", 1)[-1]:
        name += ":latest"
    return name + ("@" + digest if at and keep_digest else "")


def _image(actual: str, desired: str) -> tuple[str, str]:
    """(running, wanted) as compared: familiar forms; the digest the CLI pinned is
    dropped when the compose file names a tag only."""
    pinned = "@" in desired
    return normal_image(actual, keep_digest=pinned), normal_image(desired, keep_digest=pinned)


def same_image(actual: str, desired: str) -> bool:
    """Whether a service runs the image a document wants (as compare() judges it)."""
    running, wanted = _image(actual, desired)
    return running == wanted


@dataclass(frozen=True)
class ServiceChange:
    name: str
    kind: str  # add | change | remove
    fields: Mapping[str, tuple[Any, Any]] = field(default_factory=dict)  # field -> (before, after)
    other_settings: bool = False  # hash differs with no listed field changed

    def summary(self) -> str:
        if self.kind != "change":
            return self.kind
        parts = list(self.fields)
        if self.other_settings:
            parts.append("other settings")
        return "change " + ", ".join(parts)


def compare(desired: Mapping[str, Desired], running: Mapping[str, ServiceFacts]) -> list[ServiceChange]:
    changes = []
    for name, want in desired.items():
        have = running.get(name)
        if have is None:
            changes.append(ServiceChange(name, "add", {f: (None, getattr(want, f)) for f in FIELDS}))
            continue
        fields = {}
        for f in FIELDS:
            before, after = getattr(have, f), getattr(want, f)
            if f == "image":
                running_image, wanted_image = _image(before, after)
                if running_image == wanted_image:
                    continue
                before = before if "@" in after else before.split("@", 1)[0]
            if before != after:
                fields[f] = (before, after)
        hash_differs = have.labels.get(LABEL_HASH) != want.hash
        if fields or hash_differs:
            changes.append(ServiceChange(name, "change", fields, other_settings=hash_differs and not fields))
    for name in sorted(set(running) - set(desired)):
        changes.append(ServiceChange(name, "remove", {f: (getattr(running[name], f), None) for f in FIELDS}))
    return changes


def _fmt(value: Any) -> str:
    if isinstance(value, tuple):
        return "[" + ", ".join(map(str, value)) + "]" if value else "[]"
    return "-" if value is None else str(value)


def describe(change: ServiceChange) -> list[str]:
    """Every changed field, before -> after (what `swarm.diff` prints)."""
    lines = []
    for f, (before, after) in change.fields.items():
        if change.kind == "add":
            lines.append(f"  + {f}: {_fmt(after)}")
        elif change.kind == "remove":
            lines.append(f"  - {f}: {_fmt(before)}")
        else:
            lines.append(f"  ~ {f}: {_fmt(before)} -> {_fmt(after)}")
    if change.other_settings:
        lines.append("  ~ other settings of this service (its deployed hash differs)")
    return lines
