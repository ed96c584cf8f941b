"""Refusals before the lab makes anything: each returns problems or raises LabRefused.

The functions take facts (euid, a `which`, route and address lists) as arguments so
tests feed them recorded data; ``control`` passes the real ones.
"""

from __future__ import annotations

import ipaddress
import os
import pwd
import shutil
import struct
from pathlib import Path
from typing import Callable, Iterable

from phoenix_tasks.core.errors import PhoenixError
from phoenix_tasks.lab.naming import IFNAMSIZ, LabNames
from phoenix_tasks.core.model import Config

BUSYBOX = Path("/bin/busybox")
OPENSSL = Path("/usr/bin/openssl")  # copied into the stand-in images (TLS ports)

# program -> Debian package that provides it
REQUIRED_PROGRAMS: dict[str, str] = {
    "dockerd": "docker.io",
    "containerd": "docker.io",
    "runc": "docker.io",
    "docker": "docker.io",
    "sshd": "openssh-server",
    "ssh-keygen": "openssh-server",
    "ip": "iproute2",
    "nsenter": "util-linux",
    "unshare": "util-linux",
    "setsid": "util-linux",
    "hostname": "hostname",
    "openssl": "openssl",
    "ldd": "libc-bin",
    "docker-registry": "docker-registry",  # the lab registry (distribution 2.8)
}


# Directories a lab's state_dir must never be: the lab chmods it, and lab.down removes
# what it made below it.  Any top-level directory (/x) is refused as well.
SYSTEM_DIRS = frozenset(map(Path, (
    "/", "/bin", "/boot", "/dev", "/etc", "/home", "/lib", "/lib64", "/media", "/mnt", "/opt",
    "/proc", "/root", "/run", "/sbin", "/srv", "/sys", "/tmp", "/usr", "/usr/local", "/usr/lib",
    "/usr/share", "/var", "/var/lib", "/var/log", "/var/run", "/var/tmp", "/var/cache", "/var/lib/docker")))
# Interfaces other software owns: never the lab's bridge.
RESERVED_BRIDGES = ("lo", "docker0", "docker_gwbridge", "virbr0", "lxcbr0", "cni0", "flannel.1")
RECORD_FILE = "lab.json"  # the marker of a state dir the lab made


class LabRefused(PhoenixError):
    """The lab cannot run here or with this configuration; nothing was made."""


def require_root(euid: int) -> None:
    if euid != 0:
        raise LabRefused(
            "the lab needs root (it makes network namespaces, a bridge and Docker "
            "engines); run it as root, e.g. `sudo bin/phoenix lab up`")


def missing_packages(which: Callable[[str], str | None] = shutil.which,
                     busybox: Path = BUSYBOX, openssl: Path = OPENSSL) -> list[str]:
    """Debian packages to install for the programs missing from PATH (sorted).

    PATH is what the lab's commands are looked up in, so that is what is checked;
    busybox and openssl are also copied from their fixed paths into the images."""
    packages = {pkg for prog, pkg in REQUIRED_PROGRAMS.items() if not which(prog)}
    if not is_static_elf(busybox):
        packages.add("busybox-static")
    if not openssl.is_file():
        packages.add("openssl")
    return sorted(packages)


def is_static_elf(path: Path) -> bool:
    """True for a 64-bit ELF file without a program interpreter (statically linked)."""
    try:
        with open(path, "rb") as f:
            head = f.read(64)
            if head[:4] != b"\x7fELF" or head[4] != 2:
                return False
            phoff, = struct.unpack_from("<Q", head, 0x20)
            phentsize, phnum = struct.unpack_from("<HH", head, 0x36)
            f.seek(phoff)
            table = f.read(phentsize * phnum)
    except OSError:
        return False
    PT_INTERP = 3
    return all(struct.unpack_from("<I", table, i * phentsize)[0] != PT_INTERP
               for i in range(phnum))


def require_packages(missing: list[str]) -> None:
    if missing:
        raise LabRefused(
            "the lab needs Debian packages that are missing here; install them with: "
            f"apt-get install {' '.join(missing)}")


