"""Names and paths the lab derives from its settings and a vmid (pure functions).

Two labs on one machine (the user's and the test suite's) differ by bridge, so every
kernel-visible name carries a short prefix derived from the bridge name: namespaces,
host-side veth ends, run directories and cgroup parents never collide.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

IFNAMSIZ = 15  # longest Linux interface name
NETNS_DIR = Path("/var/run/netns")
RUN_ROOT = Path("/run/phoenix-lab")  # short paths: unix sockets are limited to 107 bytes
INSIDE_IFACE = "eth0"  # the VM's own end of its veth pair, inside its namespace
# Where a VM's daemons see its data root, as on a real VM (bound in their mount
# namespace); the lab makes the (empty) directory on the host if it is missing.
VM_DOCKER_ROOT = Path("/var/lib/docker")
# The lab registry's port, on the lab bridge's own address (the lab gateway) only.
REGISTRY_PORT = 5000


def lab_prefix(bridge: str) -> str:
    """Four hex digits derived from the bridge name: the per-lab part of every name."""
    return hashlib.sha1(bridge.encode()).hexdigest()[:4]


@dataclass(frozen=True)
class LabNames:
    """Every name and path of one lab; built from the bridge and the state dir."""

    bridge: str
    state_dir: Path

    @property
    def prefix(self) -> str:
        return lab_prefix(self.bridge)

    @property
    def record_file(self) -> Path:
        return self.state_dir / "lab.json"

    @property
    def ssh_dir(self) -> Path:
        return self.state_dir / "ssh"

    @property
    def private_key(self) -> Path:
        return self.ssh_dir / "id_ed25519"

    @property
    def public_key(self) -> Path:
        return self.ssh_dir / "id_ed25519.pub"

    @property
    def authorized_keys(self) -> Path:
        return self.ssh_dir / "authorized_keys"

    @property
    def known_hosts(self) -> Path:
        return self.ssh_dir / "known_hosts"

    @property
    def image_dir(self) -> Path:
        return self.state_dir / "images"

    @property
    def rootfs_tar(self) -> Path:
        return self.image_dir / "standin-rootfs.tar"

    @property
    def standin_cert(self) -> Path:
        """Self-signed certificate the stand-ins serve TLS with (made once per lab)."""
        return self.image_dir / "standin-cert.pem"

    @property
    def standin_key(self) -> Path:
        return self.image_dir / "standin-key.pem"

    @property
    def resolv_conf(self) -> Path:
        """The resolv.conf every lab daemon sees (bound over /etc/resolv.conf in its
        own mount namespace): loopback only, so no lookup leaves the lab."""
        return self.state_dir / "resolv.conf"

    @property
    def hosts_file(self) -> Path:
        """The /etc/hosts every lab daemon sees (bound over it in its own mount
        namespace): localhost, and the lab's private registry's name at the gateway."""
        return self.state_dir / "hosts"

    @property
    def etc_docker(self) -> Path:
        """Bound over /etc/docker in every lab daemon's mount namespace: the engines'
        certs.d, which trusts the lab CA for the private registry's name."""
        return self.state_dir / "etc-docker"

    @property
    def private_registry_dir(self) -> Path:
        """The lab CA, the private registry's TLS pair, htpasswd, config, storage, pid, log."""
        return self.state_dir / "private-registry"

    @property
    def registry_dir(self) -> Path:
        """The lab registry's config, storage, pid file and log (lab.down removes it)."""
        return self.state_dir / "registry"

    @property
    def registry_config(self) -> Path:
        """Also the marker that makes a pid the lab registry's: its command line names it."""
        return self.registry_dir / "config.yml"

    @property
    def registry_storage(self) -> Path:
        return self.registry_dir / "storage"

    @property
    def registry_pidfile(self) -> Path:
        return self.registry_dir / "registry.pid"

    @property
    def registry_log(self) -> Path:
        return self.registry_dir / "registry.log"

    @property
    def vms_dir(self) -> Path:
        return self.state_dir / "vms"

    @property
    def run_dir(self) -> Path:
        return RUN_ROOT / self.prefix

    @property
    def netns_prefix(self) -> str:
        return f"phx{self.prefix}-"

    def vm(self, vmid: int) -> "VMNames":
        return VMNames(lab=self, vmid=vmid)


@dataclass(frozen=True)
class VMNames:
    lab: LabNames
    vmid: int

    @property
    def netns(self) -> str:
        return f"{self.lab.netns_prefix}{self.vmid}"

    @property
    def netns_file(self) -> Path:
        return NETNS_DIR / self.netns

    @property
    def veth(self) -> str:
        """Host-side veth end: 'vh' + prefix + vmid, at most 15 characters."""
        name = f"vh{self.lab.prefix}{self.vmid}"
        if len(name) > IFNAMSIZ:
            raise ValueError(f"interface name {name!r} is longer than {IFNAMSIZ} characters")
        return name

    @property
    def cgroup_parent(self) -> str:
        return f"phoenix-lab-{self.lab.prefix}-{self.vmid}"

    @property
    def state_dir(self) -> Path:
        return self.lab.vms_dir / str(self.vmid)

    @property
    def docker_client_dir(self) -> Path:
        """DOCKER_CONFIG of the VM's SSH sessions: `docker login` there writes the VM's
        own client config, as on a real VM (not the host's ~/.docker)."""
        return self.state_dir / "docker-client"

    @property
    def record_file(self) -> Path:
        return self.state_dir / "vm.json"

    @property
    def data_root(self) -> Path:
        return self.state_dir / "docker"

    @property
    def run_stage(self) -> Path:
        """Empty directory where the VM's own /run is assembled, inside the VM's mount
        namespace only, before it is moved onto /run (commands.VM_SETUP_THEN_EXEC)."""
        return self.state_dir / "run-stage"

    @property
    def daemon_json(self) -> Path:
        return self.state_dir / "daemon.json"

    @property
    def trust_key(self) -> Path:
        return self.state_dir / "key.json"

    @property
    def dockerd_pidfile(self) -> Path:
        return self.state_dir / "dockerd.pid"

    @property
    def dockerd_log(self) -> Path:
        return self.state_dir / "dockerd.log"

    @property
    def sshd_config(self) -> Path:
        return self.state_dir / "sshd_config"

    @property
    def sshd_pidfile(self) -> Path:
        return self.state_dir / "sshd.pid"

    @property
    def sshd_log(self) -> Path:
        return self.state_dir / "sshd.log"

    @property
    def host_key(self) -> Path:
        return self.state_dir / "ssh_host_ed25519_key"

    @property
    def run_dir(self) -> Path:
        return self.lab.run_dir / str(self.vmid)

    @property
    def exec_root(self) -> Path:
        return self.run_dir / "exec"

    @property
    def socket(self) -> Path:
        return self.run_dir / "docker.sock"

    @property
    def docker_host(self) -> str:
        return f"unix://{self.socket}"
