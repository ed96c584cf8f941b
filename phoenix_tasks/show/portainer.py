"""How Portainer prints: its status and the login line.

Text that comes from the config or from a host is printed with markup off (see plans.py)."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:  # rich is imported where something is printed: `inv --list` prints nothing of it
    from rich.console import Console


def portainer_login_line(password) -> str:
    """How the admin logs in: the configured password's source (never the value), or
    Portainer's own first-login page."""
    if password is not None:
        return f"admin password: from {password.source} (a swarm secret, handed to Portainer by file)"
    return ("admin password: not configured: create the admin user on Portainer's first-login page "
            "within 5 minutes of its start, or set portainer.admin_password_file")


def show_portainer(console: Console, status, password) -> None:
    """Portainer: deployed? replicas, where it answers, how to log in."""
    if not status.deployed:
        console.print(f"portainer: {status.detail}", style="red", markup=False)
        return
    replicas = ", ".join(f"{name} {rd}" for name, rd in sorted(status.replicas.items()))
    console.print(f"portainer: {status.namespace}: {replicas}", markup=False, highlight=False)
    style = None if status.answers else "red"
    console.print(f"portainer: {status.detail}", style=style, markup=False, highlight=False)
    console.print(f"portainer: {portainer_login_line(password)}", markup=False, highlight=False)
