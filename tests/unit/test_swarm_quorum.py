"""The quorum guard's arithmetic, as a table: 1 to 5 managers, some unreachable, one or
two taken out of Raft; the even-count warning; the status line."""

import pytest

from phoenix_tasks.swarm.facts import NodeFacts
from phoenix_tasks.swarm.quorum import Quorum, even_warning, of_nodes, refusal


def managers(n: int, unreachable: int = 0, workers: int = 1) -> list[NodeFacts]:
    """n managers m1..mn, the last `unreachable` of them unreachable (and down), plus workers."""
    out = []
    for i in range(1, n + 1):
        down = i > n - unreachable
        out.append(NodeFacts(id=f"id{i}", hostname=f"m{i}", role="manager", availability="active",
                             status="down" if down else "ready", addr=f"10.0.0.{i}",
                             reachability="unreachable" if down else "reachable", leader=i == 1))
    out += [NodeFacts(id=f"w{i}", hostname=f"w{i}", role="worker", availability="active", status="ready",
                      addr=f"10.0.1.{i}") for i in range(1, workers + 1)]
    return out


def pick(nodes, *names):
    return [n for n in nodes if n.hostname in names]


@pytest.mark.parametrize("n, down, needed, tolerates, has_quorum, even", [
    (1, 0, 1, 0, True, False),
    (2, 0, 2, 0, True, True),
    (2, 1, 2, 0, False, True),
    (3, 0, 2, 1, True, False),
    (3, 1, 2, 1, True, False),
    (3, 2, 2, 1, False, False),
    (4, 1, 3, 1, True, True),
    (4, 2, 3, 1, False, True),
    (5, 2, 3, 2, True, False),
    (5, 3, 3, 2, False, False),
])
def test_counts(n, down, needed, tolerates, has_quorum, even):
    q = of_nodes(managers(n, down))
    assert (q.managers, q.reachable) == (n, n - down)
    assert (q.needed, q.tolerates, q.has_quorum, q.even) == (needed, tolerates, has_quorum, even)
    assert q.to_dict() == {"managers": n, "reachable": n - down, "needed": needed, "tolerates": tolerates,
                           "has_quorum": has_quorum, "even": even}


def test_no_manager_at_all():
    q = of_nodes(managers(0))
    assert (q.managers, q.needed, q.tolerates, q.has_quorum, q.even) == (0, 1, 0, False, False)


@pytest.mark.parametrize("n, down, removing, adding, expected", [
    # the last manager
    (1, 0, ["m1"], 0, "m1 is the last manager: demoting it would leave the swarm without a manager "
                      "(promote another node first)"),
    (2, 0, ["m1", "m2"], 0, "demoting m1, m2 would leave the swarm without a manager (promote another node first)"),
    # promoted first in the same plan: then it is not the last
    (1, 0, ["m1"], 1, None),
    # quorum kept
    (2, 0, ["m2"], 0, None),
    (3, 0, ["m3"], 0, None),
    (3, 1, ["m3"], 0, None),  # the unreachable one leaves: 2 of 2
    (5, 2, ["m5"], 0, None),
    (5, 1, ["m2"], 0, None),  # 3 of 4 reachable, 3 needed
    # quorum broken
    (3, 1, ["m2"], 0, "3 managers, 1 unreachable: demoting m2 leaves 1 of 2 reachable; quorum needs 2"),
    (5, 2, ["m1"], 0, "5 managers, 2 unreachable: demoting m1 leaves 2 of 4 reachable; quorum needs 3"),
    (4, 1, ["m1", "m2"], 0, "4 managers, 1 unreachable: demoting m1, m2 leaves 1 of 2 reachable; quorum needs 2"),
    # already lost: nothing can leave Raft
    (2, 1, ["m2"], 0, "2 managers, 1 unreachable: the swarm has lost quorum (it needs 2 reachable): no manager "
                      "can be demoted or removed until a majority is back (or `docker swarm init "
                      "--force-new-cluster` on a surviving manager)"),
])
def test_refusal(n, down, removing, adding, expected):
    nodes = managers(n, down)
    assert refusal(nodes, pick(nodes, *removing), adding=adding) == expected


def test_workers_never_count():
    nodes = managers(1, workers=3)
    assert refusal(nodes, pick(nodes, "w1", "w2")) is None


def test_the_verb_is_the_callers():
    nodes = managers(3, 1)
    assert refusal(nodes, pick(nodes, "m1"), verb="removing").startswith("3 managers, 1 unreachable: removing m1 ")


@pytest.mark.parametrize("n, warned", [(0, False), (1, False), (2, True), (3, False), (4, True), (5, False)])
def test_even_warning(n, warned):
    w = even_warning(n, " after this plan")
    assert (w is not None) == warned
    if warned:
        assert w.startswith(f"{n} managers after this plan: an even number tolerates no more manager failures "
                            f"than {n - 1} ({(n - 1) // 2})")


@pytest.mark.parametrize("q, line", [
    (Quorum(1, 1), "1 manager, reachable; quorum needs 1; tolerates 0 manager failures"),
    (Quorum(3, 3), "3 managers, all reachable; quorum needs 2; tolerates 1 manager failure"),
    (Quorum(3, 1), "3 managers, 2 unreachable (QUORUM LOST); quorum needs 2; tolerates 1 manager failure"),
    (Quorum(5, 4), "5 managers, 1 unreachable; quorum needs 3; tolerates 2 manager failures"),
])
def test_describe(q, line):
    assert q.describe() == line
