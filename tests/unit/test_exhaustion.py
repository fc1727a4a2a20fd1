"""Issue #11 item 12: a tenant's large pods, written to in a loop, cost a hash, not an evaluation or a megabyte each."""

from __future__ import annotations

import copy
from collections.abc import Iterator
from typing import Any

import pytest

from minerguard import observability
from minerguard.domain.workload import Workload
from minerguard.services.app import pod_reader
from minerguard.services.state import COMPACT_ABOVE, PodEntry
from minerguard.services.work import ContainPod
from tests.unit.test_containment_service import NS, Operator, build, pod_body, policy_body

pytestmark = pytest.mark.unit


def big_pod(name: str = "big", command: str = "/srv/app", size: int = 256 << 10) -> dict[str, Any]:
    """An unmatched pod with ``size`` characters of env (the soak's pods carry 1 MiB)."""
    body = pod_body(name, command=command)
    body["spec"]["containers"][0]["env"] = [{"name": f"V{i}", "value": "a b c " * 170} for i in range(size // 1024)]
    return body


class Counted:
    """Counts the evaluator's evaluations (every ``matches`` call, the watch side's and the worker's)."""

    def __init__(self, op: Operator) -> None:
        self.calls = 0
        evaluator = op.detector.evaluator
        real = evaluator.matches

        def matches(wl: Workload) -> Any:
            self.calls += 1
            return real(wl)

        evaluator.matches = matches  # type: ignore[method-assign]


@pytest.fixture
def op() -> Iterator[Operator]:
    operator = build()
    operator.detector.read_pod = pod_reader(operator.storage)  # type: ignore[arg-type]
    yield operator


def rewrite(op: Operator, name: str, change: Any) -> None:
    """A tenant's write to the pod (a new resourceVersion), delivered as a watch event."""
    body = copy.deepcopy(op.storage.objects[("Pod", NS, name)])
    change(body)
    op.storage.put("Pod", body)
    op.settle()


def annotate(i: int) -> Any:
    return lambda body: body["metadata"].setdefault("annotations", {}).update({"loop": str(i)})


def entry(op: Operator, name: str) -> PodEntry:
    found = op.state.pod((NS, name))
    assert found is not None
    return found


def test_annotating_an_unmatched_pod_in_a_loop_evaluates_it_zero_times(op: Operator) -> None:
    op.storage.put("Pod", big_pod())
    op.settle()
    counted, skipped = Counted(op), observability.EVALUATIONS_SKIPPED._value.get()
    for i in range(20):
        rewrite(op, "big", annotate(i))
    condition = {"type": "PodScheduled", "status": "False", "reason": "Unschedulable"}
    rewrite(op, "big", lambda body: body.setdefault("status", {}).update({"conditions": [condition]}))
    rewrite(op, "big", lambda body: body["metadata"].update({"managedFields": [{"manager": "tenant"}]}))
    assert counted.calls == 0
    assert observability.EVALUATIONS_SKIPPED._value.get() - skipped == 22
    assert op.storage.total_calls() == 0  # and never written to


@pytest.mark.parametrize(
    "change",
    [
        pytest.param(lambda b: b["spec"]["containers"][0]["env"].append({"name": "N", "value": "v"}), id="env"),
        pytest.param(lambda b: b["spec"]["containers"][0].update({"args": ["--x"]}), id="args"),
        pytest.param(lambda b: b["spec"]["containers"][0].update({"image": "busybox:2"}), id="image"),
        pytest.param(lambda b: b["metadata"]["labels"].update({"tier": "x"}), id="labels"),
    ],
)
def test_a_change_to_what_detection_reads_is_evaluated(op: Operator, change: Any) -> None:
    op.storage.put("Pod", big_pod())
    op.settle()
    counted = Counted(op)
    rewrite(op, "big", change)
    assert counted.calls == 1


def test_a_large_unmatched_pod_is_cached_compact_and_a_small_one_whole(op: Operator) -> None:
    op.storage.put("Pod", big_pod())
    op.storage.put("Pod", pod_body("small", command="nginx"))
    op.settle()
    big, small = entry(op, "big"), entry(op, "small")
    assert big.compact and big.body is None and big.digest
    assert big.workload.containers[0].env == () and big.workload.containers[0].image == "busybox"
    assert sum(len(v) for c in big.workload.containers for _, v in c.env) < COMPACT_ABOVE
    assert not small.compact and small.workload.containers[0].command == ("nginx",)
    assert op.state.compact_pods == 1


def test_a_policy_change_reads_a_compact_pod_again_and_contains_it(op: Operator) -> None:
    quiet = policy_body()
    quiet["spec"]["signals"]["processes"] = [{"glob": "nothing-matches*"}]
    op.detector.observe_policy("MODIFIED", quiet)
    op.storage.put("Pod", big_pod(command="/opt/xmrig"))
    op.settle()
    assert entry(op, "big").compact and entry(op, "big").matched == ()
    op.storage.calls.clear()
    strict = policy_body()
    strict["metadata"]["generation"] = 2
    op.detector.observe_policy("MODIFIED", strict)
    assert op.storage.calls[("get", "Pod")] == 1  # the compact entry's text is read again
    assert entry(op, "big").matched == ("miners",) and not entry(op, "big").compact
    assert ContainPod(NS, "big") in op.queue.items


def test_an_annotated_matched_pod_is_still_verified_without_being_evaluated_on_the_watch(op: Operator) -> None:
    op.storage.put("Pod", pod_body())
    op.settle()
    rewrite(op, "worker-6b7f", annotate(0))  # the first event after the operator's own label write is evaluated
    counted = Counted(op)
    body = copy.deepcopy(op.storage.objects[("Pod", NS, "worker-6b7f")])
    body["metadata"]["annotations"]["tenant"] = "x"
    op.storage.put("Pod", body)
    op.deliver()
    assert counted.calls == 0  # the watch side did not evaluate it
    assert op.queue.items == [ContainPod(NS, "worker-6b7f")]  # but the worker verifies its containment
    assert entry(op, "worker-6b7f").body is not None
    assert entry(op, "worker-6b7f").body["metadata"]["annotations"]["tenant"] == "x"  # type: ignore[index]
