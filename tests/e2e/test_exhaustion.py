"""Issue #11 item 12, exhaustion: a tenant annotating a 1 MiB pod in a loop costs no evaluation, and a miner in
another namespace is contained meanwhile. On the real control plane, with an operator process of its own (so its
evaluation counters count this test only)."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from kubernetes import client

from tests.e2e.helpers import eventually, record
from tests.e2e.objects import miner_pod, quarantined
from tests.e2e.operator_proc import OperatorProcess

ANNOTATIONS = 40
EVALUATIONS = "minerguard_evaluation_seconds_count"
SKIPPED = "minerguard_evaluations_skipped_total"


def big_pod(name: str) -> dict[str, Any]:
    """About 1 MiB of benign env, pending for good (no node has the label it asks for)."""
    words = "lorem ipsum dolor sit amet consectetur adipiscing elit sed do eiusmod tempor "
    env = [{"name": f"SETTING_{i}", "value": (words * 13)[:1000]} for i in range(1024)]
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "labels": {"app": name}},
        "spec": {
            "nodeSelector": {"minerguard-test/no-such-node": "true"},
            "containers": [{"name": "app", "image": "registry.example/app:1", "command": ["/srv/app"], "env": env}],
        },
    }


@pytest.fixture
def other_namespace(core: client.CoreV1Api) -> Iterator[str]:
    name = f"exhaustion-other-{uuid.uuid4().hex[:5]}"
    core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=name, labels={"minerguard-test": "1"})))
    eventually(
        lambda: any(sa.metadata.name == "default" for sa in core.list_namespaced_service_account(name).items),
        60,
        f"the default service account in {name}",
    )
    yield name
    core.delete_namespace(name, propagation_policy="Background")


@pytest.fixture
def own_operator(paused_session_operator: None) -> Iterator[OperatorProcess]:
    proc = OperatorProcess(f"exhaustion-{uuid.uuid4().hex[:6]}")
    proc.start()
    yield proc
    proc.stop()


def metric(proc: OperatorProcess, name: str) -> float:
    return proc.metric(name) or 0.0


def annotate(core: client.CoreV1Api, namespace: str, name: str, count: int, hz: float) -> None:
    for i in range(count):
        core.patch_namespaced_pod(name, namespace, {"metadata": {"annotations": {"tenant.example/loop": str(i)}}})
        time.sleep(1 / hz)


def settled(proc: OperatorProcess, name: str, since: float) -> float | None:
    """The counter once it has moved past ``since`` and then stayed put for 2 s (every event of the loop handled)."""
    first = metric(proc, name)
    if first <= since:
        return None
    time.sleep(2)
    return first if metric(proc, name) == first else None


def test_annotating_a_big_unmatched_pod_in_a_loop_evaluates_it_no_more_and_others_are_still_contained(
    own_operator: OperatorProcess,
    core: client.CoreV1Api,
    namespace: str,
    other_namespace: str,
    make_policy: Any,
) -> None:
    make_policy(namespace)
    make_policy(other_namespace)
    core.create_namespaced_pod(namespace, big_pod("big"))
    eventually(lambda: metric(own_operator, "minerguard_pods_compact") >= 1, 60, "the 1 MiB pod cached compact")
    evaluated, skipped = metric(own_operator, EVALUATIONS), metric(own_operator, SKIPPED)

    annotate(core, namespace, "big", ANNOTATIONS, hz=20)
    eventually(lambda: settled(own_operator, SKIPPED, skipped), 60, "the annotation events handled")
    loop_evaluations = metric(own_operator, EVALUATIONS) - evaluated
    loop_skipped = metric(own_operator, SKIPPED) - skipped
    # Pods of earlier tests' namespaces still going away may be evaluated meanwhile: a few, never one per annotation.
    assert loop_evaluations <= 4, f"{loop_evaluations} evaluations during {ANNOTATIONS} annotations of an unmatched pod"
    assert loop_skipped >= ANNOTATIONS / 4  # kopf may batch events that come within 10 ms; most are their own

    # The same loop again, with a miner started in another namespace while it runs.
    loop = threading.Thread(target=annotate, args=(core, namespace, "big", ANNOTATIONS, 20), daemon=True)
    loop.start()
    time.sleep(0.5)
    started = time.monotonic()
    core.create_namespaced_pod(other_namespace, miner_pod("miner"))
    eventually(lambda: quarantined(core, other_namespace, "miner"), 30, "the miner in the other namespace quarantined")
    contained_after = time.monotonic() - started
    loop.join(timeout=30)

    pod = core.read_namespaced_pod("big", namespace)
    managers = {m.manager for m in pod.metadata.managed_fields or []}
    assert not any("minerguard" in (m or "") or "kopf" in (m or "") for m in managers), managers
    assert not any(k.startswith(("minerguard.io", "kopf.")) for k in (pod.metadata.annotations or {}))
    rss_kib = 0
    if own_operator.proc is not None:
        with open(f"/proc/{own_operator.proc.pid}/status") as status:
            rss_kib = next(int(line.split()[1]) for line in status if line.startswith("VmRSS:"))
    record(
        "test_annotating_a_big_unmatched_pod_in_a_loop_evaluates_it_no_more_and_others_are_still_contained",
        annotations=ANNOTATIONS,
        evaluations_during_loop=loop_evaluations,
        skipped_during_loop=loop_skipped,
        miner_contained_s=round(contained_after, 2),
        operator_rss_mib=round(rss_kib / 1024, 1),
    )


DEFERRED = "minerguard_evaluations_deferred_total"
NEW_BIG_PODS = 12


def test_a_tenants_new_megabyte_pods_are_evaluated_off_the_watch_and_a_miner_next_door_is_contained(
    own_operator: OperatorProcess,
    core: client.CoreV1Api,
    namespace: str,
    other_namespace: str,
    make_policy: Any,
) -> None:
    """The tenant creates megabyte pods (one of them a miner under its megabyte of env) while a small miner starts
    in another namespace: every big pod goes to the evaluation backlog, the big miner is still contained from
    there, the small one from the watch, and no benign pod is written to."""
    make_policy(namespace)
    make_policy(other_namespace)
    deferred = metric(own_operator, DEFERRED)
    big_miner = big_pod("big-miner")
    big_miner["spec"]["containers"][0]["command"] = ["xmrig"]
    big_miner["spec"]["containers"][0]["args"] = ["-o", "stratum+tcp://pool.example:3333"]

    def flood() -> None:
        for i in range(NEW_BIG_PODS - 1):
            core.create_namespaced_pod(namespace, big_pod(f"big-{i:02d}"))
        core.create_namespaced_pod(namespace, big_miner)

    creating = threading.Thread(target=flood, daemon=True)
    creating.start()
    eventually(lambda: metric(own_operator, DEFERRED) > deferred, 60, "the first big pod handed to the backlog")
    started = time.monotonic()
    core.create_namespaced_pod(other_namespace, miner_pod("miner"))
    eventually(lambda: quarantined(core, other_namespace, "miner"), 30, "the miner in the other namespace quarantined")
    contained_after = time.monotonic() - started
    backlog_then = metric(own_operator, "minerguard_evaluation_backlog_pods")
    creating.join(timeout=120)
    assert not creating.is_alive()

    eventually(
        lambda: quarantined(core, namespace, "big-miner"), 120, "the megabyte miner quarantined from the backlog"
    )
    assert metric(own_operator, DEFERRED) - deferred >= NEW_BIG_PODS  # each big pod went to the backlog
    for i in range(NEW_BIG_PODS - 1):
        pod = core.read_namespaced_pod(f"big-{i:02d}", namespace)
        managers = {m.manager for m in pod.metadata.managed_fields or []}
        assert not any("minerguard" in (m or "") for m in managers), managers
        assert not any(k.startswith("minerguard.io") for k in (pod.metadata.labels or {}))
    record(
        "test_a_tenants_new_megabyte_pods_are_evaluated_off_the_watch_and_a_miner_next_door_is_contained",
        big_pods=NEW_BIG_PODS,
        small_miner_contained_s=round(contained_after, 2),
        backlog_pods_when_contained=backlog_then,
    )
