"""What the transport reaches and how reaching it fails: shared by `transport` and
`ssh_connection` (which the transport loads on its first connection), so that neither
imports the other's types."""

from __future__ import annotations

from typing import Protocol

from .errors import PhoenixError


class Reachable(Protocol):
    """What the transport needs of a host: a VM and a `model.Host` both qualify."""

    name: str

    @property
    def address(self) -> str: ...


class Unreachable(PhoenixError):
    """SSH to the VM failed: no connection, refused, auth or host key problem."""


class KnownHostsInvalid(PhoenixError):
    """The known_hosts file has a line the SSH client cannot use (named by file and line
    number).  A problem of this machine, not of one VM: it stops the run (`each` does
    not report it per host) before any connection is made."""
