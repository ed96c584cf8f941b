"""The Proxmox provider, on the Proxmox VE API.

Built so far: the pure parts.  `api` (each API call as data), `facts` (recorded or
read API answers parsed into typed facts), `classify` (each configured VM against
its facts), `plan` (the calls that reach the config, as `phoenix_tasks.plan`
actions), `task_wait` (polling a task's status to its exit status), `token` (the API
token, read once into a `Secret`).  Not built: the HTTP client, the apply, `sync-all`
through it: `ProxmoxProvider` still says so (see `provider`).
"""

from __future__ import annotations

from .provider import MESSAGE, ProxmoxProvider

__all__ = ["MESSAGE", "ProxmoxProvider"]
