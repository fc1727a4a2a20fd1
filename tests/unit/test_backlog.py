"""Issue #11 item 12: a tenant's megabyte pods are evaluated off the watch's event loop, fairly, in bounded memory."""

from __future__ import annotations

import copy
import time
from collections.abc import Iterator
from typing import Any

import pytest

from minerguard.services.app import pod_reader
from minerguard.services.backlog import DEFER_ABOVE, Backlog, EvaluatePod
from minerguard.services.work import ContainPod
from tests.unit.test_containment_service import NS, ListQueue, Operator, build, pod_body
from tests.unit.test_exhaustion import Counted, big_pod

pytestmark = pytest.mark.unit


def wire(op: Operator, backlog: Backlog) -> Backlog:
    backlog.evaluate = op.detector.evaluate_deferred
    backlog.read_pod = pod_reader(op.storage)  # type: ignore[arg-type]
    backlog.forget_pod = op.state.drop_pod
    op.detector.backlog = backlog
    return backlog


@pytest.fixture
def op() -> Iterator[Operator]:
    yield build()


@pytest.fixture
def waiting(op: Operator) -> Iterator[ListQueue]:
    """The backlog's queue as a list the test runs in order (no thread)."""
    queue = ListQueue()
    wire(op, Backlog(queue=queue))
    yield queue


def run_backlog(op: Operator, queue: ListQueue) -> int:
    runs = 0
    backlog = op.detector.backlog
    assert backlog is not None
    while queue.items:
        backlog.run(queue.items.pop(0))
        runs += 1
    return runs


def in_namespace(body: dict[str, Any], namespace: str) -> dict[str, Any]:
    body["metadata"]["namespace"] = namespace
    return body


def test_a_large_pod_is_evaluated_by_the_backlog_not_on_the_watch(op: Operator, waiting: ListQueue) -> None:
    counted = Counted(op)
    op.storage.put("Pod", big_pod("big-miner", command="/opt/xmrig"))
    op.deliver()
    assert counted.calls == 0 and op.queue.items == []  # the watch side only parsed and hashed it
    assert waiting.items == [EvaluatePod(NS, "big-miner")]
    assert op.state.pod((NS, "big-miner")) is None
    assert run_backlog(op, waiting) == 1
    assert counted.calls == 1
    assert op.queue.items == [ContainPod(NS, "big-miner")]  # matched: contained by the worker as any miner
    entry = op.state.pod((NS, "big-miner"))
    assert entry is not None and entry.matched == ("miners",)


def test_a_small_miner_is_queued_at_once_while_a_tenants_flood_waits(op: Operator, waiting: ListQueue) -> None:
    for i in range(30):
        op.storage.put("Pod", in_namespace(big_pod(f"big-{i:02d}"), "tenant"))
    op.deliver()
    assert len(waiting.items) == 30
    op.storage.put("Pod", pod_body("worker-6b7f"))
    op.deliver()
    assert op.queue.items == [ContainPod(NS, "worker-6b7f")]  # evaluated on the watch, ahead of all 30
    assert len(waiting.items) == 30


def test_the_backlog_takes_namespaces_in_turn(op: Operator) -> None:
    """A real worker thread: a tenant's 20 large pods queued first, then another namespace's one large miner."""
    order: list[str] = []
    backlog = wire(op, Backlog())
    evaluate = backlog.evaluate
    assert evaluate is not None

    def recording(pod: dict[str, Any], again: bool) -> None:
        order.append(pod["metadata"]["namespace"])
        evaluate(pod, again)

    backlog.evaluate = recording
    for i in range(20):
        op.storage.put("Pod", in_namespace(big_pod(f"big-{i:02d}"), "tenant"))
    op.storage.put("Pod", big_pod("big-miner", command="/opt/xmrig"))
    op.deliver()
    backlog.start()
    try:
        deadline = time.monotonic() + 60
        while len(order) < 21 and time.monotonic() < deadline:
            time.sleep(0.01)
    finally:
        backlog.stop()
    assert len(order) == 21
    assert order.index(NS) <= 1  # the tenant's 20 pods delayed the other namespace by at most one evaluation


def test_later_events_replace_the_waiting_body_and_it_is_evaluated_once(op: Operator, waiting: ListQueue) -> None:
    counted = Counted(op)
    op.storage.put("Pod", big_pod("big"))
    op.deliver()
    for i in range(5):
        body = copy.deepcopy(op.storage.objects[("Pod", NS, "big")])
        body["spec"]["containers"][0]["args"] = [f"--round={i}"]
        op.storage.put("Pod", body)
        op.deliver()
    assert waiting.items == [EvaluatePod(NS, "big")]
    run_backlog(op, waiting)
    assert counted.calls == 1
    entry = op.state.pod((NS, "big"))
    assert entry is not None
    assert entry.resource_version == op.storage.objects[("Pod", NS, "big")]["metadata"]["resourceVersion"]


