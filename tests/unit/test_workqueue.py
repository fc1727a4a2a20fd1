"""Unit tests for minerguard.workqueue: de-duplication, re-queue while active, retries, stop.

What these tests prove, with real worker threads synchronised by events and condition
waits (generous deadlines, no fixed sleeps, no timing assertions):

* a key queued many times before a worker takes it runs once;
* a key queued again (any number of times) while it is being worked on runs exactly once
  more afterwards, never concurrently with itself;
* a failing key (minerguard error or any other exception) is retried up to
  ``max_retries`` times and then dropped; a success resets the count;
* the back-off doubles from ``base_delay`` up to ``max_delay`` and a retry never runs
  before it is due (checked against a fake clock the test moves by hand);
* ``stop()`` ends every worker, also one that was busy when it was called.
"""

from __future__ import annotations

import itertools
import threading
from collections import Counter
from collections.abc import Callable, Hashable, Iterator

import pytest

from minerguard import workqueue as wq_module
from minerguard.errors import Transient
from minerguard.workqueue import WorkQueue

pytestmark = pytest.mark.unit

DEADLINE = 10.0  # seconds; generous, only ever reached when a test is about to fail
_names = itertools.count()


class Recorder:
    """The work function: records every call, can block or fail per key."""

    def __init__(self) -> None:
        self.cond = threading.Condition()
        self.calls: Counter[Hashable] = Counter()
        self.order: list[Hashable] = []
        self.running: Counter[Hashable] = Counter()
        self.overlaps = 0
        self.block: dict[Hashable, threading.Event] = {}
        self.started: dict[Hashable, threading.Event] = {}
        self.fail: dict[Hashable, int] = {}  # how many more calls of the key fail
        self.error: Callable[[Hashable], Exception] = lambda key: Transient(f"boom {key}")

    def __call__(self, key: Hashable) -> None:
        with self.cond:
            self.running[key] += 1
            if self.running[key] > 1:
                self.overlaps += 1
            if key in self.started:
                self.started[key].set()
        try:
            gate = self.block.get(key)
            if gate is not None:
                assert gate.wait(DEADLINE), f"work on {key} was never released"
            with self.cond:
                failing = self.fail.get(key, 0) > 0
                if failing:
                    self.fail[key] -= 1
            if failing:
                raise self.error(key)
        finally:
            with self.cond:
                self.running[key] -= 1
                self.calls[key] += 1
                self.order.append(key)
                self.cond.notify_all()

    def wait_for(self, predicate: Callable[[], bool], what: str) -> None:
        with self.cond:
            assert self.cond.wait_for(predicate, timeout=DEADLINE), f"timed out waiting for {what}"

    def hold(self, key: Hashable) -> tuple[threading.Event, threading.Event]:
        """Make the next calls of ``key`` block: returns (started, release)."""
        started, release = threading.Event(), threading.Event()
        self.started[key] = started
        self.block[key] = release
        return started, release


class ObservedQueue(WorkQueue):
    """The queue under test, telling the recorder each time it has finished accounting for an item.

    Work itself is observed by the recorder; this hook lets a test wait until the queue has
    also decided what comes next (retry, re-queue or drop), so ``pending()`` is settled.
    """

    def __init__(self, rec: Recorder, **kw: object) -> None:
        super().__init__(rec, **kw)  # type: ignore[arg-type]
        self._rec = rec

    def _done(self, key: Hashable, failed: bool) -> None:
        super()._done(key, failed)
        with self._rec.cond:
            self._rec.cond.notify_all()


@pytest.fixture
def make_queue() -> Iterator[Callable[..., tuple[WorkQueue, Recorder]]]:
    made: list[tuple[WorkQueue, Recorder]] = []

    def make(**kw: object) -> tuple[WorkQueue, Recorder]:
        rec = Recorder()
        kw.setdefault("name", f"test-wq-{next(_names)}")
        q = ObservedQueue(rec, **kw)
        made.append((q, rec))
        return q, rec

    yield make
    for q, rec in made:
        for release in rec.block.values():
            release.set()
        q.stop()


def quiescent(q: WorkQueue) -> bool:
    return q.pending() == 0


def threads_named(prefix: str) -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name.startswith(f"{prefix}-") and t.is_alive()]


# --------------------------------------------------------------------------- de-duplication


def test_every_key_runs_once(make_queue: Callable[..., tuple[WorkQueue, Recorder]]) -> None:
    q, rec = make_queue(workers=4)
    q.start()
    keys = [f"k{i}" for i in range(50)]
    for k in keys:
        q.add(k)
    rec.wait_for(lambda: sum(rec.calls.values()) >= len(keys) and quiescent(q), "all keys")
    assert rec.calls == Counter(dict.fromkeys(keys, 1))


