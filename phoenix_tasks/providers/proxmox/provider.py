"""The Proxmox provider: its facts, classification, plan and HTTP client are built (see
the package); the apply and the wiring are not, so every method still says so plainly."""

from __future__ import annotations

from phoenix_tasks.errors import NotBuilt
from phoenix_tasks.model import VM, Config
from phoenix_tasks.providers.base import VMProvider, VMStatus

MESSAGE = ("Proxmox VM creation is not built yet: create {vm} on the Proxmox host by hand "
           "(or use the local lab: PHOENIX_CONFIG_DIR=etc/lab)")


class ProxmoxProvider(VMProvider):
    name = "proxmox"

    def __init__(self, config: Config) -> None:
        self.config = config

    def _not_built(self, vm: VM):
        raise NotBuilt(MESSAGE.format(vm=vm))

    def create(self, vm: VM) -> list[str]:
        self._not_built(vm)

    def start(self, vm: VM) -> list[str]:
        self._not_built(vm)

    def stop(self, vm: VM) -> list[str]:
        self._not_built(vm)

    def destroy(self, vm: VM) -> list[str]:
        self._not_built(vm)

    def status(self, vm: VM) -> VMStatus:
        self._not_built(vm)