def test_a_small_event_of_a_pod_that_waits_waits_behind_it(op: Operator, waiting: ListQueue) -> None:
    """Its events are taken in order: the big body waiting is not evaluated after a newer small one."""
    op.storage.put("Pod", big_pod("shrinking"))
    op.deliver()
    body = copy.deepcopy(op.storage.objects[("Pod", NS, "shrinking")])
    body["spec"]["containers"][0]["env"] = []
    body["spec"]["containers"][0]["command"] = ["/opt/xmrig"]
    op.storage.put("Pod", body)
    op.deliver()
    assert op.state.pod((NS, "shrinking")) is None and op.queue.items == []
    run_backlog(op, waiting)
    entry = op.state.pod((NS, "shrinking"))
    assert entry is not None and entry.matched == ("miners",) and not entry.compact


def test_over_budget_pods_wait_as_keys_and_are_read_again(op: Operator) -> None:
    queue = ListQueue()
    wire(op, Backlog(budget=300 << 10, queue=queue))
    op.storage.put("Pod", big_pod("first"))  # 256 KiB: fits
    op.storage.put("Pod", big_pod("second", command="/opt/xmrig"))  # does not: waits as its key
    op.deliver()
    op.storage.calls.clear()
    run_backlog(op, queue)
    assert op.storage.calls[("get", "Pod")] == 1  # only the one over budget was read again
    second = op.state.pod((NS, "second"))
    assert second is not None and second.matched == ("miners",)
    assert ContainPod(NS, "second") in op.queue.items


def test_a_failed_read_again_waits_again(op: Operator) -> None:
    queue = ListQueue()
    backlog = wire(op, Backlog(budget=0, queue=queue))
    read = backlog.read_pod
    failures = [RuntimeError("the apiserver is away")]

    def flaky(namespace: str, name: str) -> dict[str, Any] | None:
        if failures:
            raise failures.pop()
        assert read is not None
        return read(namespace, name)

    backlog.read_pod = flaky
    op.storage.put("Pod", big_pod("big-miner", command="/opt/xmrig"))
    op.deliver()
    item = queue.items.pop(0)
    with pytest.raises(RuntimeError):
        backlog.run(item)  # the work queue retries it
    assert backlog.holds((NS, "big-miner"))
    backlog.run(item)
    assert ContainPod(NS, "big-miner") in op.queue.items


def test_a_pod_deleted_while_it_waits_is_never_evaluated(op: Operator, waiting: ListQueue) -> None:
    counted = Counted(op)
    op.storage.put("Pod", big_pod("big"))
    op.deliver()
    body = op.storage.objects.pop(("Pod", NS, "big"))
    op.detector.observe_pod("DELETED", body)
    run_backlog(op, waiting)
    assert counted.calls == 0 and op.state.pod((NS, "big")) is None


def test_a_pod_deleted_during_its_evaluation_is_not_left_in_the_cache(op: Operator, waiting: ListQueue) -> None:
    op.storage.put("Pod", big_pod("big-miner", command="/opt/xmrig"))
    op.deliver()
    evaluator = op.detector.evaluator
    real = evaluator.matches

    def deleted_meanwhile(wl: Any) -> Any:
        body = op.storage.objects.pop(("Pod", NS, "big-miner"))
        op.detector.observe_pod("DELETED", body)  # the watch thread, while the backlog's worker evaluates
        return real(wl)

    evaluator.matches = deleted_meanwhile  # type: ignore[method-assign]
    run_backlog(op, waiting)
    assert op.state.pod((NS, "big-miner")) is None


def test_a_configmap_change_of_a_large_pod_is_evaluated_though_its_version_is_known(
    op: Operator, waiting: ListQueue
) -> None:
    op.storage.put("Pod", big_pod("big"))
    op.deliver()
    run_backlog(op, waiting)
    counted = Counted(op)
    op.detector.observe_pod("MODIFIED", copy.deepcopy(op.storage.objects[("Pod", NS, "big")]), again=True)
    assert counted.calls == 0 and len(waiting.items) == 1
    run_backlog(op, waiting)
    assert counted.calls == 1


