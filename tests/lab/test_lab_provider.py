"""The lab as a VM provider: create/start/stop/destroy one VM, each idempotent."""

from __future__ import annotations

import docker
import pytest

from phoenix_tasks.lab import control
from phoenix_tasks.providers import get_provider
from phoenix_tasks.providers.lab import LabProvider

pytestmark = pytest.mark.lab


def test_provider_lifecycle_of_one_vm(scratch_config):
    provider = get_provider(scratch_config)
    assert isinstance(provider, LabProvider)
    vm = scratch_config.real_vms[0]
    names = control.names_for(scratch_config).vm(vm.vmid)
    assert provider.prepare()
    assert provider.create(vm)
    assert names.netns_file.exists()
    assert provider.create(vm) == []  # exists: nothing changes
    assert not provider.status(vm).running

    assert provider.start(vm)
    client = docker.DockerClient(base_url=names.docker_host)
    assert client.info()["Name"] == vm.name
    assert provider.start(vm) == []
    assert provider.status(vm).up

    assert provider.stop(vm)
    assert not provider.status(vm).running and provider.status(vm).exists
    assert provider.stop(vm) == []

    assert provider.destroy(vm)
    assert not names.netns_file.exists() and not names.state_dir.exists()
    assert provider.destroy(vm) == []
    assert not provider.status(vm).exists
