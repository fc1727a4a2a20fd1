"""The work queue is fair between namespaces: one tenant's flood does not starve another's next item."""

from __future__ import annotations

import threading
from collections.abc import Hashable

import pytest

from minerguard.services.work import ContainPod, PodGone, ReleaseIncident
from minerguard.workqueue import FairLane, WorkQueue

pytestmark = pytest.mark.unit


def served(setup: list[tuple[str, Hashable]]) -> list[Hashable]:
    """One worker held on a first item while ``setup`` is queued; the order the rest ran in."""
    order: list[Hashable] = []
    started, release, finished = threading.Event(), threading.Event(), threading.Event()
    hold = ContainPod("hold", "hold")
    expected = len({key for _, key in setup})

    def work(key: Hashable) -> None:
        if key == hold:
            started.set()
            assert release.wait(10)
            return
        order.append(key)
        if len(order) == expected:
            finished.set()

    queue = WorkQueue(work, workers=1)
    queue.start()
    try:
        queue.add(hold)
        assert started.wait(10)
        for lane, key in setup:
            (queue.add_low if lane == "low" else queue.add)(key)
        release.set()
        assert finished.wait(10)
    finally:
        queue.stop()
    return order


def test_a_flood_in_one_namespace_does_not_starve_another() -> None:
    flood = [("normal", ContainPod("tenant", f"miner-{i}")) for i in range(200)]
    order = served([*flood, ("normal", ContainPod("other", "miner"))])
    assert order.index(ContainPod("other", "miner")) == 1  # after the flood's first item, not its 200th
    assert [k for k in order if k.namespace == "tenant"] == [k for _, k in flood]  # type: ignore[attr-defined]


def test_namespaces_take_turns_and_keep_their_own_order() -> None:
    setup = [("normal", ContainPod(ns, str(i))) for ns, n in (("a", 3), ("b", 2), ("c", 1)) for i in range(n)]
    order = served(setup)
    assert order == [ContainPod(*k) for k in [("a", "0"), ("b", "0"), ("c", "0"), ("a", "1"), ("b", "1"), ("a", "2")]]


def test_every_kind_of_item_is_fair_and_deduplicated() -> None:
    items = [ContainPod("a", "p"), PodGone("a", "q", "uid"), ReleaseIncident("b", "i"), ContainPod("a", "p")]
    order = served([("normal", item) for item in items])
    assert order == [ContainPod("a", "p"), ReleaseIncident("b", "i"), PodGone("a", "q", "uid")]


def test_the_resync_lane_is_fair_too_and_stays_behind_new_work() -> None:
    resync = [("low", ContainPod("big", str(i))) for i in range(50)] + [("low", ContainPod("small", "0"))]
    order = served([*resync, ("normal", ContainPod("new", "miner"))])
    assert order[0] == ContainPod("new", "miner")
    assert order.index(ContainPod("small", "0")) == 2


def test_the_lane_moves_a_key_out_and_forgets_an_emptied_tenant() -> None:
    lane = FairLane()
    for key in (ContainPod("a", "1"), ContainPod("b", "1"), ContainPod("a", "2")):
        lane.append(key)
    assert ContainPod("b", "1") in lane and len(lane) == 3
    lane.remove(ContainPod("b", "1"))
    assert ContainPod("b", "1") not in lane and len(lane) == 2
    assert [lane.popleft(), lane.popleft()] == [ContainPod("a", "1"), ContainPod("a", "2")]
    assert not lane
    lane.append("no namespace")  # a plain key: one tenant for all
    assert lane.popleft() == "no namespace"
