"""`inv swarm.*`: init, join, label, tokens, status (the stack tasks are in stacks.py)."""

from __future__ import annotations

from invoke import Collection, task
from invoke.exceptions import Exit

from ..plan import Outcome
from ..show import show_status
from ..swarm.apply import read_join_token
from ..swarm.facts import read_facts
from ..swarm.status import read_status
from . import common
from .common import MUTATING_HELP, VMID_HELP, load_config_or_exit, out, user_errors
from .converge import run_converge

def _finish(outcome: Outcome) -> None:
    if not outcome.ok:
        raise Exit(code=1)


@task(auto_shortflags=False, help={**MUTATING_HELP})
def init(c, dry_run=False, verbose=False, force_rejoin=False):
    """Initialise the swarm on the first configured manager (only if no manager is in a swarm)."""
    config = load_config_or_exit()
    _finish(run_converge(config, ["init"], dry_run=dry_run, verbose=verbose, force_rejoin=force_rejoin))


@task(auto_shortflags=False, help={"vmid": VMID_HELP, **MUTATING_HELP})
def join(c, vmid=None, dry_run=False, verbose=False, force_rejoin=False):
    """Join managers and workers to the swarm; promote/demote VMs whose role changed."""
    config = load_config_or_exit()
    _finish(run_converge(config, ["join"], dry_run=dry_run, verbose=verbose,
                         vmid=vmid, force_rejoin=force_rejoin))


@task(auto_shortflags=False, help={"vmid": VMID_HELP, "dry_run": MUTATING_HELP["dry_run"], "verbose": MUTATING_HELP["verbose"]})
def label(c, vmid=None, dry_run=False, verbose=False):
    """Set node labels from the config (policy merge or replace, from the hypervisor config)."""
    config = load_config_or_exit()
    _finish(run_converge(config, ["labels"], dry_run=dry_run, verbose=verbose,
                         vmid=vmid))


@task(auto_shortflags=False, help={"reveal": "print the tokens themselves (they grant access to the swarm: handle with care)",
            "verbose": MUTATING_HELP["verbose"]})
def tokens(c, reveal=False, verbose=False):
    """Show the manager and worker join tokens (masked unless --reveal)."""
    config = load_config_or_exit()
    with user_errors(), common.transport_for(config, verbose) as transport:
        facts = read_facts(transport, config)
        if facts.control is None:
            raise Exit("no reachable manager is in a swarm: run `inv swarm.init` first", code=1)
        for role in ("manager", "worker"):
            token = read_join_token(transport, facts.control, role)
            out.print(f"{role}: {token.reveal() if reveal else token}", markup=False, highlight=False)
        out.print(f"(from {facts.control}; join address {facts.manager_addr})", markup=False)


@task(auto_shortflags=False, help={"json": "print one JSON document (nodes, stacks, leader, degraded) instead of tables",
            "verbose": MUTATING_HELP["verbose"]})
def status(c, json=False, verbose=False):
    """Show each configured VM's swarm state, labels and drift, the leader and the stacks."""
    config = load_config_or_exit()
    with user_errors(), common.transport_for(config, verbose) as transport:
        st = read_status(transport, config)
    if json:
        print(st.to_json())
    else:
        show_status(out, st)
    if st.degraded:
        raise Exit(code=1)


ns = Collection("swarm", init, join, label, tokens, status)
