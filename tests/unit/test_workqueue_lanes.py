"""The work queue's two lanes: a new miner is never queued behind the resync of contained pods."""

from __future__ import annotations

import threading
from collections.abc import Hashable

import pytest

from minerguard.workqueue import WorkQueue

pytestmark = pytest.mark.unit


def run_in_order(setup: list[tuple[str, str]]) -> list[Hashable]:
    """One worker, held on a first key while ``setup`` is queued; returns the order the rest ran in."""
    order: list[Hashable] = []
    started, release, finished = threading.Event(), threading.Event(), threading.Event()
    expected = 1 + len({key for _, key in setup})

    def work(key: Hashable) -> None:
        if key == "hold":
            started.set()
            assert release.wait(10)
        else:
            order.append(key)
        if len(order) == expected - 1:
            finished.set()

    queue = WorkQueue(work, workers=1)
    queue.start()
    try:
        queue.add("hold")
        assert started.wait(10)
        for lane, key in setup:
            (queue.add_low if lane == "low" else queue.add)(key)
        release.set()
        assert finished.wait(10)
    finally:
        queue.stop()
    return order


def test_normal_keys_run_before_low_ones_queued_earlier() -> None:
    order = run_in_order([("low", "resync-1"), ("low", "resync-2"), ("normal", "new-miner")])
    assert order == ["new-miner", "resync-1", "resync-2"]


def test_a_low_key_added_normally_moves_up_and_runs_once() -> None:
    order = run_in_order([("low", "a"), ("low", "b"), ("normal", "b")])
    assert order == ["b", "a"]


def test_add_low_never_demotes_a_normal_key() -> None:
    order = run_in_order([("low", "a"), ("normal", "b"), ("low", "b")])
    assert order == ["b", "a"]