def test_key_queued_many_times_before_start_runs_once(make_queue: Callable[..., tuple[WorkQueue, Recorder]]) -> None:
    q, rec = make_queue(workers=2)
    for _ in range(10):
        q.add("k")
    q.add(("ns", "pod"))
    q.add(("ns", "pod"))
    assert q.pending() == 2
    q.start()
    rec.wait_for(lambda: rec.calls["k"] == 1 and rec.calls[("ns", "pod")] == 1 and quiescent(q), "both keys")
    assert rec.calls == Counter({"k": 1, ("ns", "pod"): 1})


def test_key_queued_many_times_while_workers_are_busy_runs_once(
    make_queue: Callable[..., tuple[WorkQueue, Recorder]],
) -> None:
    q, rec = make_queue(workers=1)
    started, release = rec.hold("busy")
    q.start()
    q.add("busy")
    assert started.wait(DEADLINE)
    for _ in range(20):
        q.add("k")  # the only worker is busy: "k" waits in the queue, once
    release.set()
    rec.wait_for(lambda: rec.calls["k"] >= 1 and quiescent(q), "k")
    q.add("end")
    rec.wait_for(lambda: rec.calls["end"] == 1 and quiescent(q), "end")
    assert rec.calls == Counter({"busy": 1, "k": 1, "end": 1})
    assert rec.order == ["busy", "k", "end"]


def test_keys_run_in_fifo_order_on_one_worker(make_queue: Callable[..., tuple[WorkQueue, Recorder]]) -> None:
    q, rec = make_queue(workers=1)
    for k in ["a", "b", "a", "c", "b"]:
        q.add(k)
    q.start()
    rec.wait_for(lambda: len(rec.order) == 3 and quiescent(q), "three keys")
    assert rec.order == ["a", "b", "c"]


# --------------------------------------------------------------------------- re-queue while active


@pytest.mark.parametrize("workers", [1, 4])
@pytest.mark.parametrize("times", [1, 5])
def test_key_requeued_while_active_runs_exactly_once_more(
    make_queue: Callable[..., tuple[WorkQueue, Recorder]], workers: int, times: int
) -> None:
    q, rec = make_queue(workers=workers)
    started, release = rec.hold("k")
    q.start()
    q.add("k")
    assert started.wait(DEADLINE)
    for _ in range(times):
        q.add("k")  # an update arrives while "k" is being worked on
    del rec.block["k"]  # the second run does not block
    release.set()
    rec.wait_for(lambda: rec.calls["k"] >= 2 and quiescent(q), "the second run")
    # Nothing left: a marker key runs and "k" did not come back a third time.
    q.add("end")
    rec.wait_for(lambda: rec.calls["end"] == 1 and quiescent(q), "end")
    assert rec.calls["k"] == 2
    assert rec.overlaps == 0  # never on two workers at once


def test_same_key_never_runs_concurrently(make_queue: Callable[..., tuple[WorkQueue, Recorder]]) -> None:
    q, rec = make_queue(workers=4)
    started, release = rec.hold("k")
    q.start()
    q.add("k")
    assert started.wait(DEADLINE)
    # Other workers are idle; they must not take "k" while it is active.
    q.add("k")
    q.add("other")
    rec.wait_for(lambda: rec.calls["other"] == 1, "other key")
    assert rec.calls["k"] == 0
    del rec.block["k"]
    release.set()
    rec.wait_for(lambda: rec.calls["k"] == 2 and quiescent(q), "k twice")
    assert rec.overlaps == 0


# --------------------------------------------------------------------------- retries


@pytest.mark.parametrize("max_retries", [0, 1, 3])
def test_failures_are_retried_up_to_max_retries_then_dropped(
    make_queue: Callable[..., tuple[WorkQueue, Recorder]], max_retries: int
) -> None:
    q, rec = make_queue(workers=2, max_retries=max_retries, base_delay=0.001, max_delay=0.002)
    rec.fail["k"] = 1000  # always fails
    q.start()
    q.add("k")
    # pending() stays above zero while a retry is waiting: zero means the queue gave up.
    rec.wait_for(lambda: rec.calls["k"] >= 1 and quiescent(q), "the queue to give up")
    assert rec.calls["k"] == 1 + max_retries


def test_unexpected_exceptions_are_retried_too(make_queue: Callable[..., tuple[WorkQueue, Recorder]]) -> None:
    q, rec = make_queue(workers=1, max_retries=2, base_delay=0.001, max_delay=0.002)
    rec.fail["k"] = 1000
    rec.error = lambda key: RuntimeError(f"bug on {key}")
    q.start()
    q.add("k")
    rec.wait_for(lambda: rec.calls["k"] >= 1 and quiescent(q), "the queue to give up")
    assert rec.calls["k"] == 3


def test_a_key_that_recovers_stops_being_retried(make_queue: Callable[..., tuple[WorkQueue, Recorder]]) -> None:
    q, rec = make_queue(workers=1, max_retries=5, base_delay=0.001, max_delay=0.002)
    rec.fail["k"] = 2
    q.start()
    q.add("k")
    rec.wait_for(lambda: rec.calls["k"] >= 3 and quiescent(q), "recovery")
    assert rec.calls["k"] == 3