def config_problems(config: Config) -> list[str]:
    """What in a lab configuration the lab cannot run (empty if it can)."""
    hv = config.hypervisor
    if hv.provider != "lab" or hv.lab is None:
        return [f"{config.hypervisor_file}: provider is {hv.provider!r}, not 'lab'; "
                "the lab tasks need a lab configuration such as etc/lab "
                "(PHOENIX_CONFIG_DIR=etc/lab)"]
    lab = hv.lab
    problems = []
    if lab.gateway.ip not in lab.subnet:
        problems.append(f"lab gateway {lab.gateway.ip} is outside the lab subnet {lab.subnet}")
    if len(lab.bridge) > IFNAMSIZ:
        problems.append(f"bridge name {lab.bridge!r} is longer than {IFNAMSIZ} characters")
    if lab.bridge in RESERVED_BRIDGES or lab.bridge.startswith(("docker", "br-", "veth")):
        problems.append(f"bridge {lab.bridge!r} belongs to other software (Docker, libvirt, ...); "
                        "pick a name of the lab's own, e.g. phxlab0")
    problems += state_dir_problems(lab.state_dir)
    names = LabNames(lab.bridge, lab.state_dir)
    seen: dict[str, str] = {str(lab.gateway.ip): "the lab gateway"}
    for vm in config.real_vms:
        ip = vm.network.ip.ip
        if ip not in lab.subnet:
            problems.append(f"{vm}: IP {ip} is outside the lab subnet {lab.subnet}")
        elif vm.network.ip.network != lab.subnet:
            problems.append(f"{vm}: IP {vm.network.ip} has another prefix than the "
                            f"lab subnet {lab.subnet}")
        if vm.network.gw not in lab.subnet:
            problems.append(f"{vm}: gateway {vm.network.gw} is outside the lab subnet "
                            f"{lab.subnet}")
        if str(ip) in seen:
            problems.append(f"{vm}: IP {ip} is also used by {seen[str(ip)]}")
        seen[str(ip)] = str(vm)
        try:
            names.vm(vm.vmid).veth
        except ValueError as e:
            problems.append(f"{vm}: {e}")
    try:
        pwd.getpwnam(hv.vm_access.user)
    except KeyError:
        problems.append(f"vm_access.user {hv.vm_access.user!r} does not exist on this "
                        "machine; lab VMs log in as a user of this machine (use root)")
    return problems


def state_dir_problems(state_dir: Path) -> list[str]:
    """A state dir must be the lab's own: not / or a system directory, and when it
    exists, empty or holding the lab's record (lab.json)."""
    path = Path(os.path.normpath(state_dir))
    if any(ch < " " or ch == "\x7f" for ch in str(state_dir)):
        return [f"state_dir {str(state_dir)!r} contains a control character"]
    if path in SYSTEM_DIRS or len(path.parts) < 3:
        return [f"state_dir {path} is a system or top-level directory; the lab needs a directory of "
                "its own, e.g. /var/lib/phoenix-lab"]
    if path.is_symlink() or (path.exists() and not path.is_dir()):
        return [f"state_dir {path} exists and is not a plain directory"]
    if path.is_dir() and any(path.iterdir()) and not (path / RECORD_FILE).is_file():
        return [f"state_dir {path} holds files the lab did not make (no {RECORD_FILE}); pick an empty "
                "or new directory"]
    return []


def route_conflicts(subnet: ipaddress.IPv4Network, bridge: str,
                    routes: Iterable[dict], addresses: Iterable[dict]) -> list[str]:
    """Routes and addresses of this machine that overlap the lab subnet, except the
    lab's own bridge (facts as `ip -j -4 route` / `ip -j -4 addr` give them)."""
    conflicts = []
    for route in routes:
        dst = route.get("dst", "")
        if dst in ("", "default") or route.get("dev") == bridge:
            continue
        try:
            net = ipaddress.IPv4Network(dst if "/" in dst else f"{dst}/32", strict=False)
        except ValueError:
            continue
        if net.overlaps(subnet):
            conflicts.append(f"route {dst} dev {route.get('dev', '?')}")
    for link in addresses:
        if link.get("ifname") == bridge:
            continue
        for addr in link.get("addr_info", []):
            net = ipaddress.IPv4Interface(f"{addr['local']}/{addr['prefixlen']}").network
            if net.overlaps(subnet):
                conflicts.append(f"address {addr['local']}/{addr['prefixlen']} "
                                 f"on {link.get('ifname', '?')}")
    return conflicts


def require_free_subnet(subnet: ipaddress.IPv4Network, conflicts: list[str]) -> None:
    if conflicts:
        raise LabRefused(
            f"the lab subnet {subnet} overlaps what this machine already uses: "
            f"{'; '.join(conflicts)}; pick another subnet in "
            "phoenix_hypervisor_config.json (lab.subnet)")
