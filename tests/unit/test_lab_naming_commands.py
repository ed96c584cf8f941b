"""Names and argv builders of the lab (pure)."""

from __future__ import annotations

import ipaddress
from pathlib import Path

import pytest

from phoenix_tasks.lab import commands
from phoenix_tasks.lab.naming import IFNAMSIZ, LabNames, lab_prefix

USER = LabNames("phxlab0", Path("/var/lib/phoenix-lab"))
TEST = LabNames("phxtest0", Path("/tmp/t/state"))


def test_two_labs_never_share_a_kernel_name():
    a, b = USER.vm(1001), TEST.vm(1001)
    assert a.netns != b.netns and a.veth != b.veth
    assert a.run_dir != b.run_dir and a.cgroup_parent != b.cgroup_parent
    assert lab_prefix("phxlab0") == USER.prefix and len(USER.prefix) == 4


def test_names_fit_the_kernel_limit_up_to_the_largest_vmid():
    names = USER.vm(999_999_999)
    assert len(names.veth) == IFNAMSIZ
    assert names.netns == f"phx{USER.prefix}-999999999"


def test_unix_socket_path_stays_short_whatever_the_state_dir():
    deep = LabNames("phxtest0", Path("/tmp/" + "x" * 200)).vm(999_999_999)
    assert len(str(deep.socket)) < 100
    assert deep.dockerd_pidfile.is_relative_to(deep.lab.state_dir)


def test_dockerd_runs_in_the_vm_namespace_through_nsenter_with_its_own_paths():
    names = USER.vm(1001)
    argv = commands.in_vm(names, "portainer", commands.dockerd(names))
    assert argv[:4] == ["setsid", "--fork", "nsenter", "--net=/var/run/netns/" + names.netns]
    assert "ip" not in argv[:6]  # not `ip netns exec`: it remounts /sys
    assert argv[4:10] == ["unshare", "--uts", "--mount", "--propagation", "private", "sh"]
    assert argv[10:12] == ["-c", commands.VM_SETUP_THEN_EXEC] and argv[12] == "portainer"
    assert argv[13] == str(names.lab.resolv_conf)  # bound over /etc/resolv.conf: no lookup leaves the lab
    # the VM's /run is built in its stage, its run dir bound back, its data root at /var/lib/docker
    assert argv[14:17] == [str(names.run_stage), str(names.run_dir), str(names.data_root)]
    # the lab's /etc/hosts (the private registry's name) and /etc/docker (the lab CA)
    # and the CA bundle with the lab CA (Docker Hub's name is checked against it)
    assert argv[17:20] == [str(names.lab.hosts_file), str(names.lab.etc_docker),
                           str(names.lab.private_registry_dir / "ca-bundle.crt")]
    assert argv[2:] == commands.as_vm(names, "portainer", commands.dockerd(names))
    rest = argv[20:]
    assert rest[0] == "dockerd"
    for flag, value in (("--data-root", names.data_root), ("--exec-root", names.exec_root),
                        ("--host", f"unix://{names.socket}"),
                        ("--pidfile", names.dockerd_pidfile),
                        ("--config-file", names.daemon_json)):
        assert rest[rest.index(flag) + 1] == str(value)


def test_a_hostile_vm_name_stays_one_argument():
    names = USER.vm(1001)
    argv = commands.in_vm(names, "dev1; rm -rf /", ["sleep", "1"])
    assert argv[12] == "dev1; rm -rf /"
    assert argv[20:] == ["sleep", "1"]
    # the script never contains values: a constant that reads them from $0..$7
    assert argv[11] == "\n".join((
        "set -e",
        'hostname "$0"',
        'mount -n --bind "$1" /etc/resolv.conf',
        'mount -n --bind "$5" /etc/hosts',
        '[ ! -d /etc/docker ] || mount -n --bind "$6" /etc/docker',
        '[ ! -f /etc/ssl/certs/ca-certificates.crt ] || mount -n --bind "$7" /etc/ssl/certs/ca-certificates.crt',
        'mount -n -t tmpfs -o mode=755,nosuid,nodev tmpfs "$2"',
        'mkdir -p "$2/sshd" "$2${3#/run}"',
        'mount -n --bind "$3" "$2${3#/run}"',
        'ln -s "$3/docker.sock" "$2/docker.sock"',
        'mount -n --move "$2" /run',
        'mount -n --bind "$4" /var/lib/docker',
        "shift 7",
        'exec "$@"',
    ))


def test_the_vm_run_dir_lies_below_run_so_it_is_bound_back_at_its_own_path():
    # VM_SETUP_THEN_EXEC binds $3 at "$2${3#/run}", which becomes $3 again once $2 is /run.
    for names in (USER.vm(1001), TEST.vm(999_999_999)):
        assert names.run_dir.is_relative_to("/run") and names.socket.parent == names.run_dir


def test_veth_inside_end_is_created_directly_in_the_namespace():
    names = USER.vm(1002)
    assert commands.veth_add(names) == ["ip", "link", "add", "name", names.veth, "type", "veth",
                                        "peer", "name", "eth0", "netns", names.netns]
    assert commands.inside_default_route(names, ipaddress.IPv4Address("198.18.42.1")) == [
        "ip", "-n", names.netns, "route", "replace", "default", "via", "198.18.42.1",
        "dev", "eth0"]


