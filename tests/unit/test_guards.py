"""Unit tests for minerguard.domain.guards: the blast-radius rules in front of every node action.

What these tests prove:

* the excluded-node selector is parsed as ``key`` (has the label) or ``key=value``;
* :func:`node_limit` gives a small cluster at least one node, is capped by ``maxNodes``
  and otherwise follows ``maxPercent`` (rounded down);
* :func:`decide` applies its rules in the documented order (ExcludedNode, already held,
  MaxNodes, MinSchedulable, RateLimit, allowed), counts only worker nodes, treats a
  NoSchedule taint as unschedulable, and rate-limits over the last hour from the
  ``acted_at`` times recorded on the nodes (so the decision survives a restart).
"""

from __future__ import annotations

from collections.abc import Mapping

import pytest

from minerguard.config import GuardSettings
from minerguard.domain.guards import GuardDecision, NodeSnapshot, decide, excluded, node_limit, parse_node_selector

pytestmark = pytest.mark.unit

CP = {"node-role.kubernetes.io/control-plane": ""}
NOW = 1_700_000_000.0
HOUR = 3600.0


def node(
    name: str,
    labels: Mapping[str, str] | None = None,
    *,
    unschedulable: bool = False,
    taints: tuple[str, ...] = (),
    held: bool = False,
    acted_at: float | None = None,
) -> NodeSnapshot:
    return NodeSnapshot(
        name=name,
        labels=dict(labels or {}),
        unschedulable=unschedulable,
        no_schedule_taints=taints,
        held_by_us=held,
        acted_at=acted_at,
    )


def workers(n: int, prefix: str = "w") -> list[NodeSnapshot]:
    return [node(f"{prefix}{i}") for i in range(n)]


def settings(**kw: object) -> GuardSettings:
    base: dict[str, object] = {
        "max_nodes": 3,
        "max_percent": 50.0,
        "min_schedulable_nodes": 1,
        "max_actions_per_hour": 10,
    }
    base.update(kw)
    return GuardSettings(**base)  # type: ignore[arg-type]


# --------------------------------------------------------------------------- selector parsing


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("", []),
        ("a", [("a", None)]),
        ("a,b=c", [("a", None), ("b", "c")]),
        (" a , b = c ,, ", [("a", None), ("b", "c")]),
        ("a=", [("a", "")]),
        ("a=b=c", [("a", "b=c")]),
        ("node-role.kubernetes.io/control-plane", [("node-role.kubernetes.io/control-plane", None)]),
        ("kubernetes.io/os=linux,pool=infra", [("kubernetes.io/os", "linux"), ("pool", "infra")]),
        (",,,", []),
    ],
)
def test_parse_node_selector(text: str, expected: list[tuple[str, str | None]]) -> None:
    assert parse_node_selector(text) == expected


def test_excluded_by_key_presence() -> None:
    sel = "node-role.kubernetes.io/control-plane"
    assert excluded(node("cp", CP), sel) == "node-role.kubernetes.io/control-plane"
    assert excluded(node("cp", {"node-role.kubernetes.io/control-plane": "true"}), sel)
    assert excluded(node("w", {"node-role.kubernetes.io/worker": ""}), sel) is None
    assert excluded(node("w"), sel) is None


def test_excluded_by_key_and_value() -> None:
    sel = "pool=infra"
    assert excluded(node("a", {"pool": "infra"}), sel) == "pool=infra"
    assert excluded(node("b", {"pool": "apps"}), sel) is None
    assert excluded(node("c"), sel) is None


def test_excluded_first_matching_term_is_reported() -> None:
    sel = "gpu,pool=infra"
    assert excluded(node("a", {"pool": "infra", "gpu": "x"}), sel) == "gpu"
    assert excluded(node("b", {"pool": "infra"}), sel) == "pool=infra"


def test_empty_selector_excludes_nothing() -> None:
    assert excluded(node("cp", CP), "") is None


# --------------------------------------------------------------------------- node_limit


@pytest.mark.parametrize(
    ("total", "max_nodes", "percent", "expected"),
    [
        (0, 3, 10.0, 1),  # small clusters still get one
        (1, 3, 10.0, 1),
        (5, 3, 10.0, 1),
        (9, 3, 10.0, 1),
        (10, 3, 10.0, 1),
        (20, 3, 10.0, 2),
        (29, 3, 10.0, 2),  # rounded down
        (30, 3, 10.0, 3),
        (100, 3, 10.0, 3),  # maxNodes caps
        (1000, 3, 10.0, 3),
        (100, 50, 10.0, 10),  # percent binds
        (100, 50, 25.0, 25),
        (4, 10, 50.0, 2),
        (4, 10, 100.0, 4),
        (10, 10, 0.0, 1),  # even 0 % allows one
        (10, 0, 50.0, 0),  # maxNodes 0 forbids all
        (7, 10, 33.3, 2),
    ],
)
def test_node_limit(total: int, max_nodes: int, percent: float, expected: int) -> None:
    assert node_limit(total, settings(max_nodes=max_nodes, max_percent=percent)) == expected


