"""Tasks of the local lab: `inv lab.up|down|status|ssh|config` (bin/phoenix lab ...)."""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

from invoke import Collection, task
from invoke.exceptions import Exit

from phoenix_tasks.core import paths
from phoenix_tasks.lab import checks, commands, configgen
from phoenix_tasks.core.model import Config
from phoenix_tasks.tasks import common
from phoenix_tasks.tasks.common import err, user_errors

CONFIG_HELP = "lab configuration directory (default: $PHOENIX_CONFIG_DIR, else etc/lab)"


def lab_config_dir(explicit: str | None) -> Path:
    """--config-dir, else PHOENIX_CONFIG_DIR, else etc/lab (paths.config_dir decides)."""
    return paths.config_dir(explicit, default="etc/lab")


def require_root() -> None:
    """Refuse before reading anything: the state dir and engines are root's."""
    with user_errors():
        checks.require_root(os.geteuid())


def load_lab_config(config_dir: str | None) -> Config:
    """Root first, then the validated config; on any error print every problem and exit 1."""
    require_root()
    return common.load_config_or_exit(lab_config_dir(config_dir))


@task(help={"config_dir": CONFIG_HELP})
def up(c, config_dir=None):
    """Create and start every VM of the lab config (idempotent; needs root)."""
    config = load_lab_config(config_dir)
    with user_errors():
        from phoenix_tasks.lab import control  # here: --list, --help and validate never need the lab
        result = control.up(config, report=lambda line: common.out.print(line, markup=False))
    ready = len(result.vms)
    common.out.print(f"lab up: {ready} VM(s) ready in {result.seconds:.1f} s"
              + ("" if result.changed else " (no changes)"))


@task(help={"config_dir": CONFIG_HELP,
            "state_dir": "tear down the lab recorded in this state dir (no config needed)"})
def down(c, config_dir=None, state_dir=None):
    """Destroy every lab VM, the bridge and all lab state (also after a crash)."""
    bridge = None
    require_root()
    if state_dir is None:
        lab = load_lab_config(config_dir).hypervisor.lab
        if lab is None:
            err.print("error: this configuration has no lab section", style="red")
            raise Exit(code=1)
        state_dir, bridge = lab.state_dir, lab.bridge
    with user_errors():
        from phoenix_tasks.lab import control  # here: --list, --help and validate never need the lab
        done = control.down(Path(state_dir), bridge,
                            report=lambda line: common.out.print(line, markup=False))
    common.out.print("lab down: done" if done else "lab down: nothing to do (no changes)")


@task(help={"config_dir": CONFIG_HELP})
def status(c, config_dir=None):
    """Show each lab VM (namespace, link, engine, sshd, IP) and the lab registry; exit 1 if any is down."""
    config = load_lab_config(config_dir)
    with user_errors():
        from phoenix_tasks.lab import control  # here: --list, --help and validate never need the lab
        rows = control.status(config)
        reg = control.registry_status(config)
    from rich.table import Table  # here: rich tables cost start-up time
    from rich.text import Text
    table = Table(title=f"lab on {config.hypervisor.lab.bridge}")
    for column in ("vmid", "name", "IP", "namespace", "link", "engine", "sshd", "state"):
        table.add_column(column)
    yes_no = {True: Text("yes", style="green"), False: Text("no", style="red")}
    for s in rows:
        table.add_row(str(s.vm.vmid), s.vm.name, s.vm.address, Text.assemble(yes_no[s.namespace], f" {s.netns}"),
                      Text("up", "green") if s.link else Text("down", "red"),
                      yes_no[s.engine], yes_no[s.sshd], Text("up", "green") if s.up and s.link else Text("down", "red"))
    common.out.print(table)
    common.out.print(Text.assemble(f"registry {reg.address}: ",
                                   Text("up", "green") if reg.up else Text("down", "red"),
                                   f" (pid {reg.pid})" if reg.pid else " (no process)"))
    if not all(s.up and s.link for s in rows) or not reg.up:
        raise Exit(code=1)


@task(help={"vmid": "vmid of the lab VM", "cmd": "command to run there (default: a shell)",
            "config_dir": CONFIG_HELP})
def ssh(c, vmid, cmd=None, config_dir=None):
    """Open a shell on a lab VM, or run --cmd there (as the transport would)."""
    config = load_lab_config(config_dir)
    try:
        if not re.fullmatch(r"[0-9]{1,10}", str(vmid)):
            raise ValueError(vmid)
        vm = config.vm_by_id(int(vmid))
    except (KeyError, ValueError):
        err.print(f"error: no VM with vmid {vmid} in {config.vm_file}", style="red")
        raise Exit(code=1) from None
    code = subprocess.run(commands.ssh_client(config.hypervisor.vm_access, vm.address,
                                              cmd)).returncode
    if code:
        raise Exit(code=code)


@task(help={"nodes": "number of VMs (1st: manager, 2nd: gpu=true worker, rest: workers)",
            "out": "directory to write both JSON files to (created if needed)",
            "subnet": "lab subnet (default 198.18.42.0/24)",
            "bridge": "lab bridge name (default phxlab0)",
            "state_dir": "lab state directory (default /var/lib/phoenix-lab)",
            "config_dir": common.UNREAD_CONFIG_DIR_HELP})
def config(c, nodes, out, subnet="198.18.42.0/24", bridge="phxlab0",
           state_dir="/var/lib/phoenix-lab", config_dir=None):
    """Write a lab configuration directory of N VMs (for tests and benchmarks)."""
    if not re.fullmatch(r"[0-9]{1,3}", str(nodes)):
        raise Exit(f"--nodes must be a whole number, not {nodes!r}", code=1)
    with user_errors():
        written = configgen.write_lab_config(Path(out), int(nodes), subnet=subnet,
                                             bridge=bridge, state_dir=state_dir)
    for path in written:
        common.out.print(f"wrote {path}", markup=False)


ns = Collection("lab")
for _task in (up, down, status, ssh, config):
    ns.add_task(_task)
