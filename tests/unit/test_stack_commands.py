"""The stack layer's commands (phoenix_tasks.stack.commands): exact argv of every
builder, and the namespace kept out of the scripts' text (it is `$1`, quoted once by
the transport)."""

import shlex

import pytest

from phoenix_tasks.core.argv import shell_command
from phoenix_tasks.stack import commands

NS = "dev1_thinkheads_ai_app"
HOSTILE = "dev1; rm -rf /"
SCRIPTS = [
    (commands.stack_services, commands.STACK_SERVICES_SCRIPT),
    (commands.preflight, commands.PREFLIGHT_SCRIPT),
    (commands.progress, commands.PROGRESS_SCRIPT),
    (commands.leftovers, commands.LEFTOVERS_SCRIPT),
]


@pytest.mark.parametrize("builder, script", SCRIPTS, ids=lambda v: getattr(v, "__name__", "script"))
def test_script_builders_pass_the_namespace_as_the_last_argument_only(builder, script):
    assert builder(NS) == ["sh", "-c", script, "phoenix", NS]
    assert NS not in script
    assert "dev1" not in script


@pytest.mark.parametrize("builder, script", SCRIPTS, ids=lambda v: getattr(v, "__name__", "script"))
def test_hostile_namespace_stays_one_quoted_word(builder, script):
    argv = builder(HOSTILE)
    assert argv == ["sh", "-c", script, "phoenix", HOSTILE]
    assert HOSTILE not in script
    line = shell_command(argv)
    words = shlex.split(line)
    assert words == ["sh", "-c", script, "phoenix", HOSTILE]
    assert words[-1] == "dev1; rm -rf /"
    assert len(words) == 5


def test_scripts_read_the_namespace_as_dollar_one():
    for script in (commands.STACK_SERVICES_SCRIPT, commands.PROGRESS_SCRIPT, commands.LEFTOVERS_SCRIPT):
        assert "$1" in script
    assert commands.STACK_SERVICES_SCRIPT == (
        'rows=$(docker service ls --filter "label=com.docker.stack.namespace=$1" --format '
        "'{{.ID}} {{.Replicas}}') && ids=$(printf '%s\\n' \"$rows\" | cut -d' ' -f1) && "
        'if [ -n "$ids" ]; then docker service inspect $ids; else echo "[]"; fi && '
        "echo '--- phoenix ---' && printf '%s\\n' \"$rows\"")
    assert commands.LEFTOVERS_SCRIPT == (
        'f="label=com.docker.stack.namespace=$1"; '
        "docker service ls -q --filter \"$f\" | sed 's/^/service /'; "
        "docker network ls -q --filter \"$f\" | sed 's/^/network /'; "
        "docker config ls -q --filter \"$f\" | sed 's/^/config /'; "
        "docker secret ls -q --filter \"$f\" | sed 's/^/secret /'")
    # the pre-flight read has seven sections: six separators
    assert commands.PREFLIGHT_SCRIPT.count(f"echo '{commands.SEPARATOR}'") == 6
    assert commands.PREFLIGHT_SCRIPT.startswith("set -e; docker version --format '{{.Client.Version}}'; date +%s%N; ")


def test_hostile_namespace_in_plain_builders_is_one_word():
    for argv in (commands.stack_deploy(HOSTILE, "28.2.2"), commands.stack_rm(HOSTILE),
                 commands.node_volumes(HOSTILE), commands.service_logs(HOSTILE)):
        words = shlex.split(shell_command(argv))
        assert words == list(argv)
    assert shlex.split(shell_command(commands.stack_rm(HOSTILE))) == ["docker", "stack", "rm", "--", "dev1; rm -rf /"]


def test_node_volumes():
    assert commands.node_volumes(NS) == [
        "docker", "volume", "ls", "-q", "--filter", "label=com.docker.stack.namespace=dev1_thinkheads_ai_app"]


BASE_DEPLOY = ["docker", "stack", "deploy", "--compose-file", "-", "--prune", "--with-registry-auth"]


@pytest.mark.parametrize("version, detach", [
    ("28.2.2", True),
    ("26.0.0", True),
    ("20.10.24+dfsg1", False),
    ("25.0.3", False),
])
def test_stack_deploy_detach_flag_by_cli_version(version, detach):
    expected = BASE_DEPLOY + (["--detach=true"] if detach else []) + ["--", NS]
    assert commands.stack_deploy(NS, version) == expected
    assert commands.cli_supports_detach(version) is detach


