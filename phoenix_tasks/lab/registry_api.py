"""Reading the lab registry over its HTTP API (Docker Registry HTTP API v2).

Only ever the lab registry's own address (the lab bridge's, see ``registry``), and
never through a proxy: an `http_proxy` of the user's environment is ignored, so no
request leaves the machine.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from dataclasses import dataclass

from phoenix_tasks.core.errors import PhoenixError

MANIFEST_TYPES = ("application/vnd.docker.distribution.manifest.v2+json",
                  "application/vnd.oci.image.manifest.v1+json")
TIMEOUT_S = 5.0

# No ProxyHandler from the environment: the registry is on the lab bridge, always direct.
_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))


class RegistryUnreadable(PhoenixError):
    """The lab registry did not answer as the API says it does."""


@dataclass(frozen=True)
class TaggedImage:
    """What a tag of the registry holds: the manifest's digest and the image's labels."""

    digest: str  # sha256:..., as a pull's RepoDigest names it
    labels: dict


def _get(url: str, accept: tuple[str, ...] = (), method: str = "GET",
         timeout: float = TIMEOUT_S) -> tuple[int, dict, bytes]:
    request = urllib.request.Request(url, method=method,
                                     headers={"Accept": ", ".join(accept)} if accept else {})
    try:
        with _OPENER.open(request, timeout=timeout) as response:
            return response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as e:
        return e.code, dict(e.headers or {}), e.read() if e.fp else b""


def answers(address: str, timeout: float = 2.0) -> bool:
    """True if a registry answers `GET /v2/` with 200 at address ("host:port")."""
    try:
        status, _, _ = _get(f"http://{address}/v2/", timeout=timeout)
    except (OSError, ValueError):
        return False
    return status == 200


def tagged_image(address: str, repository: str, tag: str) -> TaggedImage | None:
    """The image `repository:tag` holds in the registry (None: no such tag)."""
    base = f"http://{address}/v2/{repository}"
    try:
        status, headers, body = _get(f"{base}/manifests/{tag}", MANIFEST_TYPES)
        if status == 404:
            return None
        if status != 200:
            raise RegistryUnreadable(f"{base}/manifests/{tag}: HTTP {status}")
        digest = headers.get("Docker-Content-Digest", "")
        config_digest = json.loads(body)["config"]["digest"]
        status, _, blob = _get(f"{base}/blobs/{config_digest}")
        if status != 200:
            raise RegistryUnreadable(f"{base}/blobs/{config_digest}: HTTP {status}")
        config = json.loads(blob)
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise RegistryUnreadable(f"the lab registry at {address} does not answer for "
                                 f"{repository}:{tag}: {e}") from None
    if not digest.startswith("sha256:"):
        raise RegistryUnreadable(f"{base}/manifests/{tag}: no Docker-Content-Digest")
    return TaggedImage(digest, dict((config.get("config") or {}).get("Labels") or {}))
