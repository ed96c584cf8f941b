"""`inv swarm.drain`, `swarm.undrain`, `swarm.prune`: node maintenance (the flows are
phoenix_tasks/cluster/maintenance.py)."""

from __future__ import annotations

from invoke import task
from invoke.exceptions import Exit

from ..core.model import VM, Config
from ..core.plan import Outcome
from ..show.plans import show_outcome, show_plan
from ..cluster import maintenance
from . import common
from .common import CONFIG_DIR_HELP, MUTATING_HELP, err, load_config_or_exit, out, user_errors
from .stacks import seconds_or_exit
from .vm import vm_or_exit

FORCE_PRUNE_HELP = ("also remove the entry of a node that is still up (`docker node rm --force`), and drain "
                    "one whose services could run nowhere else")


def _swarm_vm(config: Config, vmid) -> VM:
    vm = vm_or_exit(config, vmid)
    if not vm.in_swarm:
        raise Exit(f"--vmid {vm.vmid}: {vm} has no swarm_role in {config.vm_file}: it is no swarm node", code=1)
    return vm


def _line(text: str) -> None:
    out.print(text, markup=False, highlight=False)


def _finish(outcome: Outcome) -> None:
    show_outcome(out, err, outcome)
    if outcome.blocked and not outcome.applied and not outcome.dry_run:
        err.print("refused: nothing was changed", style="red")
    if not outcome.ok:
        raise Exit(code=1)


@task(auto_shortflags=False, help={"config_dir": CONFIG_DIR_HELP, 
    "vmid": "the VM whose node to drain (its vmid)",
    "wait": "wait until no task runs on the node and the tasks that left run elsewhere (default; --no-wait: do not)",
    "timeout": f"seconds to wait (default {maintenance.DRAIN_TIMEOUT_S:.0f})",
    "force": "drain even when a service could run nowhere else (it stops until a node can run it)",
    "dry_run": MUTATING_HELP["dry_run"], "verbose": MUTATING_HELP["verbose"]})
def drain(c, vmid=None, wait=True, timeout=None, force=False, dry_run=False, verbose=False, config_dir=None):
    """Drain one node (availability drain) and wait until its tasks run elsewhere."""
    config = load_config_or_exit(config_dir)
    vm = _swarm_vm(config, vmid)
    timeout_s = seconds_or_exit(timeout, maintenance.DRAIN_TIMEOUT_S)
    with user_errors(), common.transport_for(config, verbose) as transport:
        outcome = maintenance.drain(
            transport, config, vm, force=force, wait=wait, timeout_s=timeout_s, dry_run=dry_run,
            show=lambda plan: show_plan(out, plan, verbose=verbose, title=f"drain {vm.name}"), report=_line)
    _finish(outcome)


@task(auto_shortflags=False, help={"config_dir": CONFIG_DIR_HELP, "vmid": "the VM whose node to make active again (its vmid)",
                                   "dry_run": MUTATING_HELP["dry_run"], "verbose": MUTATING_HELP["verbose"]})
def undrain(c, vmid=None, dry_run=False, verbose=False, config_dir=None):
    """Make one node active again (it takes new tasks; moved tasks do not move back)."""
    config = load_config_or_exit(config_dir)
    vm = _swarm_vm(config, vmid)
    with user_errors(), common.transport_for(config, verbose) as transport:
        outcome = maintenance.undrain(transport, config, vm, dry_run=dry_run,
                                      show=lambda plan: show_plan(out, plan, verbose=verbose, title=f"undrain {vm.name}"))
    _finish(outcome)


@task(auto_shortflags=False, help={"config_dir": CONFIG_DIR_HELP, 
    "force": FORCE_PRUNE_HELP,
    "timeout": f"seconds to wait for each drained node (default {maintenance.DRAIN_TIMEOUT_S:.0f})",
    "dry_run": MUTATING_HELP["dry_run"], "verbose": MUTATING_HELP["verbose"]})
def prune(c, force=False, timeout=None, dry_run=False, verbose=False, config_dir=None):
    """Drain, demote and remove swarm nodes no configured VM claims (quorum checked)."""
    config = load_config_or_exit(config_dir)
    timeout_s = seconds_or_exit(timeout, maintenance.DRAIN_TIMEOUT_S)
    with user_errors(), common.transport_for(config, verbose) as transport:
        outcome = maintenance.prune(
            transport, config, force=force, dry_run=dry_run, timeout_s=timeout_s, report=_line,
            show=lambda plan: show_plan(out, plan, verbose=verbose, title="prune"))
    _finish(outcome)


TASKS = (drain, undrain, prune)
