"""Exact argv of every docker command Phoenix runs, and the single quoting boundary."""

import json
import pickle
import shlex

import pytest

from phoenix_tasks.core import engine_api
from phoenix_tasks.core.secrets import MASK, Secret, scrub
from phoenix_tasks.swarm import commands
from phoenix_tasks.core.transport import display_command, shell_command

TOKEN = "SWMTKN-1-3pu6hszjas19xyp7ghgosyx9k8atbfcr8p2is99znpy26u2lkl-1awxwuwd3z9j1z3puu7rcgdbx"


def test_reads():
    assert commands.info() == ["docker", "info", "--format", "{{json .}}"]
    assert commands.join_token("worker") == ["docker", "swarm", "join-token", "-q", "worker"]
    assert commands.join_token("manager") == ["docker", "swarm", "join-token", "-q", "manager"]
    assert commands.services() == ["sh", "-c", commands.SERVICES_SCRIPT]
    assert commands.SERVICES_SCRIPT == (
        "docker stack ls --format '{{json .}}' && echo '--- services ---' && "
        "docker service ls --format '{{json .}}' && echo '--- labels ---' && "
        "ids=$(docker service ls -q) && if [ -n \"$ids\" ]; then docker service inspect --format "
        "'{\"name\":{{json .Spec.Name}},\"labels\":{{json .Spec.Labels}}}' $ids; fi")
    assert commands.inspect_nodes() == ["sh", "-c", commands.NODES_SCRIPT]


def test_join_token_role_is_checked():
    with pytest.raises(ValueError):
        commands.join_token("admin; reboot")


def test_changes():
    assert commands.swarm_init("198.18.42.11") == ["docker", "swarm", "init", "--advertise-addr", "198.18.42.11"]
    assert commands.swarm_leave() == ["docker", "swarm", "leave"]
    assert commands.swarm_leave(force=True) == ["docker", "swarm", "leave", "--force"]
    assert commands.node_promote("abc") == ["docker", "node", "promote", "--", "abc"]
    assert commands.node_demote("abc") == ["docker", "node", "demote", "--", "abc"]


def test_join_is_an_engine_api_request_with_the_token_in_its_body():
    """`docker swarm join --token T` would put T on the VM's process list: the join is
    `POST /swarm/join` on dial-stdio's stdin, the token in the JSON body (issue 21)."""
    token = Secret(TOKEN)
    req = commands.swarm_join(token, "198.18.42.11:2377", "198.18.42.12")
    assert (req.method, req.path) == ("POST", "/swarm/join")
    assert req.body == {"ListenAddr": "0.0.0.0:2377", "AdvertiseAddr": "198.18.42.12",
                        "RemoteAddrs": ["198.18.42.11:2377"], "JoinToken": token}
    assert req.secrets() == [token]
    head, _, body = req.encode().reveal().partition("\r\n\r\n")
    assert head.splitlines()[0] == "POST /swarm/join HTTP/1.1"
    assert f"Content-Length: {len(body.encode())}" in head and "Connection: close" in head
    assert json.loads(body) == {"ListenAddr": "0.0.0.0:2377", "AdvertiseAddr": "198.18.42.12",
                                "RemoteAddrs": ["198.18.42.11:2377"], "JoinToken": TOKEN}
    # Everything people and logs see: no token.
    for shown in (str(req), repr(req), req.display, str(req.encode())):
        assert TOKEN not in shown
    assert req.display == "docker swarm join --advertise-addr 198.18.42.12 -- 198.18.42.11:2377; the token in the request body"
    # The command line that runs on the VM is fixed: no data in it.
    assert shell_command(list(engine_api.DIAL_STDIO)) == "docker system dial-stdio"


def test_join_refuses_a_plain_string_token():
    with pytest.raises(TypeError):
        commands.swarm_join(TOKEN, "198.18.42.11:2377", "198.18.42.12")


def test_label_update_is_one_sorted_command():
    argv = commands.node_update_labels("nodeid", {"zone": "compute", "gpu": "true"}, ["old", "alpha"])
    assert argv == ["docker", "node", "update", "--label-add", "gpu=true", "--label-add", "zone=compute",
                    "--label-rm", "alpha", "--label-rm", "old", "--", "nodeid"]


def test_shell_metacharacters_are_quoted_once():
    evil = "dev1; rm -rf /"
    argv = commands.node_update_labels(evil, {"k": "$(reboot)"}, [])
    line = shell_command(argv)
    assert line == "docker node update --label-add 'k=$(reboot)' -- 'dev1; rm -rf /'"
    assert shlex.split(line) == argv  # the VM's shell gets back exactly the argv


@pytest.mark.parametrize("node_id", ["--force", "-rf", "--help", "-"])
def test_a_node_id_that_looks_like_an_option_stays_a_positional(node_id):
    # Node IDs come from the swarm: whatever one holds, the docker CLI reads it after
    # `--`, as the node, never as an option.
    for argv in (commands.node_promote(node_id), commands.node_demote(node_id),
                 commands.node_update_labels(node_id, {"zone": "a"}, ["old"])):
        assert argv[-2:] == ["--", node_id]
        assert shlex.split(shell_command(argv))[-2:] == ["--", node_id]
    join = commands.swarm_join(Secret(TOKEN), node_id, "198.18.42.12")
    assert join.body["RemoteAddrs"] == [node_id]  # a JSON string, never an option


def test_secret_never_prints():
    s = Secret(TOKEN)
    assert str(s) == repr(s) == f"{s}" == f"{s!r}" == MASK
    assert TOKEN not in str([s, {"t": s}])
    assert s.reveal() == TOKEN
    with pytest.raises(TypeError):
        pickle.dumps(s)
    assert scrub(f"error: bad token {TOKEN}", [s]) == "error: bad token ***"
