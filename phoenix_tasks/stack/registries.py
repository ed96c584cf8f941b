"""Private registries: the credentials of `registries` in phoenix_hypervisor_config.json,
read before any connection, and which of them a document's images need.

The login itself runs on the manager in the same round trip as the digests' resolution
(digests.LOGIN_THEN_DIAL_SCRIPT): `docker login --username U --password-stdin -- S`,
the password piped from the shell's own `printf` (a builtin: no process has it in its
argv) after it came on the command's standard input.  `docker stack deploy
--with-registry-auth` then passes the manager's credentials on to the workers.  A
password appears in no output, plan, ledger, exception or file of Phoenix's.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Iterable, Mapping

from ..core import safe_read
from ..core.errors import PhoenixError
from ..core.model import Config
from ..core.secrets import Secret


class RegistryError(PhoenixError):
    """A registry's password cannot be read (nothing was contacted)."""


@dataclass(frozen=True)
class Credential:
    server: str
    username: str
    password: Secret
    origin: str  # where the password came from: "file X" or "environment variable Y"


def _one_line(text: str, where: str) -> str:
    text = text[:-2] if text.endswith("\r\n") else text[:-1] if text.endswith("\n") else text
    if not text:
        raise RegistryError(f"{where}: the password is empty")
    if "\n" in text or "\r" in text:
        raise RegistryError(f"{where}: the password must be one line")
    return text


def read_credentials(config: Config, environ: Mapping[str, str] = os.environ) -> tuple[Credential, ...]:
    """Every configured registry's credential; RegistryError names the registry and the
    file or variable (never the value)."""
    out = []
    for reg in config.hypervisor.registries:
        what = f"registry {reg.server} ({config.hypervisor_file}: registries)"
        if reg.password_file is not None:
            origin = f"file {reg.password_file}"
            try:
                data = safe_read.read_bytes(reg.password_file)
            except (OSError, safe_read.Unreadable) as exc:
                raise RegistryError(f"{what}: password file {reg.password_file}: "
                                    f"{getattr(exc, 'strerror', None) or exc}") from None
            try:
                text = data.decode("utf-8")
            except UnicodeDecodeError:
                raise RegistryError(f"{what}: password file {reg.password_file}: not UTF-8 text") from None
        else:
            origin = f"environment variable {reg.password_env}"
            if reg.password_env not in environ:
                raise RegistryError(f"{what}: the environment variable {reg.password_env} is not set")
            text = environ[reg.password_env]
        out.append(Credential(reg.server, reg.username, Secret(_one_line(text, f"{what}: {origin}")), origin))
    return tuple(out)


def needed(credentials: Iterable[Credential], registries: Iterable[str]) -> tuple[Credential, ...]:
    """The credentials of the registries a document's images name, once each."""
    want = set(registries)
    return tuple(c for c in credentials if c.server in want)


def stdin_of(credentials: Iterable[Credential]) -> Secret:
    """The passwords, one a line, as the login script reads them."""
    return Secret("".join(c.password.reveal() + "\n" for c in credentials))