def test_pods_at_or_under_the_threshold_stay_on_the_watch(op: Operator, waiting: ListQueue) -> None:
    body = pod_body("edge")
    body["spec"]["containers"][0]["env"] = [{"name": "V", "value": "x" * (DEFER_ABOVE - len("V") - len("/opt/xmrig"))}]
    op.storage.put("Pod", body)
    op.deliver()
    assert waiting.items == [] and op.queue.items == [ContainPod(NS, "edge")]


def test_without_a_backlog_every_pod_is_evaluated_inline(op: Operator) -> None:
    counted = Counted(op)
    op.storage.put("Pod", big_pod("big-miner", command="/opt/xmrig"))
    op.deliver()
    assert counted.calls == 1 and op.queue.items == [ContainPod(NS, "big-miner")]


def test_the_thread_and_the_watch_share_the_backlog_safely(op: Operator) -> None:
    """Events delivered while the worker runs: every pod ends evaluated exactly on its latest body."""
    backlog = wire(op, Backlog())
    backlog.start()
    try:
        for round_ in range(3):
            for i in range(10):
                key = ("Pod", "tenant", f"big-{i}")
                body = copy.deepcopy(op.storage.objects[key]) if key in op.storage.objects else None
                body = body or in_namespace(big_pod(f"big-{i}"), "tenant")
                body["spec"]["containers"][0]["args"] = [f"--round={round_}"]
                op.storage.put("Pod", body)
            op.deliver()
        deadline = time.monotonic() + 60
        while any(backlog.holds(("tenant", f"big-{i}")) for i in range(10)) and time.monotonic() < deadline:
            time.sleep(0.01)
    finally:
        backlog.stop()
    for i in range(10):
        entry = op.state.pod(("tenant", f"big-{i}"))
        assert entry is not None
        assert (
            entry.resource_version == op.storage.objects[("Pod", "tenant", f"big-{i}")]["metadata"]["resourceVersion"]
        )


def test_the_worker_rests_as_long_as_it_evaluated(op: Operator, waiting: ListQueue) -> None:
    """At most half of the time evaluating: the watch's event loop gets the interpreter the other half."""
    rests: list[float] = []
    ticks = iter([10.0, 10.25, 20.0, 20.5])
    backlog = wire(op, Backlog(queue=waiting, rest=rests.append, clock=lambda: next(ticks)))
    op.storage.put("Pod", big_pod("one"))
    op.storage.put("Pod", big_pod("two"))
    op.deliver()
    run_backlog(op, waiting)
    assert rests == [0.25, 0.5]
    assert backlog.duty == 0.5


def test_a_large_pod_is_not_even_parsed_on_the_watch(op: Operator, waiting: ListQueue) -> None:
    parsed: list[str] = []
    evaluator = op.detector.evaluator
    real = evaluator.workload

    def workload(pod: dict[str, Any]) -> Any:
        parsed.append(pod["metadata"]["name"])
        return real(pod)

    evaluator.workload = workload  # type: ignore[method-assign]
    op.storage.put("Pod", big_pod("big"))
    op.storage.put("Pod", pod_body("small", command="nginx"))
    op.deliver()
    assert parsed == ["small"]  # the big one: a count of its characters, then the backlog
    run_backlog(op, waiting)
    assert parsed == ["small", "big"]


def test_a_quarantined_large_pod_is_kept_up_on_the_watch_while_its_namespace_floods(
    op: Operator, waiting: ListQueue
) -> None:
    """The tenant takes the label off her quarantined megabyte miner while 20 of her megabyte pods wait:
    its upkeep is queued at once, not behind them."""
    op.storage.put("Pod", big_pod("big-miner", command="/opt/xmrig"))
    op.deliver()
    run_backlog(op, waiting)
    op.drain()
    op.settle()
    body = op.storage.objects[("Pod", NS, "big-miner")]
    assert body["metadata"]["labels"].get("minerguard.io/quarantined") == "true"
    for i in range(20):
        op.storage.put("Pod", big_pod(f"flood-{i:02d}"))
    op.deliver()
    assert len(waiting.items) == 20
    undone = copy.deepcopy(body)
    del undone["metadata"]["labels"]["minerguard.io/quarantined"]
    op.storage.put("Pod", undone)
    op.deliver()
    assert op.queue.items == [ContainPod(NS, "big-miner")]
    assert EvaluatePod(NS, "big-miner") not in waiting.items
    op.drain()
    assert op.storage.objects[("Pod", NS, "big-miner")]["metadata"]["labels"]["minerguard.io/quarantined"] == "true"