def test_node_limit_with_default_settings() -> None:
    s = GuardSettings()
    assert node_limit(3, s) == 1
    assert node_limit(20, s) == 2
    assert node_limit(500, s) == 3


# --------------------------------------------------------------------------- decide: each rule


def test_allowed_on_a_healthy_cluster() -> None:
    nodes = workers(10)
    assert decide(nodes[0], nodes, settings(), NOW) == GuardDecision(True)


def test_excluded_node_is_refused() -> None:
    cp = node("cp", CP)
    nodes = [cp, *workers(5)]
    d = decide(cp, nodes, settings(excluded_node_selector="node-role.kubernetes.io/control-plane"), NOW)
    assert not d.allowed
    assert d.guard == "ExcludedNode"
    assert "cp" in d.reason and "node-role.kubernetes.io/control-plane" in d.reason


def test_excluded_by_value_reason_names_the_label() -> None:
    infra = node("infra-1", {"pool": "infra"})
    d = decide(infra, [infra, *workers(5)], settings(excluded_node_selector="pool=infra"), NOW)
    assert (d.allowed, d.guard) == (False, "ExcludedNode")
    assert "pool=infra" in d.reason


def test_excluded_even_when_held_by_us() -> None:
    cp = node("cp", CP, held=True)
    assert decide(cp, [cp, *workers(5)], settings(), NOW).guard == "ExcludedNode"


def test_already_held_is_allowed_even_past_every_limit() -> None:
    # Held nodes beyond the limit, nothing schedulable, rate limit spent: still idempotent.
    nodes = [
        node(f"h{i}", held=True, unschedulable=True, taints=("minerguard.io/suspect",), acted_at=NOW - 1)
        for i in range(5)
    ]
    d = decide(nodes[0], nodes, settings(max_nodes=1, min_schedulable_nodes=10, max_actions_per_hour=0), NOW)
    assert d == GuardDecision(True)


def test_max_nodes_limit() -> None:
    nodes = [node("h0", held=True), node("h1", held=True), *workers(8)]
    d = decide(nodes[2], nodes, settings(max_nodes=2, max_percent=100.0), NOW)
    assert (d.allowed, d.guard) == (False, "MaxNodes")
    assert "holds 2 of 10 nodes" in d.reason and "limit is 2" in d.reason
    assert "maxNodes 2" in d.reason and "maxPercent 100%" in d.reason
    # One fewer held: allowed.
    nodes = [node("h0", held=True), *workers(9)]
    assert decide(nodes[1], nodes, settings(max_nodes=2, max_percent=100.0), NOW).allowed


def test_max_percent_limit() -> None:
    nodes = [node("h0", held=True), *workers(9)]  # 10 workers, 10 % -> 1
    d = decide(nodes[1], nodes, settings(max_nodes=5, max_percent=10.0), NOW)
    assert (d.allowed, d.guard) == (False, "MaxNodes")
    assert "limit is 1" in d.reason and "maxPercent 10%" in d.reason


def test_small_cluster_gets_one_node_action() -> None:
    nodes = workers(3)
    s = settings(max_nodes=3, max_percent=10.0, min_schedulable_nodes=1)
    assert decide(nodes[0], nodes, s, NOW).allowed
    nodes = [node("w0", held=True), node("w1"), node("w2")]
    assert decide(nodes[1], nodes, s, NOW).guard == "MaxNodes"


def test_max_nodes_counts_only_workers() -> None:
    # Control-plane nodes neither raise the percentage base nor count as held.
    cps = [node(f"cp{i}", CP, held=True) for i in range(3)]
    s = settings(max_nodes=10, max_percent=50.0)  # 4 workers -> limit 2 (7 nodes would give 3)
    nodes = [*cps, node("w0", held=True), *workers(3, "x")]
    assert decide(nodes[4], nodes, s, NOW).allowed  # the held control-plane nodes are not counted
    nodes = [*cps, node("w0", held=True), node("w1", held=True), *workers(2, "x")]
    d = decide(nodes[5], nodes, s, NOW)
    assert d.guard == "MaxNodes"  # the base is 4 workers, not 7 nodes
    assert "holds 2 of 4 nodes" in d.reason and "limit is 2" in d.reason


def test_min_schedulable() -> None:
    nodes = workers(2)
    d = decide(nodes[0], nodes, settings(min_schedulable_nodes=2, max_percent=100.0), NOW)
    assert (d.allowed, d.guard) == (False, "MinSchedulable")
    assert "would leave 1 schedulable nodes" in d.reason and "at least 2" in d.reason
    nodes = workers(3)
    assert decide(nodes[0], nodes, settings(min_schedulable_nodes=2, max_percent=100.0), NOW).allowed