def test_success_resets_the_retry_budget(make_queue: Callable[..., tuple[WorkQueue, Recorder]]) -> None:
    q, rec = make_queue(workers=1, max_retries=2, base_delay=0.001, max_delay=0.002)
    rec.fail["k"] = 2  # fails twice, then succeeds: the budget of 2 retries is used up exactly
    q.start()
    q.add("k")
    rec.wait_for(lambda: rec.calls["k"] >= 3 and quiescent(q), "first round")
    assert rec.calls["k"] == 3
    with rec.cond:
        rec.fail["k"] = 2  # a later round gets the full budget again
    q.add("k")
    rec.wait_for(lambda: rec.calls["k"] >= 6 and quiescent(q), "second round")
    assert rec.calls["k"] == 6


def test_a_failing_key_does_not_block_others(make_queue: Callable[..., tuple[WorkQueue, Recorder]]) -> None:
    q, rec = make_queue(workers=1, max_retries=3, base_delay=0.001, max_delay=0.002)
    rec.fail["bad"] = 1000
    q.start()
    q.add("bad")
    for i in range(5):
        q.add(f"good{i}")
    rec.wait_for(lambda: rec.calls["bad"] >= 1 and quiescent(q), "everything")
    assert all(rec.calls[f"good{i}"] == 1 for i in range(5))
    assert rec.calls["bad"] == 4


class FakeClock:
    """Stands in for the ``time`` module inside minerguard.workqueue; moved only by the test."""

    def __init__(self) -> None:
        self.now = 1000.0

    def monotonic(self) -> float:
        return self.now


def test_backoff_doubles_up_to_max_delay_and_never_runs_early(
    make_queue: Callable[..., tuple[WorkQueue, Recorder]], monkeypatch: pytest.MonkeyPatch
) -> None:
    clock = FakeClock()
    monkeypatch.setattr(wq_module, "time", clock)
    q, rec = make_queue(workers=1, max_retries=4, base_delay=10.0, max_delay=25.0)
    rec.fail["k"] = 1000
    probes = itertools.count()

    def probe() -> None:
        """Wake the worker with a ready key and wait for it: due retries run, early ones do not."""
        name = f"probe{next(probes)}"
        q.add(name)
        rec.wait_for(lambda: rec.calls[name] == 1, name)

    q.start()
    q.add("k")
    rec.wait_for(lambda: rec.calls["k"] == 1, "first try")
    probe()  # one worker: once a probe ran, the failure of "k" has been accounted for at this time
    failed_at = clock.now
    for attempt, delay in enumerate([10.0, 20.0, 25.0, 25.0], start=2):
        with rec.cond:
            clock.now = failed_at + delay - 0.5
        probe()
        probe()
        assert rec.calls["k"] == attempt - 1, f"retry {attempt - 1} ran before its back-off of {delay}s"
        with rec.cond:
            clock.now = failed_at + delay
        probe()
        rec.wait_for(lambda attempt=attempt: rec.calls["k"] == attempt, f"try {attempt}")
        probe()
        failed_at = clock.now
    # max_retries (4) used up: the key is dropped, however long we wait.
    rec.wait_for(lambda: quiescent(q), "the queue to give up")
    with rec.cond:
        clock.now += 1e6
    probe()
    probe()
    assert rec.calls["k"] == 5


# --------------------------------------------------------------------------- stop


def test_stop_ends_idle_workers(make_queue: Callable[..., tuple[WorkQueue, Recorder]]) -> None:
    name = f"test-stop-{next(_names)}"
    q, rec = make_queue(workers=3, name=name)
    q.start()
    assert len(threads_named(name)) == 3
    q.add("k")
    rec.wait_for(lambda: rec.calls["k"] == 1, "k")
    q.stop()
    assert threads_named(name) == []


def test_stop_ends_a_busy_worker_after_its_item(make_queue: Callable[..., tuple[WorkQueue, Recorder]]) -> None:
    name = f"test-stop-{next(_names)}"
    q, rec = make_queue(workers=2, name=name)
    started, release = rec.hold("k")
    q.start()
    q.add("k")
    assert started.wait(DEADLINE)
    stopper = threading.Thread(target=q.stop, name="stopper")
    stopper.start()
    release.set()
    stopper.join(DEADLINE)
    assert not stopper.is_alive()
    assert threads_named(name) == []
    assert rec.calls["k"] == 1


def test_stop_before_start_and_twice_is_harmless(make_queue: Callable[..., tuple[WorkQueue, Recorder]]) -> None:
    q, _ = make_queue(workers=1)
    q.stop()
    q.stop()


def test_pending_counts_every_queued_key_once() -> None:
    q = WorkQueue(lambda key: None, workers=1)  # never started
    assert q.pending() == 0
    q.add("a")
    q.add("a")
    q.add("b")
    q.add_low("c")
    assert q.pending() == 3
