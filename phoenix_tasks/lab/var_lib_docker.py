"""/var/lib/docker on the host: the mount point of every lab VM's data root.

A lab VM's daemons see their own data root at /var/lib/docker, as on a real VM (a
bind mount in their private mount namespace, commands.VM_SETUP_THEN_EXEC), so
Portainer's agent can bind-mount /var/lib/docker/volumes.  A bind mount needs the
directory to exist; a lab host without Docker of its own may not have it.

`lab.up` makes it (empty) when it is missing, after recording that in lab.json
(RECORD_KEY).  `lab.down` removes it only if this lab made it, it is still empty and
not a mount point, and no other lab runs on this machine: removing a directory that is
a mount point in other mount namespaces detaches those mounts, so another lab's VMs
would lose their /var/lib/docker.
"""

from __future__ import annotations

import os
from pathlib import Path

from phoenix_tasks.lab.naming import RUN_ROOT, VM_DOCKER_ROOT

RECORD_KEY = "made_var_lib_docker"  # in lab.json: true if this lab made the directory


def problem(path: Path = VM_DOCKER_ROOT) -> str | None:
    """Why the lab cannot use path as its VMs' mount point (None: it can)."""
    if path.is_symlink() and not path.exists():
        return f"{path} is a symlink to nothing; lab VMs mount their data root there"
    if path.exists() and not path.is_dir():
        return f"{path} exists and is not a directory; lab VMs mount their data root there"
    return None


def missing(path: Path = VM_DOCKER_ROOT) -> bool:
    return not path.exists() and not path.is_symlink()


def make(path: Path = VM_DOCKER_ROOT) -> bool:
    """Make path (empty, as Docker would: 0711) if missing; True if made."""
    if not missing(path):
        return False
    path.mkdir(mode=0o711)
    return True


def remove_if_made(made: bool, path: Path = VM_DOCKER_ROOT,
                   run_root: Path = RUN_ROOT) -> tuple[bool, str]:
    """Remove path if this lab `made` it and nothing else uses it.

    Returns (removed, one line for the user); (False, "") when there is nothing
    to say.  Call it after this lab's own run dir is gone: any entry left in run_root is
    another lab."""
    if not made or not path.is_dir() or path.is_symlink():
        return False, ""
    if os.path.ismount(path) or any(path.iterdir()):
        return False, f"left {path} in place: this lab made it, but it is no longer empty"
    others = sorted(p.name for p in run_root.iterdir()) if run_root.is_dir() else []
    if others:
        return False, (f"left {path} in place (empty): another lab on this machine "
                       f"({run_root / others[0]}) mounts it in its VMs")
    path.rmdir()
    return True, f"removed {path} (this lab made it)"