def test_min_schedulable_ignores_control_plane_nodes() -> None:
    cps = [node(f"cp{i}", CP) for i in range(5)]
    nodes = [*cps, *workers(2)]
    d = decide(nodes[5], nodes, settings(min_schedulable_nodes=2, max_percent=100.0), NOW)
    assert d.guard == "MinSchedulable"
    assert "would leave 1 schedulable" in d.reason


@pytest.mark.parametrize(
    "other",
    [
        node("w1", unschedulable=True),
        node("w1", taints=("dedicated",)),
        node("w1", taints=("node.kubernetes.io/not-ready", "x")),
    ],
    ids=["cordoned", "NoSchedule-taint", "several-taints"],
)
def test_unschedulable_or_tainted_nodes_do_not_count(other: NodeSnapshot) -> None:
    assert not other.schedulable
    nodes = [node("w0"), other, node("w2")]
    d = decide(nodes[0], nodes, settings(min_schedulable_nodes=2, max_percent=100.0), NOW)
    assert d.guard == "MinSchedulable"
    assert "would leave 1 schedulable" in d.reason


def test_schedulable_property() -> None:
    assert node("a").schedulable
    assert not node("a", unschedulable=True).schedulable
    assert not node("a", taints=("t",)).schedulable


def test_target_itself_unschedulable_is_not_double_counted() -> None:
    # Acting on an already-cordoned node takes nothing more away.
    nodes = [node("w0", unschedulable=True), node("w1"), node("w2")]
    d = decide(nodes[0], nodes, settings(min_schedulable_nodes=2, max_percent=100.0), NOW)
    assert d.allowed


def test_rate_limit_over_the_last_hour() -> None:
    acted = [node(f"a{i}", acted_at=NOW - 60 * (i + 1)) for i in range(3)]  # 1, 2, 3 minutes ago
    nodes = [*acted, *workers(10)]
    s = settings(max_actions_per_hour=3, max_nodes=100, max_percent=100.0)
    d = decide(nodes[3], nodes, s, NOW)
    assert (d.allowed, d.guard) == (False, "RateLimit")
    assert "3 node actions in the last hour" in d.reason and "limit is 3" in d.reason
    assert decide(nodes[3], nodes, settings(max_actions_per_hour=4, max_nodes=100, max_percent=100.0), NOW).allowed


def test_rate_limit_forgets_actions_older_than_an_hour() -> None:
    s = settings(max_actions_per_hour=1, max_nodes=100, max_percent=100.0)
    old = [node("a0", acted_at=NOW - HOUR), node("a1", acted_at=NOW - 2 * HOUR)]
    nodes = [*old, *workers(5)]
    assert decide(nodes[2], nodes, s, NOW).allowed
    just_inside = [node("a0", acted_at=NOW - HOUR + 1), *workers(5)]
    assert decide(just_inside[1], just_inside, s, NOW).guard == "RateLimit"


def test_rate_limit_is_derived_from_node_snapshots_only() -> None:
    # The same snapshots give the same decision however often decide is asked (no memory).
    s = settings(max_actions_per_hour=2, max_nodes=100, max_percent=100.0)
    nodes = [node("a0", acted_at=NOW - 10), *workers(5)]
    first = decide(nodes[1], nodes, s, NOW)
    for _ in range(5):
        assert decide(nodes[1], nodes, s, NOW) == first == GuardDecision(True)


def test_rate_limit_zero_forbids_new_actions() -> None:
    nodes = workers(5)
    d = decide(nodes[0], nodes, settings(max_actions_per_hour=0), NOW)
    assert d.guard == "RateLimit"


# --------------------------------------------------------------------------- decide: rule order


def test_order_excluded_before_everything() -> None:
    cp = node("cp", CP)
    nodes = [cp, node("w0", held=True, acted_at=NOW)]
    s = settings(max_nodes=0, min_schedulable_nodes=100, max_actions_per_hour=0)
    assert decide(cp, nodes, s, NOW).guard == "ExcludedNode"


def test_order_held_before_limits() -> None:
    n = node("w0", held=True, acted_at=NOW)
    s = settings(max_nodes=0, min_schedulable_nodes=100, max_actions_per_hour=0)
    assert decide(n, [n], s, NOW) == GuardDecision(True)


def test_order_max_nodes_before_min_schedulable_and_rate_limit() -> None:
    nodes = [node("h0", held=True, acted_at=NOW), node("w1")]
    s = settings(max_nodes=1, max_percent=100.0, min_schedulable_nodes=100, max_actions_per_hour=0)
    assert decide(nodes[1], nodes, s, NOW).guard == "MaxNodes"


def test_order_min_schedulable_before_rate_limit() -> None:
    nodes = [node("a0", acted_at=NOW), node("w1")]
    s = settings(max_nodes=10, max_percent=100.0, min_schedulable_nodes=100, max_actions_per_hour=0)
    assert decide(nodes[1], nodes, s, NOW).guard == "MinSchedulable"


def test_decision_defaults() -> None:
    d = GuardDecision(True)
    assert (d.allowed, d.guard, d.reason) == (True, "", "")
