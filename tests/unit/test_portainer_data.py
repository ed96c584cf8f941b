"""Portainer's data follows its server (issue 21, item 10): the plan (pure, from the
deployed service as read) says when a role change moves the server to another node,
and which volumes are carried; the commands are exact argv.  The copy itself is
lab-tested (tests/lab/test_hardening_round2_lab.py)."""

from __future__ import annotations

import io
import tarfile

import pytest

from phoenix_tasks.portainer import service as portainer, data as portainer_data
from phoenix_tasks.stack.facts import StackRead, parse_service

from swarm_recorded import lab_config

NS = "prod_portainer_service"
SERVER = f"{NS}_portainer"
VOLUME = f"{NS}_portainer_data"
IMAGE = "portainer/portainer-ce:2.21.4@sha256:" + "a" * 64


def deployed(pinned_to: str | None, mounts=None) -> StackRead:
    constraints = ["node.role == manager"] + ([f"node.hostname == {pinned_to}"] if pinned_to else [])
    service = {"ID": "svc1", "Spec": {"Name": SERVER, "Labels": {}, "TaskTemplate": {
        "ContainerSpec": {"Image": IMAGE, "Mounts": mounts if mounts is not None else [
            {"Type": "volume", "Source": VOLUME, "Target": "/data"},
            {"Type": "bind", "Source": "/var/run/docker.sock", "Target": "/var/run/docker.sock"}]},
        "Placement": {"Constraints": constraints}}, "Mode": {"Replicated": {"Replicas": 1}}}}
    return StackRead({SERVER: parse_service(service)})


def swapped(tmp_path):
    def swap(doc):
        doc["vms"][1]["swarm_role"] = "worker"  # portainer
        doc["vms"][3]["swarm_role"] = "manager"  # cpuworker
    return lab_config(tmp_path, swap)


def test_no_move_while_the_server_is_pinned_to_the_first_manager(tmp_path):
    config = lab_config(tmp_path)
    assert portainer.server_service(config) == SERVER and portainer.namespace(config) == NS
    assert portainer_data.plan_move(config, deployed("portainer"), SERVER, NS) is None
    assert portainer_data.plan_move(config, deployed(None), SERVER, NS) is None  # pinned to no node
    assert portainer_data.plan_move(config, StackRead({}), SERVER, NS) is None  # not deployed


def test_a_role_change_that_moves_the_server_carries_its_named_volumes(tmp_path):
    config = swapped(tmp_path)
    move = portainer_data.plan_move(config, deployed("portainer"), SERVER, NS)
    assert (move.old, move.new.name, move.volumes, move.image) == ("portainer", "cpuworker", (VOLUME,), IMAGE)
    assert move.old_vm is not None and move.old_vm.name == "portainer"
    assert move.summary() == (
        f"its server moves from portainer to cpuworker (the first configured manager): its data ({VOLUME}) is "
        "carried over: the server stopped, each volume copied from portainer to cpuworker through this machine "
        "and verified; nothing is deleted on portainer")


def test_data_on_a_node_no_vm_is_cannot_be_carried(tmp_path):
    config = lab_config(tmp_path)
    move = portainer_data.plan_move(config, deployed("oldbox"), SERVER, NS)
    assert move.old_vm is None and "no configured VM is oldbox" in move.summary()
    with pytest.raises(portainer_data.DataMoveFailed, match="cannot be carried over"):
        portainer_data.carry(None, move, None)  # refused before any command


def test_commands_are_exact_argv():
    assert portainer_data.scale_argv(SERVER, 0) == ["docker", "service", "scale", "--detach", f"{SERVER}=0"]
    assert portainer_data.holder_argv(VOLUME, IMAGE) == [
        "docker", "container", "create", "--label", "io.phoenix.volume-copy=1", "--network", "none",
        "-v", f"{VOLUME}:/v", "--", IMAGE]
    assert portainer_data.cp_out_argv("c1") == ["docker", "cp", "c1:/v/.", "-"]
    assert portainer_data.cp_in_argv("c2") == ["docker", "cp", "-", "c2:/v"]
    assert portainer_data.volume_create_argv(VOLUME, NS) == [
        "docker", "volume", "create", "--label", f"com.docker.stack.namespace={NS}", "--", VOLUME]
    assert portainer_data.volume_rm_argv(VOLUME) == ["docker", "volume", "rm", "--", VOLUME]
    assert portainer_data.running_tasks_argv(SERVER) == [
        "docker", "service", "ps", "-q", "--filter", "desired-state=running", "--", SERVER]