def test_stack_deploy_exact():
    assert commands.stack_deploy("rb_probe_rollback", "28.2.2") == [
        "docker", "stack", "deploy", "--compose-file", "-", "--prune", "--with-registry-auth",
        "--detach=true", "--", "rb_probe_rollback"]
    assert commands.stack_deploy("rb_probe_rollback", "20.10.24+dfsg1") == [
        "docker", "stack", "deploy", "--compose-file", "-", "--prune", "--with-registry-auth",
        "--", "rb_probe_rollback"]


def test_stack_rm():
    assert commands.stack_rm(NS) == ["docker", "stack", "rm", "--", "dev1_thinkheads_ai_app"]


def test_object_create_sorts_labels_then_name_then_dash():
    labels = {"io.phoenix.stack": "app", "com.docker.stack.namespace": "dev1_app", "io.phoenix.env": "dev1"}
    assert commands.object_create("config", "dev1_app_settings_0123abcd", labels) == [
        "docker", "config", "create",
        "--label", "com.docker.stack.namespace=dev1_app",
        "--label", "io.phoenix.env=dev1",
        "--label", "io.phoenix.stack=app",
        "--", "dev1_app_settings_0123abcd", "-"]
    assert commands.object_create("secret", "dev1_app_token_89abcdef", {"b": "2", "a": "1"}) == [
        "docker", "secret", "create", "--label", "a=1", "--label", "b=2", "--", "dev1_app_token_89abcdef", "-"]
    assert commands.object_create("config", "x", {}) == ["docker", "config", "create", "--", "x", "-"]


@pytest.mark.parametrize("kind", ["volume", "network", "Config", ""])
def test_object_create_refuses_other_kinds(kind):
    with pytest.raises(ValueError) as info:
        commands.object_create(kind, "x", {})
    assert str(info.value) == f"kind must be config or secret, not {kind!r}"


def test_network_rm():
    assert commands.network_rm(["wxfsxihp4jaa", "jrknkdeiy1vo"]) == [
        "docker", "network", "rm", "--", "wxfsxihp4jaa", "jrknkdeiy1vo"]
    assert commands.network_rm(("abc",)) == ["docker", "network", "rm", "--", "abc"]


def test_volume_rm():
    assert commands.volume_rm(["dev1_app_data", "dev1_app_cache"]) == [
        "docker", "volume", "rm", "--", "dev1_app_data", "dev1_app_cache"]


def test_service_logs():
    assert commands.service_logs("rb_probe_rollback_web") == [
        "docker", "service", "logs", "--no-task-ids", "--tail", "20", "--", "rb_probe_rollback_web"]
    assert commands.service_logs("rb_probe_rollback_web", 5) == [
        "docker", "service", "logs", "--no-task-ids", "--tail", "5", "--", "rb_probe_rollback_web"]


def test_service_nodes():
    assert commands.service_nodes(["dev1_thinkheads_ai_app_api"]) == [
        "docker", "service", "ps", "--filter", "desired-state=running", "--format", "{{.Node}}",
        "--", "dev1_thinkheads_ai_app_api"]
    assert commands.service_nodes(["a", "b"])[-3:] == ["--", "a", "b"]


@pytest.mark.parametrize("name", ["--force", "-rf", "--help", "-"])
def test_a_data_positional_that_looks_like_an_option_follows_the_double_dash(name):
    # Namespaces, services, object names and IDs come from config or from the swarm:
    # after `--` the docker CLI reads them as what they are, never as options.
    for argv, positionals in [
        (commands.stack_deploy(name, "28.2.2"), [name]),
        (commands.stack_deploy(name, "20.10.24"), [name]),
        (commands.stack_rm(name), [name]),
        (commands.object_create("config", name, {"a": "1"}), [name, "-"]),
        (commands.network_rm([name, "abc"]), [name, "abc"]),
        (commands.volume_rm([name]), [name]),
        (commands.service_logs(name), [name]),
        (commands.service_nodes([name, "b"]), [name, "b"]),
    ]:
        tail = ["--", *positionals]
        assert argv[-len(tail):] == tail
        assert argv.count("--") == 1
        assert shlex.split(shell_command(argv))[-len(tail):] == tail
