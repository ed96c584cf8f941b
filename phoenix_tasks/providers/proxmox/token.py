"""The API token: read once from the environment variable the config names, and from
then on only a `Secret`.  Its value is never in a message, a plan or a log line."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Mapping

from ...core.errors import PhoenixError
from ...core.model import ProxmoxSettings
from ...core.secrets import Secret

# USER@REALM!TOKENID=UUID, the form of the PVEAPIToken header.
FORM = re.compile(r"(?P<user>[^@!=\s]+@[^@!=\s]+)!(?P<name>[A-Za-z][A-Za-z0-9._-]*)=(?P<value>\S+)")


class TokenMissing(PhoenixError):
    pass


@dataclass(frozen=True)
class ApiToken:
    user: str  # e.g. root@pam
    name: str  # the token id, e.g. phoenix
    value: Secret

    def __repr__(self) -> str:
        return f"ApiToken({self.user}!{self.name}=***)"

    __str__ = __repr__


def api_token(settings: ProxmoxSettings, environ: Mapping[str, str]) -> ApiToken:
    """The token from `environ[settings.api_token_env]`, as USER@REALM!TOKENID=SECRET."""
    var = settings.api_token_env
    if not var:
        raise TokenMissing("proxmox.api_token_env is not set: name the environment variable that holds "
                           "the API token (USER@REALM!TOKENID=SECRET)")
    raw = Secret(environ.get(var, ""))  # wrapped before anything else looks at it
    if not raw:
        raise TokenMissing(f"the environment variable {var} (proxmox.api_token_env) is not set or empty")
    m = FORM.fullmatch(raw.reveal().strip())
    if not m:
        raise TokenMissing(f"the environment variable {var} does not hold a Proxmox API token of the form "
                           "USER@REALM!TOKENID=SECRET (its value is not shown)")
    return ApiToken(m.group("user"), m.group("name"), Secret(m.group("value")))
