"""The Proxmox provider, on the Proxmox VE API.

Built so far: the pure parts.  `api` (each API call as data), `facts` (recorded or
read API answers parsed into typed facts), `classify` (each configured VM against
its facts), `plan` (the calls that reach the config, as `phoenix_tasks.plan`
actions), `task_wait` (polling a task's status to its exit status), `token` (the API
token, read once into a `Secret`), `http` (the HTTPS client: one `ApiCall` per request,
tested against a loopback server replaying the recorded answers, not a live host).
Not built: the apply, and the wiring of the client into the provider and `sync-all`:
`ProxmoxProvider` still says so (see `provider`).
"""

from __future__ import annotations

from .provider import MESSAGE, ProxmoxProvider

__all__ = ["MESSAGE", "ProxmoxProvider"]
