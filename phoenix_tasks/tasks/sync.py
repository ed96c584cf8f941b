"""`inv sync-all`: from nothing to a dashboard (the flow is phoenix_tasks/sync/sync_all.py)."""

from __future__ import annotations

import dataclasses
import os
import time

from invoke import task
from invoke.exceptions import Exit

from ..portainer import service as portainer
from ..sync import sync_all as sync
from ..providers import get_provider
from ..show.sync import SyncReporter, show_sync_plan, show_sync_summary
from ..stack import registries
from ..stack.deploy import DEFAULT_TIMEOUT_S
from . import common
from .common import CONFIG_DIR_HELP, MUTATING_HELP, err, load_config_or_exit, out, user_errors
from .converge import options
from .stacks import seconds_or_exit
from .vm import APPLY_DRIFT_HELP, SSH_TIMEOUT_HELP, ssh_timeout_or_exit, ssh_wait_access


@task(auto_shortflags=False, help={"config_dir": CONFIG_DIR_HELP, 
    **MUTATING_HELP,
    "timeout": f"seconds to wait for Portainer's services to converge (default {DEFAULT_TIMEOUT_S:.0f})",
    "apply_drift": APPLY_DRIFT_HELP,
    "prune": "also drain, demote (quorum checked) and remove swarm nodes no configured VM claims "
             "(without it they are only named)",
    "ssh_timeout": SSH_TIMEOUT_HELP,
    "lock_wait": "seconds to wait for the cluster lock while another sync-all/swarm.init/swarm.join of this "
                 "config runs on this machine (default 300)"})
def sync_all(c, dry_run=False, verbose=False, force_rejoin=False, timeout=None, apply_drift=False, prune=False,
             lock_wait=None, ssh_timeout=None, config_dir=None):
    """Create the VMs, initialise the swarm, join and label the nodes, deploy Portainer, check it answers."""
    started = time.monotonic()
    config = load_config_or_exit(config_dir)
    timeout_s = seconds_or_exit(timeout, DEFAULT_TIMEOUT_S)
    ssh_timeout_s = ssh_timeout_or_exit(ssh_timeout)
    opts = dataclasses.replace(options(config, None, force_rejoin), prune=prune)
    with user_errors():  # everything that can be refused is refused before any connection
        password = common.read_portainer_password(config)
        credentials = registries.read_credentials(config, os.environ)  # private registries' passwords

        def renderer(digests):
            return portainer.render_portainer(config, password, digests)
        port = portainer.published_port(renderer({}))
        provider = get_provider(config)
    from ..core.local_lock import DEFAULT_WAIT_S, unless_dry_run  # here: the module's imports are another change's
    lock_wait_s = seconds_or_exit(lock_wait, DEFAULT_WAIT_S, minimum=0, flag="--lock-wait")
    reporter = SyncReporter(out, err, verbose=verbose)
    # One converging run per cluster from this machine, held from the first read to the end.
    with user_errors(), unless_dry_run(dry_run, config.config_dir, "sync-all", wait_s=lock_wait_s,
                                       note=lambda line: err.print(line, markup=False, highlight=False)), \
            provider, common.transport_for(ssh_wait_access(config, ssh_timeout_s), verbose) as transport:
        plan = sync.read_plan(config, transport, provider, renderer, opts, apply_drift=apply_drift,
                              credentials=credentials)
        show_sync_plan(out, plan, verbose=verbose)
        if dry_run:
            out.print("dry run: nothing was changed")
            return
        result = sync.apply(config, transport, provider, renderer, port, opts, plan, reporter,
                            deploy_timeout_s=timeout_s, ssh_timeout_s=ssh_timeout_s, credentials=credentials)
    result.elapsed_s = time.monotonic() - started
    show_sync_summary(out, config, result, password)
    if not result.ok:
        raise Exit(code=1)
