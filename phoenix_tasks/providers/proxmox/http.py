"""The HTTP client for the Proxmox VE API: `Client(settings, token).request(call)`.

One `ApiCall` (see `api`) becomes one HTTPS request to
``https://{host}:{api_port}/api2/json{path}``; the answer's ``data`` field is returned.

- The path is URL-quoted here and only here (`api` builds raw paths from checked
  parts; a task's UPID holds ``:``, ``@`` and ``!``).  GET params go in the query,
  POST/PUT params in an ``application/x-www-form-urlencoded`` body.
- The token is sent as ``Authorization: PVEAPIToken=USER@REALM!TOKENID=SECRET``; its
  value is revealed only into that header, never into a message, a repr or a log line.
- TLS is verified unless ``verify_tls`` is false: against ``ca_file`` when it is set
  (e.g. the cluster's pve-root-ca.pem), else the system CAs; the host name is checked.
- An HTTP error becomes `task_wait.ApiError(status, reason)`, the reason being
  Proxmox's status-line text (e.g. "VM is locked (clone)") plus, when the JSON body
  carries them, its per-parameter ``errors``.  A connection or TLS failure is a
  one-line `PhoenixError` naming host:port.
- The port is ``proxmox.api_port`` (default 8006, pveproxy's port).

Why the standard library and not proxmoxer (which the issue names): every call is
already data (`ApiCall`), so proxmoxer's attribute-chain path building would be
bypassed, and what is left (one request, one header, one SSL context, the error
mapping) is a few dozen lines here.  proxmoxer's HTTPS backend needs `requests` and
reports errors through its own `ResourceException`, whose text would have to be
re-parsed to recover the status-line reason `task_wait` matches on; adding it buys no
behaviour this module lacks.  Its SSH backend (``pvesh`` on the host) is the one thing
it would add: Phoenix has that as `pvesh.PveshClient`, the same `request(ApiCall)`
over Phoenix's own SSH transport (``proxmox.api: ssh``; `clients.client_for` picks).
"""

from __future__ import annotations

import http.client
import json
import logging
import ssl
from typing import Any
from urllib.parse import quote, urlencode

from ...core.errors import PhoenixError
from ...core.model import ProxmoxSettings
from .api import ApiCall
from .task_wait import ApiError
from .token import ApiToken

API_ROOT = "/api2/json"
DEFAULT_TIMEOUT_S = 30.0
log = logging.getLogger(__name__)


class ApiUnreachable(PhoenixError):
    """The API could not be reached or spoke no Proxmox API (TLS, refused, timeout)."""


def tls_context(settings: ProxmoxSettings) -> ssl.SSLContext:
    """Verification on (system CAs, or `ca_file` as the trust anchor) unless `verify_tls` is false."""
    if not settings.verify_tls:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        return ctx
    if settings.ca_file is None:
        return ssl.create_default_context()
    try:
        return ssl.create_default_context(cafile=str(settings.ca_file))
    except (OSError, ssl.SSLError) as exc:
        raise PhoenixError(f"proxmox.ca_file {settings.ca_file} cannot be used as a CA file: "
                           f"{getattr(exc, 'strerror', None) or exc}") from None


def _one_line(text: object) -> str:
    return " ".join(str(text).split())


def _reason(status_reason: str, body: bytes) -> str:
    """The status line's reason, with the JSON body's `errors` (per parameter) when present."""
    reason = _one_line(status_reason) or "no reason given"
    try:
        errors = json.loads(body).get("errors") if body else None
    except (ValueError, AttributeError):
        errors = None
    if isinstance(errors, dict) and errors:
        reason += " (" + "; ".join(f"{k}: {_one_line(v)}" for k, v in sorted(errors.items())) + ")"
    elif isinstance(errors, str) and errors.strip():
        reason += f" ({_one_line(errors)})"
    return reason


class Client:
    """The Proxmox VE API over HTTPS, one `ApiCall` at a time."""

    def __init__(self, settings: ProxmoxSettings, token: ApiToken, *, timeout_s: float = DEFAULT_TIMEOUT_S):
        self.host = settings.host
        self.port = settings.api_port
        self.timeout_s = timeout_s
        self._token = token
        self._context = tls_context(settings)
        self.verify_tls = settings.verify_tls

    @property
    def where(self) -> str:
        return f"{self.host}:{self.port}"

    def __repr__(self) -> str:
        return f"Client(https://{self.where}{API_ROOT}, {self._token!r}, verify_tls={self.verify_tls})"

    __str__ = __repr__

    def _authorization(self) -> str:
        value = self._token.value.reveal()
        header = f"PVEAPIToken={self._token.user}!{self._token.name}={value}"
        if not header.isascii() or not header.isprintable():
            # http.client would quote the header value in its own error message
            raise PhoenixError(f"the Proxmox API token for {self._token.user}!{self._token.name} holds "
                               "characters a header cannot carry (its value is not shown)")
        return header

    def request(self, call: ApiCall) -> Any:
        """Send `call`; the answer's `data` (None when the API answers none)."""
        target = API_ROOT + quote(call.path, safe="/")
        form = urlencode(call.params) if call.params else ""
        headers = {"Authorization": self._authorization(), "Accept": "application/json"}
        body = None
        if call.method == "GET":
            target += f"?{form}" if form else ""
        else:
            body = form.encode("ascii")
            headers["Content-Type"] = "application/x-www-form-urlencoded"
        log.debug("proxmox api %s: %s", self.where, call)
        conn = http.client.HTTPSConnection(self.host, self.port, context=self._context, timeout=self.timeout_s)
        try:
            conn.request(call.method, target, body=body, headers=headers)
            response = conn.getresponse()
            raw = response.read()
        except ssl.SSLCertVerificationError as exc:
            raise ApiUnreachable(
                f"the Proxmox API at {self.where}: TLS certificate not verified ({_one_line(exc.verify_message)}); "
                "set proxmox.ca_file to the CA that signed it (e.g. /etc/pve/pve-root-ca.pem)") from None
        except TimeoutError:  # connect, TLS handshake or answer: one deadline each
            raise ApiUnreachable(f"cannot reach the Proxmox API at {self.where}: no answer within "
                                 f"{self.timeout_s:g} s") from None
        except (OSError, http.client.HTTPException) as exc:
            why = _one_line(getattr(exc, "strerror", None) or str(exc) or type(exc).__name__)
            raise ApiUnreachable(f"cannot reach the Proxmox API at {self.where}: {why}") from None
        finally:
            conn.close()
        if response.status >= 300:
            raise ApiError(response.status, _reason(response.reason, raw))
        try:
            doc = json.loads(raw)
        except ValueError:
            raise ApiUnreachable(f"the Proxmox API at {self.where} answered {call.method} {call.path} "
                                 "with something that is not JSON") from None
        if not isinstance(doc, dict):
            raise ApiUnreachable(f"the Proxmox API at {self.where} answered {call.method} {call.path} "
                                 "without a JSON object")
        return doc.get("data")
