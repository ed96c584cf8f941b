"""The Proxmox provider, on the Proxmox VE API (design and rules: docs/proxmox.md).

- `api`: each API call as data (`ApiCall`); no DELETE; path parts checked.
- `facts`: the cluster-wide guest list and each configured VM's config, parsed.
- `classify`: each configured VM against its facts (missing, running, drifted, ...).
- `plan`: the calls that reach the config, as `phoenix_tasks.core.plan` actions.
- `apply`: the calls sent, each task polled to its exit status (`task_wait`), clones
  bounded and retried on lock timeouts, locked VMs waited for.
- `provider`: `ProxmoxProvider`, facts -> plan -> apply -> facts again, for `sync-all`
  and `vm.*`.
- The clients (`clients.client_for`, by `proxmox.api`): `http` (HTTPS with the API
  token, `token`) or `pvesh` (Proxmox's CLI on the host over SSH, no token).

Tested against recorded API answers (tests/data/proxmox) and a stateful simulator of
the API on loopback (tests/proxmox_sim.py), not against a live Proxmox host.
"""

from __future__ import annotations

from .provider import ProxmoxProvider

__all__ = ["ProxmoxProvider"]
