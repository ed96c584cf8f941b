"""The lab's SSH material: client key pair, per-VM host keys, known_hosts, sshd_config.

The config loader points `vm_access.private_key_file` / `known_hosts_file` at
`<state_dir>/ssh/id_ed25519` and `<state_dir>/ssh/known_hosts`: these are written here.
"""

from __future__ import annotations

import os
import threading
from pathlib import Path

from phoenix_tasks.lab import commands
from phoenix_tasks.lab.naming import LabNames, VMNames
from phoenix_tasks.lab.system import run
from phoenix_tasks.core.model import VM


def ensure_client_key(names: LabNames) -> bool:
    """The lab's key pair and authorized_keys; True if something was made."""
    names.ssh_dir.mkdir(parents=True, exist_ok=True)
    os.chmod(names.ssh_dir, 0o700)
    made = False
    if not (names.private_key.exists() and names.public_key.exists()):
        names.private_key.unlink(missing_ok=True)
        names.public_key.unlink(missing_ok=True)
        run(commands.keygen(names.private_key, "phoenix-lab"))
        made = True
    public = names.public_key.read_text()
    if not names.authorized_keys.exists() or names.authorized_keys.read_text() != public:
        write_private(names.authorized_keys, public)
        made = True
    return made


def ensure_host_key(names: VMNames) -> bool:
    if names.host_key.exists() and Path(f"{names.host_key}.pub").exists():
        return False
    names.host_key.unlink(missing_ok=True)
    Path(f"{names.host_key}.pub").unlink(missing_ok=True)
    run(commands.keygen(names.host_key, f"phoenix-lab-{names.vmid}"))
    return True


def host_public_key(names: VMNames) -> str:
    """'ssh-ed25519 AAAA...' without the comment."""
    return " ".join(Path(f"{names.host_key}.pub").read_text().split()[:2])


def known_hosts_line(address: str, port: int, public_key: str) -> str:
    host = address if port == 22 else f"[{address}]:{port}"
    return f"{host} {public_key}\n"


def known_hosts_text(entries: list[tuple[str, int, str]]) -> str:
    return "".join(known_hosts_line(a, p, k) for a, p, k in sorted(entries))


def sshd_config_text(names: VMNames, vm: VM, port: int, user: str,
                     authorized_keys: Path) -> str:
    """sshd_config of one lab VM: its IP only, key-only, sessions see its engine."""
    return "".join(f"{line}\n" for line in [
        f"# phoenix lab VM {vm.name} (vmid {vm.vmid}); written by phoenix, do not edit",
        f"ListenAddress {vm.address}",
        f"Port {port}",
        f"HostKey {names.host_key}",
        f"PidFile {names.sshd_pidfile}",
        f"AuthorizedKeysFile {authorized_keys}",
        f"AllowUsers {user}",
        "PermitRootLogin prohibit-password",
        "PubkeyAuthentication yes",
        "PasswordAuthentication no",
        "KbdInteractiveAuthentication no",
        "UsePAM no",
        # The state dir may sit below a world-writable /tmp (the test suite's).
        "StrictModes no",
        "PrintMotd no",
        "Subsystem sftp internal-sftp",
        f"SetEnv DOCKER_HOST={names.docker_host} DOCKER_CONFIG={names.docker_client_dir}",
    ])


def write_private(path: Path, text: str) -> None:
    """Write text to path, readable by its owner only, atomically.  The temporary name
    is the writer's own: VMs started in parallel write known_hosts at the same time."""
    tmp = path.with_name(f"{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(text)
    os.replace(tmp, path)
