"""Private registries: the config entry, the password read before any connection, the
login in the digests' own round trip (exact argv, the password on stdin only), and the
registry's answer to a login (phoenix_tasks.stack.registries, digests)."""

from __future__ import annotations

import base64
import json
import os
import subprocess
from pathlib import Path

import pytest
from invoke import MockContext, Result

from phoenix_tasks.config import load_config
from phoenix_tasks.core.secrets import Secret
from phoenix_tasks.stack import commands, digests, registries
from phoenix_tasks.tasks import common
from phoenix_tasks.tasks import stacks as stack_tasks
from phoenix_tasks.core.transport import Transport, shell_command

from swarm_recorded import lab_config
from test_stack_digests import error
from test_stack_tasks import RB_NAMESPACE, recorded_services, run, stacks_dir  # noqa: F401 - fixture

PASSWORD = "s3cret-Pa55word"


def with_registries(config, entries: list[dict]):
    doc = json.loads(config.hypervisor_file.read_text())
    doc["registries"] = entries
    config.hypervisor_file.write_text(json.dumps(doc))
    return load_config(config.config_dir, config.stacks_dir)


@pytest.fixture
def config(tmp_path, stacks_dir):  # noqa: F811
    cfg = lab_config(tmp_path, None)
    return load_config(cfg.config_dir, stacks_dir)


def test_a_password_file_and_a_password_env(config, tmp_path):
    pw = tmp_path / "pw"
    pw.write_text(PASSWORD + "\n")
    cfg = with_registries(config, [
        {"server": "registry.thinkheads.ai", "username": "deploy", "password_file": str(pw)},
        {"server": "198.18.100.1:5443", "username": "ci", "password_env": "PHX_REG"}])
    creds = registries.read_credentials(cfg, {"PHX_REG": "tok\n"})
    assert [(c.server, c.username, c.password.reveal(), c.origin) for c in creds] == [
        ("registry.thinkheads.ai", "deploy", PASSWORD, f"file {pw}"),
        ("198.18.100.1:5443", "ci", "tok", "environment variable PHX_REG")]
    assert PASSWORD not in repr(creds) and PASSWORD not in str(creds)


@pytest.mark.parametrize("entry, environ, message", [
    ({"password_file": "/nonexistent/pw"}, {}, "password file /nonexistent/pw: file not found"),
    ({"password_env": "PHX_REG"}, {}, "the environment variable PHX_REG is not set"),
    ({"password_env": "PHX_REG"}, {"PHX_REG": ""}, "environment variable PHX_REG: the password is empty"),
    ({"password_env": "PHX_REG"}, {"PHX_REG": "a\nb"}, "the password must be one line"),
])
def test_a_password_that_cannot_be_read_names_the_registry_and_where(config, entry, environ, message):
    cfg = with_registries(config, [{"server": "registry.lan", "username": "u", **entry}])
    with pytest.raises(registries.RegistryError) as exc:
        registries.read_credentials(cfg, environ)
    assert str(exc.value).startswith(f"registry registry.lan ({cfg.hypervisor_file}: registries): ")
    assert message in str(exc.value)


@pytest.mark.parametrize("entry", [
    {"server": "registry.lan", "username": "u"},  # no password source
    {"server": "registry.lan", "username": "u", "password_file": "/pw", "password_env": "X"},  # both
    {"server": "registry.lan; rm -rf /", "username": "u", "password_env": "X"},
    {"server": "registry.lan", "username": "u", "password": "inline", "password_env": "X"},
])
def test_the_schema_refuses_a_bad_entry(config, entry):
    from phoenix_tasks.config.problems import ConfigInvalid
    with pytest.raises(ConfigInvalid):
        with_registries(config, [entry])


def test_needed_are_the_registries_the_images_name():
    a = registries.Credential("r.lan", "u", Secret("x"), "env")
    b = registries.Credential("q.lan:5000", "u", Secret("y"), "env")
    assert registries.needed([a, b], {"q.lan:5000", "docker.io"}) == (b,)
    assert registries.stdin_of([a, b]).reveal() == "x\ny\n"


