"""`clients.client_for`: proxmox.api picks the HTTPS client (token from the environment)
or the pvesh client (no token read); both have `request`, `where` and a repr with no
secret.  Nothing here connects: the ssh client opens its connection on the first call."""

from __future__ import annotations

import pytest

from phoenix_tasks.core.model import ProxmoxSettings
from phoenix_tasks.providers.proxmox import api, clients
from phoenix_tasks.providers.proxmox.http import Client
from phoenix_tasks.providers.proxmox.pvesh import PveshClient
from phoenix_tasks.providers.proxmox.token import TokenMissing

SECRET = "5f0c3d1e-7a2b-4c9d-8e6f-0123456789ab"
ENV = {"PHOENIX_PROXMOX_API_TOKEN": f"root@pam!phoenix={SECRET}"}


def settings(**kw) -> ProxmoxSettings:
    values = dict(host="10.0.0.13", node="phoenix", ssh_user="root", ssh_port=22,
                  api_token_env="PHOENIX_PROXMOX_API_TOKEN", ssh_known_hosts_file=None,
                  ssh_host_key_policy="accept-new")
    values.update(kw)
    return ProxmoxSettings(**values)


class Unreadable(dict):
    """An environment any read of which fails the test."""

    def get(self, *args):
        raise AssertionError("the environment was read")

    __getitem__ = get


def test_https_is_the_default_and_reads_the_token():
    client = clients.client_for(settings(), ENV)
    assert isinstance(client, Client) and client.where == "10.0.0.13:8006"
    assert SECRET not in repr(client) + str(client) and "***" in repr(client)


def test_https_without_the_token_says_which_variable():
    with pytest.raises(TokenMissing, match="PHOENIX_PROXMOX_API_TOKEN"):
        clients.client_for(settings(), {})


def test_ssh_reads_no_token_and_names_the_ssh_endpoint(tmp_path):
    s = settings(api="ssh", api_token_env=None, ssh_port=2222, ssh_known_hosts_file=tmp_path / "known_hosts")
    with clients.session(s, Unreadable()) as client:
        assert isinstance(client, PveshClient)
        assert client.where == "10.0.0.13:2222"
        assert repr(client) == "PveshClient(ssh://root@10.0.0.13:2222, pvesh)"


def test_ssh_with_a_token_in_the_environment_still_shows_no_secret(tmp_path):
    s = settings(api="ssh", ssh_known_hosts_file=tmp_path / "known_hosts")
    client = clients.client_for(s, ENV)
    try:
        assert SECRET not in repr(client) + str(client) + repr(client._run)
    finally:
        clients.close(client)


def test_both_answer_the_same_protocol(tmp_path):
    for s in (settings(), settings(api="ssh", ssh_known_hosts_file=tmp_path / "k")):
        client = clients.client_for(s, ENV)
        assert callable(client.request) and isinstance(client.where, str)
        clients.close(client)  # a no-op for https


def test_an_unknown_backend_in_hand_made_settings_is_refused():
    with pytest.raises(ValueError, match="'telnet' is not a Proxmox API backend"):
        clients.client_for(settings(api="telnet"), ENV)


def test_the_request_goes_to_the_backend(tmp_path, monkeypatch):
    sent = []

    class Recorder:
        def __init__(self, settings, *, echo=None):
            self.echo = echo

        def __call__(self, argv, *, mutating, timeout_s):
            sent.append(list(argv))
            return 0, '{"vmid":1002}\n', ""

    monkeypatch.setattr(clients, "ssh_runner", Recorder)
    client = clients.client_for(settings(api="ssh", ssh_known_hosts_file=tmp_path / "k"), {})
    assert client.request(api.vm_config("phoenix", 1002)) == {"vmid": 1002}
    assert sent == [["pvesh", "get", "/nodes/phoenix/qemu/1002/config", "--output-format", "json"]]
