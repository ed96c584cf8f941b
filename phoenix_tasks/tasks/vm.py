"""`inv vm.create` / `inv vm.status`: one VM (or every VM) through the config's provider.

The same plan and apply as `sync-all`'s first step (phoenix_tasks/sync/vm_stage.py), then, for
a VM it started, the same wait until SSH answers as that VM.
"""

from __future__ import annotations

import dataclasses
import re

from invoke import Collection, task
from invoke.exceptions import Exit

from ..core.model import VM, Config
from ..providers import get_provider
from ..show.vms import show_vm_plan
from ..sync.vm_stage import SSH_WAIT_S, bring_up, plan_vms, wait_for_ssh
from . import common
from .common import CONFIG_DIR_HELP, MUTATING_HELP, err, load_config_or_exit, out, user_errors

APPLY_DRIFT_HELP = ("apply what differs on a VM that exists (cores, memory, a grown disk, cloud-init, tags); "
                    "the plan says which change is live and which waits for the next boot")


def vm_or_exit(config: Config, vmid, *, flag: str = "--vmid") -> VM:
    """The configured VM with this vmid (templates included); anything else is a message."""
    ids = sorted(vm.vmid for vm in config.vms)
    if vmid is None or not re.fullmatch(r"[0-9]{1,10}", str(vmid)) or int(vmid) not in ids:
        given = "is missing" if vmid is None else f"{vmid}: no VM with that vmid"
        raise Exit(f"{flag} {given} in {config.vm_file} (VMs: {', '.join(map(str, ids))})", code=1)
    return next(vm for vm in config.vms if vm.vmid == int(vmid))


SSH_TIMEOUT_HELP = (f"seconds to wait for a started VM to answer over SSH as itself (default {SSH_WAIT_S:.0f}); "
                    "progress every 30 s; no SSH connect waits longer than this")


def ssh_timeout_or_exit(value) -> float:
    from .stacks import seconds_or_exit  # noqa: PLC0415 - the shared check of a seconds flag
    return seconds_or_exit(value, SSH_WAIT_S, flag="--ssh-timeout")


def ssh_wait_access(config: Config, timeout_s: float) -> Config:
    """The config whose VM access connects within the SSH wait: an attempt's connect
    never outlasts `--ssh-timeout` (a VM that never answers ends near it).  Only the
    connect timeout changes, and only when the wait is the shorter."""
    access = config.hypervisor.vm_access
    if access.connect_timeout_s <= timeout_s:
        return config
    hv = dataclasses.replace(config.hypervisor, vm_access=dataclasses.replace(access, connect_timeout_s=timeout_s))
    return dataclasses.replace(config, hypervisor=hv)


@task(auto_shortflags=False, help={"config_dir": CONFIG_DIR_HELP, 
    "vmid": "the VM to create (its vmid in the VM config)",
    "apply_drift": APPLY_DRIFT_HELP,
    "ssh_timeout": SSH_TIMEOUT_HELP,
    "dry_run": MUTATING_HELP["dry_run"], "verbose": "also print each API call or command"})
def create(c, vmid=None, apply_drift=False, dry_run=False, verbose=False, ssh_timeout=None, config_dir=None):
    """Create one VM (Proxmox: clone, cores/memory, disk, cloud-init, start) and wait until SSH answers."""
    config = load_config_or_exit(config_dir)
    ssh_timeout_s = ssh_timeout_or_exit(ssh_timeout)
    vm = vm_or_exit(config, vmid)
    if vm.is_template:
        raise Exit(f"--vmid {vm.vmid}: {vm} is a template: Phoenix checks templates, never creates or starts "
                   "them", code=1)
    with user_errors(), get_provider(config) as provider:
        plan = plan_vms(config, provider, [vm], apply_drift=apply_drift)
        show_vm_plan(out, plan, verbose=verbose)
        if dry_run:
            out.print("dry run: nothing was changed")
            raise Exit(code=1 if plan.blocked else 0)
        outcome = bring_up(provider, plan, report=lambda line: out.print(line, markup=False, highlight=False))
    for v, message in outcome.failed:
        err.print(f"failed: {v}: {message}", style="red", markup=False, highlight=False)
    for b in outcome.blocked:
        err.print(f"blocked: {b.subject}: {b.reason}", style="red", markup=False, highlight=False)
    for v in outcome.still_down:
        err.print(f"still down after apply: {v}: {outcome.down_reason(v)}", style="red", markup=False,
                  highlight=False)
    for a in outcome.pending:
        err.print(f"still pending after apply: {a.subject}: {a.kind} {a.summary}", style="red", markup=False,
                  highlight=False)
    if not outcome.ok:
        raise Exit(code=1)
    if outcome.started:
        out.print(f"ssh: waiting until {vm} answers as itself (up to {ssh_timeout_s:g} s)", markup=False)
        with user_errors(), common.transport_for(ssh_wait_access(config, ssh_timeout_s), verbose) as transport:
            failed = wait_for_ssh(transport, [vm], timeout_s=ssh_timeout_s,
                                  report=lambda line: out.print(line, markup=False))
        if failed:
            err.print(f"failed: {vm}: no SSH after {ssh_timeout_s:g} s: {failed[vm.name]}", style="red",
                      markup=False, highlight=False)
            raise Exit(code=1)
        out.print(f"ssh: {vm} answers", markup=False)
    out.print(f"{vm}: " + ("converged: read again, nothing pending" if plan.actions else "no changes"),
              markup=False, highlight=False)


def _state(s) -> str:
    if s.vm.is_template:
        return "template" if s.exists else "-"
    return "running" if s.running else ("stopped" if s.exists else "missing")


def status_json(provider: str, statuses) -> dict:
    """`vm status --json`: {provider, vms: [{name, vmid, template, exists, running, state, detail}], down}."""
    return {"provider": provider,
            "vms": [{"name": s.vm.name, "vmid": s.vm.vmid, "template": s.vm.is_template, "exists": bool(s.exists),
                     "running": bool(s.running), "state": _state(s), "detail": s.detail or None} for s in statuses],
            "down": any(not s.up for s in statuses if not s.vm.is_template)}


@task(auto_shortflags=False, help={"config_dir": CONFIG_DIR_HELP, "vmid": "only this VM (default: every VM in the config, templates included)",
                                   "json": "print one JSON document instead of a table"})
def status(c, vmid=None, json=False, config_dir=None):
    """Show each VM as the provider sees it: exists, running, where, and what differs from the config."""
    config = load_config_or_exit(config_dir)
    vms = [vm_or_exit(config, vmid)] if vmid is not None else list(config.vms)
    with user_errors(), get_provider(config) as provider:
        statuses = provider.statuses(vms)
    down = any(not s.up for s in statuses if not s.vm.is_template)
    if json:
        import json as jsonlib
        print(jsonlib.dumps(status_json(config.hypervisor.provider, statuses), indent=2))
        if down:
            raise Exit(code=1)
        return
    from rich.table import Table  # here: rich tables cost start-up time
    table = Table(title=f"VMs ({config.hypervisor.provider} provider)", title_justify="left")
    for col in ("VM", "vmid", "exists", "state", "detail"):
        table.add_column(col)
    for s in statuses:
        table.add_row(s.vm.name, str(s.vm.vmid), "yes" if s.exists else "no", _state(s), s.detail or "-",
                      style=None if s.up or s.vm.is_template else "yellow")
    out.print(table)
    if down:
        raise Exit(code=1)


ns = Collection("vm", create, status)
