"""The swarm converge as tasks run it: options from flags, the plan shown, the outcome
printed.  Shared by `swarm.init/join/label` and `sync-all` (no task imports another)."""

from __future__ import annotations

import re
from typing import Sequence

from invoke.exceptions import Exit

from ..core.model import Config
from ..core.plan import Outcome
from ..show.plans import show_outcome, show_plan
from ..swarm.apply import converge
from ..swarm.plan import Options
from ..swarm.security import read_key_file
from . import common
from .common import err, out, user_errors


def options(config: Config, vmid: str | int | None, force_rejoin: bool) -> Options:
    """Plan options from the flags; an unknown --vmid is a message, not a traceback."""
    if vmid is not None:
        swarm_ids = {vm.vmid for vm in config.swarm_vms}
        if not re.fullmatch(r"[0-9]{1,10}", str(vmid)) or int(vmid) not in swarm_ids:
            raise Exit(f"--vmid {vmid}: no swarm VM with that vmid in {config.vm_file} "
                       f"(swarm VMs: {', '.join(map(str, sorted(swarm_ids)))})", code=1)
    return Options(vmids=frozenset([int(vmid)]) if vmid is not None else None, force_rejoin=force_rejoin,
                   label_policy=config.hypervisor.swarm.label_policy,
                   unlock_key=read_key_file(config.hypervisor.swarm.autolock_key_file))


def run_converge(config: Config, phases: Sequence[str], *, dry_run: bool, verbose: bool,
                 vmid: str | int | None = None, force_rejoin: bool = False) -> Outcome:
    """facts -> plan -> show -> apply -> read again, for the given phases; prints as it goes."""
    from ..core.local_lock import unless_dry_run  # here: the module's imports are another change's
    opts = options(config, vmid, force_rejoin)
    # init and join take the cluster lock (sync-all's too); labels alone create no swarm.
    locks = not dry_run and ("init" in phases or "join" in phases)
    with user_errors(), unless_dry_run(not locks, config.config_dir, f"swarm.{'/'.join(p for p in phases if p != 'unlock')}",
                                       note=lambda line: err.print(line, markup=False, highlight=False)), \
            common.transport_for(config, verbose) as transport:
        outcome = converge(transport, config, opts, phases, dry_run=dry_run,
                           show=lambda plan: show_plan(out, plan, verbose=verbose, title=f"swarm {'/'.join(p for p in phases if p != 'unlock')}"))
    show_outcome(out, err, outcome)
    return outcome
