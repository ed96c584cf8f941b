"""Which client calls the Proxmox VE API: `client_for(settings, environ)`.

``proxmox.api`` decides: ``https`` (the default) -> `http.Client` with the API token
read from ``environ[proxmox.api_token_env]``; ``ssh`` -> `pvesh.PveshClient` over one SSH
connection to the host (no token read).  Both answer `request(ApiCall) -> data` the
same way (HTTP and pvesh errors as `task_wait.ApiError`, an unreachable host as
`http.ApiUnreachable`), have `where` (host:port) for messages, and a repr with no
secret.  An ``ssh`` client holds its SSH connection until `close()`: use `session`
(a context manager, for either backend) or call `close(client)`.
"""

from __future__ import annotations

from contextlib import contextmanager
from typing import Any, Callable, Iterator, Mapping, Protocol

from ...core.model import ProxmoxSettings
from .api import ApiCall
from .http import Client
from .pvesh import PveshClient, ssh_runner
from .token import api_token


class ApiClient(Protocol):
    @property
    def where(self) -> str: ...

    def request(self, call: ApiCall) -> Any: ...


def client_for(settings: ProxmoxSettings, environ: Mapping[str, str], *,
               echo: Callable[[str], None] | None = None) -> ApiClient:
    """The client `settings.api` names.  `environ` is read only for ``https`` (the token:
    `token.TokenMissing` when it is absent); `echo` prints each changing pvesh command
    (``ssh`` only; the HTTPS client logs its calls at debug level)."""
    if settings.api == "ssh":
        return PveshClient(settings, run=ssh_runner(settings, echo=echo))
    if settings.api == "https":
        return Client(settings, api_token(settings, environ))
    raise ValueError(f"{settings.api!r} is not a Proxmox API backend (https or ssh)")


def close(client: ApiClient) -> None:
    """Close what the client holds open (the SSH connection of an ``ssh`` client)."""
    closer = getattr(client, "close", None)
    if closer:
        closer()


@contextmanager
def session(settings: ProxmoxSettings, environ: Mapping[str, str], *,
            echo: Callable[[str], None] | None = None) -> Iterator[ApiClient]:
    """`client_for`, closed on the way out."""
    client = client_for(settings, environ, echo=echo)
    try:
        yield client
    finally:
        close(client)
