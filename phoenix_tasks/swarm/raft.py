"""Cluster writes while Raft changes its leader or its members.

Right after a role change (a promote, a demote, a manager swap) the managers elect a
leader and commit the new membership; for a few seconds a cluster write (a node
update, `docker config create`, a deploy) may be answered with "rpc error: code =
DeadlineExceeded", "no elected cluster leader" or "node lost leader status", and may
even have landed.  Two tools, used by every write that can meet this:

- `retry_while_busy`: run a write again after a pause while Raft says it is busy
  (bounded: `RETRIES`, with backoff), asking `landed()` between tries whether the
  busy answer landed after all (a write that landed is not sent again);
- `wait_for_leader`: after role changes, poll the managers until one of them lists a
  leader and a majority of managers is reachable (a manager's node list is served
  through the leader: a list that shows one is a leader that answers).
"""

from __future__ import annotations

import time
from typing import Callable, Sequence, TypeVar

from ..core.errors import PhoenixError
from ..core.transport import RemoteCommandFailed, Transport
from . import commands
from .facts import parse_nodes
from .quorum import of_nodes

T = TypeVar("T")

# Raft answers a change it could not commit in time with these, or, right after a
# leader was demoted, with "raft: failed to process the request: node lost leader
# status" / "no elected cluster leader" (an election under way); the change may still land.
BUSY = ("DeadlineExceeded", "context deadline exceeded", "code = Unavailable",
        "raft: failed to process the request", "no elected cluster leader", "lost leader")
RETRIES = (2.0, 4.0, 8.0)  # pauses before each new try: 3 more tries, 14 s in all
LEADER_WAIT_S = 60.0


def is_busy(stderr: str) -> bool:
    return any(word in stderr for word in BUSY)


def retry_while_busy(write: Callable[[], T], *, landed: Callable[[], bool] | None = None,
                     pauses: Sequence[float] = RETRIES, sleep: Callable[[float], None] = time.sleep) -> T | None:
    """`write()`, sent again after each pause of `pauses` while it fails with a busy Raft
    answer; any other failure, or a busy one after the last try, is raised.  Between
    tries `landed()` (when given) says whether the busy write landed after all: then
    it is not sent again and None is returned."""
    for pause in (*pauses, None):
        try:
            return write()
        except RemoteCommandFailed as exc:
            if pause is None or not is_busy(exc.stderr):
                raise
        sleep(pause)
        if landed is not None and landed():
            return None
    return None  # not reached


def wait_for_leader(transport: Transport, managers: Sequence, *, timeout_s: float = LEADER_WAIT_S,
                    sleep: Callable[[float], None] = time.sleep, clock: Callable[[], float] = time.monotonic) -> str:
    """Until a manager of `managers` (VMs, asked in order) lists a leader, with a
    majority of the managers reachable; the leader's hostname.  (A manager that is down
    for good does not hold this up: quorum is what writes need.)  PhoenixError past the
    deadline, naming what was last seen."""
    end = clock() + timeout_s
    seen = "no manager answered"
    while True:
        for vm in managers:
            try:
                nodes = parse_nodes(transport.run(vm, commands.inspect_nodes(), mutating=False, quiet=True).stdout)
            except (PhoenixError, ValueError) as exc:
                seen = f"{vm}: {exc}"
                continue
            q = of_nodes(nodes.values())
            if not q.managers:  # not a manager's list (a manager always lists itself)
                seen = f"{vm}: not a manager now"
                continue
            leaders = [n for n in nodes.values() if n.role == "manager" and n.leader]
            if leaders and q.has_quorum:
                return leaders[0].hostname
            seen = f"{vm} lists " + (f"leader {leaders[0].hostname}" if leaders else "no leader") + f", {q.counts()}"
            break
        if clock() >= end:
            raise PhoenixError(f"the swarm has no leader that takes writes {timeout_s:.0f} s after the role "
                               f"changes ({seen})")
        sleep(0.5)
