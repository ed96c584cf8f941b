"""VM providers: who makes the VMs of a configuration (`hypervisor.provider`)."""

from __future__ import annotations

from phoenix_tasks.core.model import Config
from phoenix_tasks.providers.base import VMProvider, VMStatus


def get_provider(config: Config) -> VMProvider:
    """The provider the configuration names: 'lab' or 'proxmox'."""
    if config.hypervisor.provider == "lab":
        from phoenix_tasks.providers.lab import LabProvider
        return LabProvider(config)
    if config.hypervisor.provider == "proxmox":
        from phoenix_tasks.providers.proxmox import ProxmoxProvider
        return ProxmoxProvider(config)
    raise ValueError(f"unknown provider {config.hypervisor.provider!r}")


__all__ = ["VMProvider", "VMStatus", "get_provider"]
