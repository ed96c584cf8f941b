"""The VM provider interface: what `sync-all`'s first step calls for each VM.

A provider makes one VM from its config entry.  Every method is idempotent and
returns the changes it made, one line each; an empty list means "no changes".
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass

from phoenix_tasks.model import VM


@dataclass(frozen=True)
class VMStatus:
    vm: VM
    exists: bool
    running: bool
    # provider-specific parts, e.g. {"namespace": True, "engine": True, "sshd": False}
    parts: tuple[tuple[str, bool], ...] = ()

    @property
    def up(self) -> bool:
        return self.exists and self.running


class VMProvider(ABC):
    name: str

    def prepare(self) -> list[str]:
        """Shared resources every VM needs (a bridge, keys); idempotent."""
        return []

    @abstractmethod
    def create(self, vm: VM) -> list[str]:
        """Make the VM if it does not exist; a VM that exists is left as it is."""

    @abstractmethod
    def start(self, vm: VM) -> list[str]:
        """Start the VM and wait until it is ready (SSH answers, engine works)."""

    @abstractmethod
    def stop(self, vm: VM) -> list[str]:
        """Stop the VM, keeping what it is made of."""

    @abstractmethod
    def destroy(self, vm: VM) -> list[str]:
        """Remove the VM and everything it is made of; nothing to remove is fine."""

    @abstractmethod
    def status(self, vm: VM) -> VMStatus:
        """Read-only: does the VM exist, does it run."""
