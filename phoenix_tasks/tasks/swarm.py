"""`inv swarm.*`: init, join, label, tokens, autolock, status (the stack tasks are in stacks.py)."""

from __future__ import annotations

from invoke import Collection, task
from invoke.exceptions import Exit

from ..core.plan import Outcome
from ..show.plans import show_plan
from ..show.swarm import show_autolock, show_rotation, show_status
from ..swarm import events, security
from ..swarm.apply import read_join_token
from ..swarm.facts import read_facts
from ..cluster.status import read_status
from . import common
from .common import CONFIG_DIR_HELP, MUTATING_HELP, VMID_HELP, err, load_config_or_exit, out, user_errors
from .converge import run_converge

def _finish(outcome: Outcome) -> None:
    if not outcome.ok:
        raise Exit(code=1)


@task(auto_shortflags=False, help={"config_dir": CONFIG_DIR_HELP, **MUTATING_HELP})
def init(c, dry_run=False, verbose=False, force_rejoin=False, config_dir=None):
    """Initialise the swarm on the first configured manager (only if no manager is in a swarm)."""
    config = load_config_or_exit(config_dir)
    _finish(run_converge(config, ["unlock", "init"], dry_run=dry_run, verbose=verbose, force_rejoin=force_rejoin))


@task(auto_shortflags=False, help={"config_dir": CONFIG_DIR_HELP, "vmid": VMID_HELP, **MUTATING_HELP})
def join(c, vmid=None, dry_run=False, verbose=False, force_rejoin=False, config_dir=None):
    """Join managers and workers to the swarm; promote/demote VMs whose role changed."""
    config = load_config_or_exit(config_dir)
    _finish(run_converge(config, ["unlock", "join"], dry_run=dry_run, verbose=verbose,
                         vmid=vmid, force_rejoin=force_rejoin))


@task(auto_shortflags=False, help={"config_dir": CONFIG_DIR_HELP, "vmid": VMID_HELP, "dry_run": MUTATING_HELP["dry_run"], "verbose": MUTATING_HELP["verbose"]})
def label(c, vmid=None, dry_run=False, verbose=False, config_dir=None):
    """Set node labels from the config (policy merge or replace, from the hypervisor config)."""
    config = load_config_or_exit(config_dir)
    _finish(run_converge(config, ["labels"], dry_run=dry_run, verbose=verbose,
                         vmid=vmid))


@task(auto_shortflags=False, help={"config_dir": CONFIG_DIR_HELP, "reveal": "print the tokens themselves (they grant access to the swarm: handle with care)",
            "rotate": "rotate the join token of worker, manager or both: the old token stops joining; the new "
                      "one is not printed",
            "dry_run": "with --rotate: read the real state and print what would rotate; change nothing",
            "verbose": MUTATING_HELP["verbose"]})
def tokens(c, reveal=False, rotate=None, dry_run=False, verbose=False, config_dir=None):
    """Show the join tokens (masked unless --reveal), or rotate them (--rotate worker|manager|both)."""
    config = load_config_or_exit(config_dir)
    if rotate is not None:
        if reveal:
            raise Exit("--reveal and --rotate do not go together: a rotated token is never printed; nothing was done",
                       code=2)
        with user_errors():
            roles = security.roles_from(rotate)
        with user_errors(), common.transport_for(config, verbose) as transport:
            result = security.rotate(transport, config, roles, dry_run=dry_run,
                                     show=lambda plan: show_plan(out, plan, verbose=verbose, title="swarm tokens"))
        show_rotation(out, err, result)
        _finish(result.outcome)
        return
    if dry_run:
        raise Exit("--dry-run goes with --rotate (showing the tokens changes nothing); nothing was done", code=2)
    with user_errors(), common.transport_for(config, verbose) as transport:
        facts = read_facts(transport, config)
        if facts.control is None:
            from ..swarm.plan import classify, no_manager_reason  # here: the module's imports are another change's
            no_manager = no_manager_reason(config, classify(config, facts))
            raise Exit(f"{no_manager}: no token can be read" if no_manager
                       else "no reachable manager is in a swarm: run `inv swarm.init` first", code=1)
        for role in ("manager", "worker"):
            token = read_join_token(transport, facts.control, role)
            out.print(f"{role}: {token.reveal() if reveal else token}", markup=False, highlight=False)
        out.print(f"(from {facts.control}; join address {facts.manager_addr})", markup=False)
        last = events.last(events.read(transport, facts.control), events.ROTATE_JOIN_TOKEN)
        out.print(f"last rotation: {last.describe() if last else 'none recorded'}", markup=False, highlight=False)


@task(auto_shortflags=False, help={"config_dir": CONFIG_DIR_HELP, 
    "enable": "turn autolock on and write the unlock key to swarm.autolock_key_file (mode 0600; never printed)",
    "disable": "turn autolock off (the key file is left where it is)",
    "dry_run": MUTATING_HELP["dry_run"], "verbose": MUTATING_HELP["verbose"]})
def autolock(c, enable=False, disable=False, dry_run=False, verbose=False, config_dir=None):
    """Show the swarm's autolock and its key file; --enable (key kept in the key file) or --disable."""
    config = load_config_or_exit(config_dir)
    if enable and disable:
        raise Exit("--enable and --disable together: say one; nothing was done", code=2)
    path = config.hypervisor.swarm.autolock_key_file
    if enable:
        with user_errors():  # refused before any connection
            security.check_key_file_writable(path)
    with user_errors(), common.transport_for(config, verbose) as transport:
        if enable or disable:
            result = security.autolock(transport, config, enable, dry_run=dry_run,
                                       show=lambda plan: show_plan(out, plan, verbose=verbose, title="swarm autolock"))
        else:
            result = security.read_autolock_status(transport, config)
    show_autolock(out, err, result, security.key_file_state(result.state.file, result.state.current_key))
    _finish(result.outcome)


@task(auto_shortflags=False, help={"config_dir": CONFIG_DIR_HELP, "json": "print one JSON document (nodes, stacks, leader, degraded) instead of tables",
            "verbose": MUTATING_HELP["verbose"]})
def status(c, json=False, verbose=False, config_dir=None):
    """Show each configured VM's swarm state, labels and drift, the leader and the stacks."""
    config = load_config_or_exit(config_dir, uses=[])
    with user_errors(), common.transport_for(config, verbose) as transport:
        st = read_status(transport, config)
    if json:
        print(st.to_json())
    else:
        show_status(out, st)
    if st.degraded:
        raise Exit(code=1)


ns = Collection("swarm", init, join, label, tokens, autolock, status)
