"""How the swarm prints: cluster status, swarm settings, token rotation, autolock, quorum.

Text that comes from the config or from a host is printed with markup off (see plans.py)."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:  # rich is imported where something is printed: `inv --list` prints nothing of it
    from rich.console import Console
    from rich.text import Text

from ..cluster.status import ClusterStatus
from .plans import cells, labels_text, show_outcome
from .stacks import show_environments


def show_status(console: Console, status: ClusterStatus) -> None:
    from rich.table import Table  # here: rich tables cost start-up time
    table = Table(title="swarm nodes (configured VMs)", title_justify="left")
    for col in ("vmid", "name", "address", "role", "state", "node", "availability", "labels", "label drift"):
        table.add_column(col)
    for n in status.nodes:
        role = n.role if not n.actual_role or n.actual_role == n.role else f"{n.actual_role} (config: {n.role})"
        if n.leader:
            role += " *leader"
        drift = []
        drift += [f"+{k}={v}" for k, v in sorted(n.label_drift.get("add", {}).items())]
        drift += [f"-{k}" for k in n.label_drift.get("remove", [])]
        state = n.state if n.reachable else f"{n.state}"
        style = None if n.healthy else "red"
        table.add_row(*cells(n.vmid, n.name, n.address, role, state, n.node_status or "-",
                              n.availability or "-", labels_text(n.labels), " ".join(drift) or "-"), style=style)
    console.print(table)
    for n in status.nodes:
        if n.detail:
            # Named as every other message names a VM: `name (vmid N): state: detail`.
            detail = n.detail if n.state != "unreachable" or n.detail.startswith("unreachable") \
                else f"unreachable: {n.detail}"
            line = n.detail if n.detail.startswith(n.name) else f"{n.name} (vmid {n.vmid}): {detail}"
            console.print(f"  {line}", markup=False, highlight=False)
    console.print(f"leader: {status.leader or '-'}; read from manager: "
                  f"{status.manager or 'none (no reachable VM is a swarm manager)'}")
    show_swarm_settings(console, status)
    if status.quorum:
        show_quorum(console, status.quorum)
    for o in status.other_nodes:
        console.print(f"  other node in the swarm, not a configured VM: {o.hostname} {o.node_id[:12]} "
                      f"({o.role}, {o.status})" + (f": {o.kind}: {o.detail}" if o.kind else ""),
                      markup=False, highlight=False)
    if status.environments:
        show_environments(console, status.environments)
    else:
        console.print("environments: none (no stack deployed)")
    for p in status.problems:
        console.print(f"problem: {p}", style="red", markup=False, highlight=False)
    from rich.text import Text
    console.print(Text.assemble("cluster: ", Text("DEGRADED", "red") if status.degraded else Text("healthy", "green")))


def show_swarm_settings(console: Console, status: ClusterStatus) -> None:
    """The swarm's address pool and autolock (security.py), and their warnings."""
    if status.default_addr_pool is not None:
        console.print(f"address pool: {', '.join(status.default_addr_pool)} in /{status.subnet_size}s; "
                      f"autolock: {'on' if status.autolock else 'off'}"
                      + (f" (key file: {status.autolock_key_file})" if status.autolock else ""),
                      markup=False, highlight=False)
    for w in status.warnings:
        console.print(f"warning: {w}", style="yellow", markup=False, highlight=False)


def show_rotation(console: Console, err: Console, result) -> None:
    """What a token rotation did (security.Rotated): which role, from which manager, when;
    never a token."""
    from ..swarm.events import clock  # noqa: PLC0415 - show.py imports no flow module at load
    show_outcome(console, err, result.outcome)
    for action in result.outcome.applied:
        if action not in result.outcome.pending:
            console.print(f"rotated: the {action.subject} on {action.where} at {clock(result.at)}; the old token "
                          f"no longer joins (the new one is not shown: `swarm.tokens --reveal` prints it)",
                          markup=False, highlight=False)
    if result.event is not None:
        console.print(f"recorded as cluster event {result.event.name}", markup=False, highlight=False)
    for p in result.problems:
        err.print(f"warning: {p}", style="yellow", markup=False, highlight=False)


def show_autolock(console: Console, err: Console, result, key_state: str) -> None:
    """Autolock after `swarm.autolock` (security.Autolocked): on/off, the key file; never the key."""
    show_outcome(console, err, result.outcome)
    if not (result.outcome.applied or result.outcome.plan.actions):  # show_outcome did not say why
        for b in result.outcome.blocked:
            err.print(f"blocked: {b.subject}: {b.reason}", style="red", markup=False, highlight=False)
    state = result.state
    if state is not None and state.enabled is not None:
        style = "yellow" if state.enabled and not state.file.usable else None
        console.print(f"autolock: {'on' if state.enabled else 'off'}; key file: {key_state}", style=style,
                      markup=False, highlight=False)
    if result.event is not None:
        console.print(f"recorded as cluster event {result.event.name}", markup=False, highlight=False)
    if result.last is not None:
        console.print(f"last change: {result.last.describe()}", markup=False, highlight=False)
    for p in result.problems:
        err.print(f"warning: {p}", style="yellow", markup=False, highlight=False)


def show_quorum(console: Console, q: dict) -> None:
    """Managers, how many are reachable, what quorum needs, how many failures it tolerates."""
    from ..swarm.quorum import Quorum, even_warning  # noqa: PLC0415 - show.py imports no flow module at load
    quorum = Quorum(q["managers"], q["reachable"])
    console.print(f"managers: {quorum.describe()}", style=None if quorum.has_quorum else "red",
                  markup=False, highlight=False)
    warning = even_warning(quorum.managers)
    if warning:
        console.print(f"  warning: {warning}", style="yellow", markup=False, highlight=False)