# -- the byte streams, over fake SSH channels ------------------------------------------

class FakeChannel:
    """A paramiko session channel: the command's stdout is `stdout`; what is sent is kept."""

    def __init__(self, command: str, stdout: bytes, exit_status: int = 0, stderr: bytes = b""):
        self.command, self._out, self._err = command, io.BytesIO(stdout), stderr
        self.exit_status, self.sent, self.closed, self.write_shut = exit_status, b"", False, False

    def settimeout(self, t):
        pass

    def exec_command(self, command):
        self.command = command

    def recv(self, n):
        return self._out.read(n)

    def sendall(self, data):
        self.sent += data

    def shutdown_write(self):
        self.write_shut = True

    def exit_status_ready(self):
        return True

    def recv_stderr_ready(self):
        return bool(self._err)

    def recv_stderr(self, n):
        data, self._err = self._err, b""
        return data

    def recv_exit_status(self):
        return self.exit_status

    def makefile(self, mode):
        return self._out

    def close(self):
        self.closed = True


class FakeConnection:
    """Per host: answers each exec'd command from `outputs` (command -> (stdout, exit, stderr))."""

    def __init__(self, outputs):
        self.outputs, self.channels = outputs, []
        self.is_connected = True
        self.client = self

    def get_transport(self):
        return self

    def open_session(self, timeout=None):
        conn = self

        class Opening(FakeChannel):
            def exec_command(self, command):
                out, code, err = conn.outputs[command]
                FakeChannel.__init__(self, command, out, code, err)
        ch = Opening("", b"")
        self.channels.append(ch)
        return ch

    def close(self):
        pass


def tar_of(files: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        tar.addfile(_dir("."))
        for name, data in files.items():
            info = tarfile.TarInfo(f"./{name}")
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def _dir(name):
    info = tarfile.TarInfo(name)
    info.type = tarfile.DIRTYPE
    return info


def test_pipe_streams_bytes_between_two_vms_and_manifest_reads_the_engines_tar(tmp_path):
    from phoenix_tasks.core.transport import RemoteCommandFailed, Transport, shell_command
    config = lab_config(tmp_path)
    old, new = (next(v for v in config.real_vms if v.name == n) for n in ("portainer", "cpuworker"))
    data = tar_of({"portainer.db": b"admin user and settings", "certs/cert.pem": b"pem"})
    conns = {
        "portainer": FakeConnection({shell_command(portainer_data.cp_out_argv("a1")): (data, 0, b"")}),
        "cpuworker": FakeConnection({shell_command(portainer_data.cp_in_argv("b1")): (b"", 0, b""),
                                     shell_command(portainer_data.cp_out_argv("b1")): (data, 0, b"")}),
    }
    t = Transport(config.hypervisor.vm_access, connect=lambda host, access: conns[host.name])
    n = portainer_data.pipe(t, old, portainer_data.cp_out_argv("a1"), new, portainer_data.cp_in_argv("b1"), 10)
    [into] = conns["cpuworker"].channels
    assert n == len(data) and into.sent == data and into.write_shut and into.closed
    assert [(r.vm, r.display, r.mutating) for r in t.log] == [
        ("portainer", "docker cp a1:/v/. -", False), ("cpuworker", "docker cp - b1:/v", True)]
    got = portainer_data.manifest(t, new, "b1", 10)
    assert got["portainer.db"][:2] == ("file", 23) and got["certs/cert.pem"][0] == "file"
    # the receiving side failing is the command's failure, with its stderr
    conns["cpuworker"].outputs[shell_command(portainer_data.cp_in_argv("b1"))] = (b"", 1, b"Error: no space left")
    with pytest.raises(RemoteCommandFailed, match="no space left"):
        portainer_data.pipe(t, old, portainer_data.cp_out_argv("a1"), new, portainer_data.cp_in_argv("b1"), 10)