def test_resolve_argv_with_logins_exact():
    argv = digests.resolve_argv([("r.lan", "deploy")])
    assert argv == ["sh", "-c", digests.LOGIN_THEN_DIAL_SCRIPT, "phoenix", "1", "r.lan", "deploy"]
    assert digests.resolve_argv([]) == ["docker", "system", "dial-stdio"]
    assert "--password-stdin" in digests.LOGIN_THEN_DIAL_SCRIPT and "--password " not in \
        digests.LOGIN_THEN_DIAL_SCRIPT
    assert digests.LOGIN_THEN_DIAL_SCRIPT.endswith("exec docker system dial-stdio")


def test_the_registry_s_credential_goes_in_the_api_request_s_header():
    cred = registries.Credential("r.lan", "deploy", Secret(PASSWORD), "env")
    [dist, local] = digests.resolve_requests(["r.lan/a:1"], [cred])
    [(name, value)] = dist.headers
    assert name == "X-Registry-Auth" and isinstance(value, Secret) and local.headers == ()
    decoded = json.loads(base64.urlsafe_b64decode(value.reveal()))
    assert decoded == {"username": "deploy", "password": PASSWORD, "serveraddress": "r.lan"}
    assert PASSWORD not in repr(dist) and value in dist.secrets()
    assert digests.resolve_requests(["q.lan/a:1"], [cred])[0].headers == ()  # another registry's: none


def test_the_login_script_pipes_the_password_and_logs_out_after_a_refusal(tmp_path):
    """The script run by a real sh against a stand-in `docker` that records its argv and stdin;
    what is left on stdin after the passwords reaches dial-stdio whole."""
    log, api = tmp_path / "log", tmp_path / "api"
    fake = tmp_path / "docker"
    fake.write_text(f"""#!/bin/sh
echo "argv: $*" >> {log}
case "$1" in
login) pw=$(cat); echo "stdin: $pw" >> {log}; [ "$pw" = good ] && exit 0
       echo 'Error response from daemon: login attempt to https://q.lan:5000/v2/ failed with status: 401 Unauthorized' >&2; exit 1;;
system) cat > {api}; printf 'HTTP/1.1 200 OK\\r\\nContent-Length: 2\\r\\n\\r\\n{{}}';;
esac
""")
    fake.chmod(0o755)
    argv = digests.resolve_argv([("r.lan", "u1"), ("q.lan:5000", "u2")])
    requests = "GET /distribution/r.lan/a:1/json HTTP/1.1\r\nHost: docker\r\n\r\n"
    res = subprocess.run(argv, input="good\nbad\n" + requests, capture_output=True, text=True,
                         env={**os.environ, "PATH": f"{tmp_path}:{os.environ['PATH']}"})
    head, _, answer = res.stdout.partition("HTTP/1.1")
    out = digests.parse_resolve(head)
    assert out.blocked == ["registry q.lan:5000: docker login refused: login attempt to https://q.lan:5000/v2/ "
                           "failed with status: 401 Unauthorized"]
    assert api.read_bytes().decode() == requests and answer.endswith("{}")
    lines = log.read_text().splitlines()
    assert lines[:6] == ["argv: login --username u1 --password-stdin -- r.lan", "stdin: good",
                         "argv: login --username u2 --password-stdin -- q.lan:5000", "stdin: bad",
                         "argv: logout -- q.lan:5000", "argv: system dial-stdio"]
    assert not any("good" in line or "bad" in line for line in lines if line.startswith("argv"))


def test_deploy_logs_in_within_the_resolve_round_trip_and_the_password_is_only_on_stdin(
        tmp_path, stacks_dir, monkeypatch, capsys):  # noqa: F811
    cfg = with_registries(load_config(lab_config(tmp_path, None).config_dir, stacks_dir),
                          [{"server": "docker.io", "username": "deploy", "password_env": "PHX_REG"}])
    monkeypatch.setenv("PHX_REG", PASSWORD)
    monkeypatch.setenv("PHOENIX_CONFIG_DIR", str(cfg.config_dir))
    monkeypatch.setenv("PHOENIX_STACKS_DIR", str(stacks_dir))
    image = "thinkheads/ai-inference:1.4.0"
    resolve = digests.resolve_argv([("docker.io", "deploy")])
    outputs = {shell_command(commands.stack_services(RB_NAMESPACE)): Result(stdout=recorded_services()),
               shell_command(resolve): Result(stdout="login\tdocker.io\tfailed\tunauthorized: incorrect username "
                                                     "or password\n" + error("401 Unauthorized", "unauthorized")
                                                     + error("404 Not Found", f"No such image: {image}"))}
    made = []

    def transport_for(c, verbose):
        t = Transport(c.hypervisor.vm_access, connect=lambda vm, access: MockContext(run=outputs, repeat=True))
        made.append(t)
        return t

    monkeypatch.setattr(common, "transport_for", transport_for)
    code, message = run(stack_tasks.deploy, stack="probe_rollback", env="rb", verbose=True)
    captured = capsys.readouterr()
    text = captured.out + captured.err + message
    assert code == 1, text
    assert "blocked rb_probe_rollback: registry docker.io: docker login refused: unauthorized: incorrect " \
           "username or password" in text
    assert PASSWORD not in text
    [t] = made  # the same two reads as without a registry: the login rides on the resolve
    assert [(r.vm, r.mutating) for r in t.log] == [("portainer", False), ("portainer", False)]
    [login] = [r for r in t.log if "docker login" in r.display]
    assert login.stdin_bytes > len(PASSWORD) + 1 and PASSWORD not in login.display  # then the API requests


