"""The evict action (issue #11 item 7): hostNetwork miners, which NetworkPolicy cannot cut off, are deleted.

Over FakeStorage: the default fallback from quarantine, the evidence written before the pod goes,
the guards (excluded namespaces, the hourly limit counted from the incidents), dry-run and a pod
replaced under the same name.
"""

from __future__ import annotations

import time
from dataclasses import replace

import pytest

from minerguard.config import GuardSettings, Settings
from minerguard.domain import incidents as inc
from minerguard.services.containment import evictions_since
from tests.unit.test_containment_service import NS, build, pod_body, policy_body

pytestmark = pytest.mark.unit


def actions_of(status: dict) -> dict[str, str]:  # type: ignore[type-arg]
    return {a["action"]: a["result"] for a in status.get("actions") or []}


def test_a_host_network_miner_is_evicted_by_default_with_its_evidence_kept() -> None:
    op = build()
    op.storage.put("Pod", pod_body(hostNetwork=True))
    op.deliver()
    op.drain()
    assert ("Pod", NS, "worker-6b7f") not in op.storage.objects
    assert op.storage.calls[("delete", "Pod")] == 1
    assert ("patch", "Pod") not in op.storage.calls  # no label on a pod that is going
    status = op.incident("pod-worker-6b7f")["status"]
    assert status["evidence"], status
    assert actions_of(status) == {"evict": "Succeeded"}  # in place of quarantine, which cannot cut it off
    assert status["pods"][0]["state"] == inc.POD_DELETED
    assert status["state"] == inc.ENDED
    assert op.storage.reasons() == ["MinerDetected", "MinerDetected", "PodEvicted"]
    # The evidence was written before the delete: the first status write came first.
    assert op.storage.calls[("update", "MinerIncident")] == 2


def test_an_eviction_is_planned_only_in_dry_run() -> None:
    op = build(settings=replace(Settings(), dry_run=True))
    op.storage.put("Pod", pod_body(hostNetwork=True))
    op.settle()
    assert ("Pod", NS, "worker-6b7f") in op.storage.objects
    assert ("delete", "Pod") not in op.storage.calls
    assert actions_of(op.incident("pod-worker-6b7f")["status"])["evict"] == "DryRun"


def test_evict_is_held_back_in_excluded_namespaces() -> None:
    guards = replace(GuardSettings(), evict_excluded_namespaces=f"kube-system, {NS}")
    op = build(settings=replace(Settings(), guards=guards))
    op.storage.put("Pod", pod_body(hostNetwork=True))
    op.settle()
    assert ("Pod", NS, "worker-6b7f") in op.storage.objects
    status = op.incident("pod-worker-6b7f")["status"]
    assert actions_of(status)["evict"] == "Suppressed"
    assert "ExcludedNamespace" in status["message"]
    assert "ContainmentSuppressed" in op.storage.reasons()


def test_evictions_are_limited_per_hour_counted_from_the_incidents() -> None:
    guards = replace(GuardSettings(), max_evictions_per_hour=1)
    op = build(settings=replace(Settings(), guards=guards))
    op.storage.put("Pod", pod_body("first", hostNetwork=True))
    op.settle()
    op.storage.put("Pod", pod_body("second", hostNetwork=True))
    op.settle()
    assert ("Pod", NS, "first") not in op.storage.objects
    assert ("Pod", NS, "second") in op.storage.objects
    assert actions_of(op.incident("pod-second")["status"])["evict"] == "Suppressed"
    assert evictions_since(op.state.incident_bodies(), time.time() - 3600) == 1
    assert evictions_since(op.state.incident_bodies(), time.time() + 60) == 0


def test_a_policy_may_ask_for_evict_for_any_pod() -> None:
    op = build(policy=policy_body(actions=[{"name": "evict"}]))
    op.storage.put("Pod", pod_body())
    op.settle()
    assert ("Pod", NS, "worker-6b7f") not in op.storage.objects
    assert actions_of(op.incident("pod-worker-6b7f")["status"]) == {"evict": "Succeeded"}


def test_a_pod_replaced_under_the_same_name_is_not_deleted() -> None:
    op = build(policy=policy_body(actions=[{"name": "evict"}]))
    op.storage.put("Pod", pod_body())
    op.deliver()
    replaced = pod_body()
    replaced["metadata"]["uid"] = "uid-new"
    replaced["spec"]["containers"][0]["command"] = ["nginx"]
    op.storage.put("Pod", replaced)  # replaced before the worker ran, the watch not told yet
    op.drain()
    assert op.storage.objects[("Pod", NS, "worker-6b7f")]["metadata"]["uid"] == "uid-new"