@pytest.mark.parametrize("major, expected", [(20, True), (23, False), (26, False)])
def test_old_engines_get_their_own_trust_key(major, expected):
    names = USER.vm(1001)
    config = commands.daemon_config(names, major, "198.18.42.1:5000")
    assert ("deprecated-key-path" in config) is expected
    if expected:
        assert config["deprecated-key-path"] == str(names.trust_key)


def test_every_engine_has_the_lab_registry_as_its_docker_hub_mirror_over_http():
    names = USER.vm(1001)
    assert commands.daemon_config(names, 20, "198.18.42.1:5000") == {
        "registry-mirrors": ["http://198.18.42.1:5000"],
        "insecure-registries": ["198.18.42.1:5000"],
        "deprecated-key-path": str(names.trust_key),
    }
    assert commands.daemon_config(names, 26, "198.18.77.1:5000") == {
        "registry-mirrors": ["http://198.18.77.1:5000"],
        "insecure-registries": ["198.18.77.1:5000"],
    }


def test_the_registry_runs_detached_writes_its_pid_and_names_its_config():
    argv = commands.registry_serve(USER)
    assert argv == ["setsid", "--fork", "sh", "-c", commands.WRITE_PID_THEN_EXEC,
                    "/var/lib/phoenix-lab/registry/registry.pid",
                    "docker-registry", "serve", "/var/lib/phoenix-lab/registry/config.yml"]
    # The script takes its values only as arguments: $0 the pid file, "$@" the program.
    assert commands.WRITE_PID_THEN_EXEC == 'echo "$$" > "$0"\nexec "$@"'


def test_the_pid_script_writes_the_pid_of_the_program_it_becomes(tmp_path):
    import subprocess
    pidfile = tmp_path / "it.pid"
    out = subprocess.run(["sh", "-c", commands.WRITE_PID_THEN_EXEC, str(pidfile),
                          "sh", "-c", 'echo "$$"'], capture_output=True, text=True, check=True)
    assert pidfile.read_text() == out.stdout


def test_a_hostile_state_dir_stays_one_argument_of_the_registry():
    names = LabNames("phxlab0", Path("/tmp/x; rm -rf / $(id)"))
    argv = commands.registry_serve(names)
    assert argv[5] == "/tmp/x; rm -rf / $(id)/registry/registry.pid"
    assert argv[-1] == "/tmp/x; rm -rf / $(id)/registry/config.yml"


def test_image_push_pull_and_untag_talk_to_the_vms_engine():
    names = USER.vm(1001)
    host = ["docker", "--host", names.docker_host]
    assert commands.image_push(names, "198.18.42.1:5000/portainer/agent:2.21.4") == \
        [*host, "push", "198.18.42.1:5000/portainer/agent:2.21.4"]
    assert commands.image_pull(names, "portainer/agent:2.21.4") == \
        [*host, "pull", "portainer/agent:2.21.4"]
    assert commands.image_untag(names, "198.18.42.1:5000/portainer/agent:2.21.4") == \
        [*host, "image", "rm", "198.18.42.1:5000/portainer/agent:2.21.4"]


def test_ssh_client_argv_is_strict_and_keeps_the_command_one_argument():
    from phoenix_tasks.core.model import VMAccess
    access = VMAccess("root", 22, Path("/s/ssh/id_ed25519"), "strict",
                      Path("/s/ssh/known_hosts"), 5.0)
    argv = commands.ssh_client(access, "198.18.42.11", "docker info; hostname")
    assert "StrictHostKeyChecking=yes" in argv and "UserKnownHostsFile=/s/ssh/known_hosts" in argv
    assert argv[-2:] == ["198.18.42.11", "docker info; hostname"]
    assert commands.ssh_client(access, "198.18.42.11")[-1] == "198.18.42.11"


def test_ssh_client_a_command_that_looks_like_an_option_stays_the_remote_command():
    # Without `--` OpenSSH parses options again after the destination: this command
    # would run on this machine as a ProxyCommand instead of on the VM.
    from phoenix_tasks.core.model import VMAccess
    access = VMAccess("root", 2222, Path("/s/ssh/id_ed25519"), "strict", Path("/s/ssh/known_hosts"), 0.5)
    hostile = "-oProxyCommand=touch /tmp/pwned"
    assert commands.ssh_client(access, "198.18.42.11", hostile) == [
        "ssh", "-i", "/s/ssh/id_ed25519", "-o", "UserKnownHostsFile=/s/ssh/known_hosts",
        "-o", "StrictHostKeyChecking=yes", "-o", "BatchMode=yes", "-o", "ConnectTimeout=1",
        "-p", "2222", "-l", "root", "--", "198.18.42.11", hostile]
    assert commands.ssh_client(access, "198.18.42.11")[-2:] == ["--", "198.18.42.11"]


@pytest.mark.parametrize("seconds, expected", [(0.5, "1"), (5.0, "5"), (2.5, "3"), (10, "10")])
def test_ssh_client_connect_timeout_is_whole_seconds_rounded_up(seconds, expected):
    from phoenix_tasks.core.model import VMAccess
    access = VMAccess("root", 22, Path("/k"), "strict", Path("/kh"), seconds)
    argv = commands.ssh_client(access, "198.18.42.11")
    assert argv[argv.index("BatchMode=yes") + 2] == f"ConnectTimeout={expected}"


def test_rootfs_import_reads_the_tar_from_stdin():
    names = USER.vm(1001)
    argv = commands.rootfs_import(names, "qdrant/qdrant:v1.12.4", ["CMD []"])
    assert argv == ["docker", "--host", names.docker_host, "import", "--change", "CMD []",
                    "-", "qdrant/qdrant:v1.12.4"]