class _Stop(Exception):
    """Ends a task where the test has seen what it needs (before any connection)."""


def test_portainer_deploy_and_sync_all_log_in_to_private_registries_too(tmp_path, stacks_dir, monkeypatch):  # noqa: F811
    """Portainer's images may live in a private registry as well: portainer.deploy and
    sync-all's Portainer stage read the credentials before any connection and hand them
    to the same resolve (and login) that swarm.deploy uses."""
    from phoenix_tasks.sync import sync_all as sync
    from phoenix_tasks.tasks import portainer as portainer_tasks
    from phoenix_tasks.tasks import sync as sync_tasks
    cfg = with_registries(load_config(lab_config(tmp_path, None).config_dir, stacks_dir),
                          [{"server": "docker.io", "username": "deploy", "password_env": "PHX_REG"}])
    monkeypatch.setenv("PHX_REG", PASSWORD)
    monkeypatch.setenv("PHOENIX_CONFIG_DIR", str(cfg.config_dir))
    monkeypatch.setenv("PHOENIX_STACKS_DIR", str(stacks_dir))
    monkeypatch.setattr(common, "transport_for",
                        lambda c, verbose: Transport(c.hypervisor.vm_access,
                                                     connect=lambda vm, access: MockContext()))
    seen = []

    def guarded_deploy(transport, config, renderer, *, guard, **kw):
        seen.append(("portainer.deploy", guard.credentials))
        raise _Stop

    def read_plan(config, transport, provider, renderer, opts, *, apply_drift=False, credentials=()):
        seen.append(("sync-all", credentials))
        raise _Stop

    monkeypatch.setattr(portainer_tasks, "guarded_deploy", guarded_deploy)
    monkeypatch.setattr(portainer_tasks, "carry_data_if_moved", lambda *a: None)
    monkeypatch.setattr(sync, "read_plan", read_plan)
    for task in (portainer_tasks.deploy, sync_tasks.sync_all):
        with pytest.raises(_Stop):
            task(MockContext(), dry_run=True)
    assert [(where, [(c.server, c.username, c.password.reveal()) for c in creds]) for where, creds in seen] == [
        ("portainer.deploy", [("docker.io", "deploy", PASSWORD)]), ("sync-all", [("docker.io", "deploy", PASSWORD)])]


def test_sync_all_refuses_an_unreadable_registry_password_before_any_connection(tmp_path, stacks_dir,
                                                                                 monkeypatch, capsys):  # noqa: F811
    from phoenix_tasks.tasks import sync as sync_tasks
    cfg = with_registries(load_config(lab_config(tmp_path, None).config_dir, stacks_dir),
                          [{"server": "docker.io", "username": "deploy", "password_env": "PHX_REG_UNSET"}])
    monkeypatch.delenv("PHX_REG_UNSET", raising=False)
    monkeypatch.setenv("PHOENIX_CONFIG_DIR", str(cfg.config_dir))
    monkeypatch.setenv("PHOENIX_STACKS_DIR", str(stacks_dir))
    monkeypatch.setattr(common, "transport_for", lambda *a: pytest.fail("a connection was made"))
    code, message = run(sync_tasks.sync_all, dry_run=True)
    text = message + capsys.readouterr().err
    assert code == 1 and "registry docker.io" in text and "PHX_REG_UNSET is not set" in text, text
