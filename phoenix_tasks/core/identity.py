"""Who runs Phoenix: `user@host`, written into the cluster lock and the swarm's event
marks so that another operator sees who holds or did what."""

from __future__ import annotations

import getpass
import socket


def me() -> str:
    try:
        user = getpass.getuser()
    except (KeyError, OSError):
        user = "unknown"
    return f"{user}@{socket.gethostname()}"
