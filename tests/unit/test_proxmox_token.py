"""The API token: read from the variable the config names, a Secret at once, and in no
message, repr, plan or shown plan."""

from __future__ import annotations

import io
import pickle

import pytest
from rich.console import Console

from phoenix_tasks.providers.proxmox.plan import Options, plan_vms
from phoenix_tasks.providers.proxmox.token import TokenMissing, api_token
from phoenix_tasks.core.secrets import Secret
from phoenix_tasks.show.plans import show_plan

from proxmox_recorded import PUBLIC_KEY, etc_config, read, responses, without

VALUE = "6f1e2d3c-4b5a-4978-8877-665544332211"
TOKEN = f"root@pam!phoenix={VALUE}"


def test_token_is_read_from_the_named_variable_into_a_secret():
    px = etc_config().hypervisor.proxmox
    token = api_token(px, {"PHOENIX_PROXMOX_API_TOKEN": TOKEN})
    assert (token.user, token.name) == ("root@pam", "phoenix")
    assert isinstance(token.value, Secret) and token.value.reveal() == VALUE
    for text in (str(token), repr(token), f"{token}", f"{token.value}", repr(token.value)):
        assert VALUE not in text
    with pytest.raises(TypeError):
        pickle.dumps(token)


@pytest.mark.parametrize("environ, message", [
    ({}, "PHOENIX_PROXMOX_API_TOKEN (proxmox.api_token_env) is not set or empty"),
    ({"PHOENIX_PROXMOX_API_TOKEN": ""}, "is not set or empty"),
    ({"PHOENIX_PROXMOX_API_TOKEN": VALUE}, "USER@REALM!TOKENID=SECRET (its value is not shown)"),
    ({"PHOENIX_PROXMOX_API_TOKEN": f"root@pam {VALUE}"}, "its value is not shown"),
])
def test_a_bad_or_missing_token_is_named_by_its_variable_never_shown(environ, message):
    with pytest.raises(TokenMissing) as e:
        api_token(etc_config().hypervisor.proxmox, environ)
    assert message in str(e.value)
    assert VALUE not in str(e.value) and VALUE not in repr(e.value)


def test_the_token_is_in_no_plan_and_no_shown_plan(monkeypatch):
    monkeypatch.setenv("PHOENIX_PROXMOX_API_TOKEN", TOKEN)
    config = etc_config()
    api_token(config.hypervisor.proxmox, {"PHOENIX_PROXMOX_API_TOKEN": TOKEN})
    plan = plan_vms(config, read(config, responses(resources=without(1002))), Options(PUBLIC_KEY, apply_drift=True))
    out = io.StringIO()
    show_plan(Console(file=out, width=300), plan, verbose=True)
    assert "> POST /nodes/phoenix/qemu/9000/clone newid=1002 name=drphoenix full=1" in out.getvalue()
    for text in (out.getvalue(), repr(plan), repr(config)):
        assert VALUE not in text and "root@pam!phoenix" not in text
