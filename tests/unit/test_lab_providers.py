"""Provider choice and the Proxmox placeholder (pure)."""

from __future__ import annotations

from pathlib import Path

import pytest

from phoenix_tasks.config import load_config
from phoenix_tasks.errors import NotBuilt
from phoenix_tasks.providers import get_provider
from phoenix_tasks.providers.lab import LabProvider
from phoenix_tasks.providers.proxmox import ProxmoxProvider

REPO = Path(__file__).resolve().parents[2]


def test_the_config_picks_the_provider():
    assert isinstance(get_provider(load_config(REPO / "etc" / "lab")), LabProvider)
    assert isinstance(get_provider(load_config(REPO / "etc")), ProxmoxProvider)


@pytest.mark.parametrize("method", ["create", "start", "stop", "destroy", "status"])
def test_proxmox_says_plainly_it_is_not_built(method):
    config = load_config(REPO / "etc")
    vm = config.real_vms[0]
    with pytest.raises(NotBuilt, match="Proxmox VM creation is not built yet") as e:
        getattr(get_provider(config), method)(vm)
    assert str(vm) in str(e.value)
