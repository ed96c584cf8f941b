"""`inv sync-all`: the whole flow, each step facts -> plan -> apply -> read again."""

from __future__ import annotations

from invoke import task
from invoke.exceptions import Exit

from ..swarm.plan import PHASES
from ..vms import ensure_vms
from .common import MUTATING_HELP, err, load_config_or_exit, out, user_errors
from .converge import run_converge

PORTAINER_NOT_BUILT = ("not built yet: Portainer as a swarm stack is the next piece of work (README, "
                       "'Not built yet'); nothing was deployed. Stacks deploy with `swarm.deploy`")


@task(auto_shortflags=False, help={**MUTATING_HELP})
def sync_all(c, dry_run=False, verbose=False, force_rejoin=False):
    """Create the VMs, initialise the swarm, join managers and workers, label the nodes."""
    config = load_config_or_exit()
    out.print(f"step 1/3: VMs ({config.hypervisor.provider} provider)", style="bold")
    with user_errors():
        vms = ensure_vms(config, dry_run=dry_run, report=lambda line: out.print(line, markup=False))
    for vm, message in vms.failed:
        err.print(f"failed: {vm}: {message}", style="red", markup=False)
    for vm in vms.still_down:
        err.print(f"still down after apply: {vm}", style="red", markup=False)
    out.print("step 2/3: swarm init, join, labels", style="bold")
    if dry_run and vms.plan:
        out.print("swarm: planned once the VMs exist (a dry run cannot read VMs it did not create); "
                  "the swarm VMs that already run are not read either")
        out.print("dry run: nothing was changed")
        return
    outcome = run_converge(config, PHASES, dry_run=dry_run, verbose=verbose, force_rejoin=force_rejoin)
    out.print(f"step 3/3: Portainer: {PORTAINER_NOT_BUILT}", highlight=False)
    if not (vms.ok and outcome.ok):
        raise Exit(code=1)
