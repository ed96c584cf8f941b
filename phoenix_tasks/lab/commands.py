"""Every command the lab runs, as pure functions that return an argv list.

Nothing here runs anything or builds shell text: values travel as separate argv
entries (the one `sh -c` script is a constant that reads its values from "$0"/"$@").
"""

from __future__ import annotations

import ipaddress
import math
from pathlib import Path

from phoenix_tasks.lab.naming import INSIDE_IFACE, LabNames, VMNames

Argv = list[str]

# Makes the new UTS and mount namespaces look like a real VM, then becomes the daemon
# given after its arguments.  Runs as `sh -c SCRIPT HOSTNAME RESOLV STAGE RUN_DIR
# DATA_ROOT DAEMON...`; values arrive only as those positional arguments:
#   $0 the VM's hostname (the UTS namespace's)
#   $1 the lab's resolv.conf, bound over /etc/resolv.conf (no name server: lookups
#      never leave the lab)
#   $2 an empty directory of the VM's where the new /run is assembled
#   $3 the VM's run dir (engine socket, exec root); must lie below /run
#   $4 the VM's data root, bound at /var/lib/docker
# The VM's /run is a fresh tmpfs holding sshd's privilege-separation dir, docker.sock
# (a link to the VM's own engine socket, as /var/run/docker.sock on a real VM) and the
# VM's run dir bound back at its own path (the host and sshd's DOCKER_HOST use that
# path).  It is built at $2 and then moved onto /run, which hides the host's /run:
# dockerd's containerd-shim sockets (/run/containerd/s) and plugin dir now stay in the
# VM.  Every mount is private (`unshare --propagation private`) and made with -n (no
# /run/mount/utab entry), so none of it shows on the host, and it ends with the VM's
# last process.
VM_SETUP_THEN_EXEC = "\n".join((
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
# Runs as `sh -c SCRIPT PIDFILE PROGRAM ARGS...`: writes its own pid to PIDFILE, then
# becomes PROGRAM (exec keeps the pid), for a daemon that writes no pid file itself.
WRITE_PID_THEN_EXEC = 'echo "$$" > "$0"\nexec "$@"'
LAB_RESOLV_CONF = "# phoenix lab: no name server; every lookup fails at once, inside the lab\nnameserver 127.0.0.1\n"


# --- the bridge -------------------------------------------------------------------
def bridge_add(bridge: str) -> Argv:
    return ["ip", "link", "add", "name", bridge, "type", "bridge"]


def bridge_address(bridge: str, gateway: ipaddress.IPv4Interface) -> Argv:
    return ["ip", "addr", "replace", str(gateway), "dev", bridge]


def link_up(name: str) -> Argv:
    return ["ip", "link", "set", "dev", name, "up"]


def link_delete(name: str) -> Argv:
    return ["ip", "link", "delete", "dev", name]


# --- one VM's network ---------------------------------------------------------------
def netns_add(names: VMNames) -> Argv:
    return ["ip", "netns", "add", names.netns]


def netns_delete(names: VMNames) -> Argv:
    return ["ip", "netns", "delete", names.netns]


def veth_add(names: VMNames) -> Argv:
    """The veth pair, its inside end created directly in the VM's namespace as eth0."""
    return ["ip", "link", "add", "name", names.veth, "type", "veth",
            "peer", "name", INSIDE_IFACE, "netns", names.netns]


def veth_attach(names: VMNames, bridge: str) -> Argv:
    return ["ip", "link", "set", "dev", names.veth, "master", bridge, "up"]


def inside_address(names: VMNames, ip: ipaddress.IPv4Interface) -> Argv:
    return ["ip", "-n", names.netns, "addr", "replace", str(ip), "dev", INSIDE_IFACE]


def inside_up(names: VMNames, iface: str) -> Argv:
    return ["ip", "-n", names.netns, "link", "set", "dev", iface, "up"]


def inside_default_route(names: VMNames, gw: ipaddress.IPv4Address) -> Argv:
    return ["ip", "-n", names.netns, "route", "replace", "default", "via", str(gw),
            "dev", INSIDE_IFACE]


# --- daemons ------------------------------------------------------------------------
def in_vm(names: VMNames, hostname: str, argv: Argv) -> Argv:
    """Run argv detached (new session, re-parented to init) as the VM: see as_vm."""
    return ["setsid", "--fork", *as_vm(names, hostname, argv)]


def as_vm(names: VMNames, hostname: str, argv: Argv) -> Argv:
    """Run argv in the VM's network namespace, a new UTS namespace whose hostname is
    the VM's name, and a private mount namespace set up by VM_SETUP_THEN_EXEC: its
    own /run (with /run/docker.sock, its engine), its data root at /var/lib/docker,
    the lab's /etc/hosts (the private registry's name) and /etc/docker (certs.d: the
    lab CA), and an /etc/resolv.conf that names no server: the host's resolver is outside the
    lab, and dockerd (and a docker CLI in an SSH session) would otherwise send registry
    lookups there and wait seconds for each (shared/LAB.md).

    nsenter, not `ip netns exec`: the latter remounts /sys and dockerd then dies
    with "Devices cgroup isn't mounted".
    """
    return ["nsenter", f"--net={names.netns_file}",
            "unshare", "--uts", "--mount", "--propagation", "private", "sh", "-c", VM_SETUP_THEN_EXEC,
            hostname, str(names.lab.resolv_conf), str(names.run_stage), str(names.run_dir),
            str(names.data_root), str(names.lab.hosts_file), str(names.lab.etc_docker),
            str(names.lab.private_registry_dir / "ca-bundle.crt"), *argv]


def dockerd(names: VMNames) -> Argv:
    return [
        "dockerd",
        "--config-file", str(names.daemon_json),
        "--data-root", str(names.data_root),
        "--exec-root", str(names.exec_root),
        "--host", names.docker_host,
        "--pidfile", str(names.dockerd_pidfile),
        "--cgroup-parent", names.cgroup_parent,
        "--shutdown-timeout", "5",
    ]


def daemon_config(names: VMNames, dockerd_major: int, registry: str) -> dict:
    """The engine's own daemon.json: the host's /etc/docker/daemon.json is not read.

    registry: the lab registry's "host:port" (the lab bridge's address).  It is the
    engine's Docker Hub mirror, over plain HTTP: `docker pull portainer/agent:2.21.4`
    asks it first and gets the stand-in, with a RepoDigest, as a real VM gets the
    real image from Docker Hub.

    dockerd before 23 keeps its engine ID in a trust key, by default the shared
    /etc/docker/key.json: every engine would get the same ID and the file would stay
    behind after `lab.down`.  Each lab engine gets its own in its state dir."""
    config: dict = {"registry-mirrors": [f"http://{registry}"],
                    "insecure-registries": [registry]}
    if dockerd_major < 23:
        config["deprecated-key-path"] = str(names.trust_key)
    return config


def private_registry_serve(names: LabNames, config: Path) -> Argv:
    """The lab's private registry (private_registry.py), detached, as registry_serve."""
    return ["setsid", "--fork", "sh", "-c", WRITE_PID_THEN_EXEC, str(names.private_registry_dir / "registry.pid"),
            "docker-registry", "serve", str(config)]


def registry_serve(names: LabNames) -> Argv:
    """The lab registry, detached, its pid in its pid file; its command line names its
    config file, which is what makes a pid count as this lab's registry."""
    return ["setsid", "--fork", "sh", "-c", WRITE_PID_THEN_EXEC, str(names.registry_pidfile),
            "docker-registry", "serve", str(names.registry_config)]


def dockerd_version() -> Argv:
    return ["dockerd", "--version"]


def sshd(names: VMNames, sshd_binary: str = "/usr/sbin/sshd") -> Argv:
    # sshd daemonizes itself and then writes its PidFile; -E: log to a file.
    return [sshd_binary, "-f", str(names.sshd_config), "-E", str(names.sshd_log)]


def sshd_test_config(names: VMNames, sshd_binary: str = "/usr/sbin/sshd") -> Argv:
    return [sshd_binary, "-t", "-f", str(names.sshd_config)]


# --- keys -----------------------------------------------------------------------------
def keygen(path: Path, comment: str) -> Argv:
    return ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", comment, "-f", str(path)]


def self_signed_cert(cert: Path, key: Path) -> Argv:
    """The stand-in images' TLS pair: EC P-256, no passphrase, 10 years."""
    return ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
            "-nodes", "-days", "3650", "-subj", "/CN=phoenix-lab-stand-in",
            "-keyout", str(key), "-out", str(cert)]


def ldd(program: Path) -> Argv:
    return ["ldd", str(program)]


# --- mounts ---------------------------------------------------------------------------
def umount(path: str, lazy: bool = False) -> Argv:
    return ["umount", *(["--lazy"] if lazy else []), path]


# --- images on a VM's engine ---------------------------------------------------------
def rootfs_import(names: VMNames, image: str, changes: list[str]) -> Argv:
    """`docker import` of the stand-in rootfs tar (read from stdin) as `image`."""
    argv = ["docker", "--host", names.docker_host, "import"]
    for change in changes:
        argv += ["--change", change]
    return [*argv, "-", image]


def image_push(names: VMNames, image: str) -> Argv:
    return ["docker", "--host", names.docker_host, "push", image]


def image_pull(names: VMNames, image: str) -> Argv:
    return ["docker", "--host", names.docker_host, "pull", image]


def image_untag(names: VMNames, image: str) -> Argv:
    """Remove the tag `image` (and the image, if no other tag names it)."""
    return ["docker", "--host", names.docker_host, "image", "rm", image]


# --- the user's shell on a VM ---------------------------------------------------------
def ssh_client(access, address: str, remote_command: str | None = None) -> Argv:
    """OpenSSH client argv to a lab VM with the lab's key and known_hosts, strict
    host key checking; remote_command is passed as one argument (ssh sends it as is).

    `--` before the destination: OpenSSH parses options again after the destination
    unless options were ended, so a command such as `-oProxyCommand=...` would be an
    option run on this machine, not a command on the VM.  ConnectTimeout takes whole
    seconds: a fraction is rounded up (0.5 must not become 0)."""
    return ["ssh", "-i", str(access.private_key_file),
            "-o", f"UserKnownHostsFile={access.known_hosts_file}",
            "-o", "StrictHostKeyChecking=yes", "-o", "BatchMode=yes",
            "-o", f"ConnectTimeout={max(1, math.ceil(access.connect_timeout_s))}",
            "-p", str(access.port), "-l", access.user, "--", address,
            *([remote_command] if remote_command else [])]
