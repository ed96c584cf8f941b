"""Provider choice (pure): the config's `provider` picks the class; the Proxmox
provider reads its key and token when it is made, before anything connects."""

from __future__ import annotations

import dataclasses
import subprocess
from pathlib import Path

import pytest

from phoenix_tasks.config import load_config
from phoenix_tasks.providers import get_provider
from phoenix_tasks.providers.lab import LabProvider
from phoenix_tasks.providers.proxmox import ProxmoxProvider
from phoenix_tasks.providers.proxmox.provider import KeyMissing
from phoenix_tasks.providers.proxmox.token import TokenMissing

REPO = Path(__file__).resolve().parents[2]
TOKEN = "root@pam!phoenix=0b9c1f9e-0000-4000-8000-000000000001"


def with_key(config, key: Path):
    hv = config.hypervisor
    return dataclasses.replace(config, hypervisor=dataclasses.replace(
        hv, vm_access=dataclasses.replace(hv.vm_access, private_key_file=key)))


def test_the_config_picks_the_provider(tmp_path, monkeypatch):
    assert isinstance(get_provider(load_config(REPO / "etc" / "lab")), LabProvider)
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(tmp_path / "id")], check=True, timeout=30)
    monkeypatch.setenv("PHOENIX_PROXMOX_API_TOKEN", TOKEN)
    provider = get_provider(with_key(load_config(REPO / "etc"), tmp_path / "id"))
    assert isinstance(provider, ProxmoxProvider) and TOKEN.split("=")[1] not in repr(provider)


def test_proxmox_without_its_key_or_token_is_a_user_error(tmp_path, monkeypatch):
    monkeypatch.delenv("PHOENIX_PROXMOX_API_TOKEN", raising=False)
    config = load_config(REPO / "etc")
    with pytest.raises(KeyMissing, match=f"vm_access.private_key_file {tmp_path}/none does not exist"):
        get_provider(with_key(config, tmp_path / "none"))
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(tmp_path / "id")], check=True, timeout=30)
    with pytest.raises(TokenMissing, match="PHOENIX_PROXMOX_API_TOKEN"):
        get_provider(with_key(config, tmp_path / "id"))
