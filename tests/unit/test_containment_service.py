"""Unit tests for the containment services (detector, worker, recorder, release, events) over FakeStorage.

The services run as the operator runs them, on an in-memory storage that answers like the
apiserver (resourceVersions, 404, 409) and counts every call; watch events are delivered by hand
from what the storage holds, so the echo of the operator's own writes is part of each test.
"""

from __future__ import annotations

import copy
from collections.abc import Hashable, Iterator
from dataclasses import dataclass, field, replace
from typing import Any

import pytest

from minerguard.actions.guard import NodeGuard
from minerguard.config import GuardSettings, Settings
from minerguard.domain import incidents as inc
from minerguard.domain import netpol
from minerguard.domain.detection import Verdict
from minerguard.domain.workload import Workload
from minerguard.errors import Conflict, Forbidden, NotFound
from minerguard.services.containment import Containment
from minerguard.services.detector import Detector, Evaluator
from minerguard.services.events import Events
from minerguard.services.foothold import Footholds
from minerguard.services.policies import PolicyRegistry
from minerguard.services.recorder import Recorder
from minerguard.services.release import Releaser
from minerguard.services.state import ClusterState
from tests.fakes import FakeStorage

pytestmark = pytest.mark.unit

NS = "payments"


class ListQueue:
    """The work queue's add/add_low, kept in a list that the test drains in order."""

    def __init__(self) -> None:
        self.items: list[Hashable] = []

    def add(self, item: Hashable) -> None:
        if item not in self.items:
            self.items.append(item)

    def add_low(self, item: Hashable) -> None:
        self.add(item)


@dataclass
class Operator:
    storage: FakeStorage
    state: ClusterState
    detector: Detector
    containment: Containment
    queue: ListQueue
    seen: dict[tuple[str, str, str], str] = field(default_factory=dict)

    def drain(self) -> None:
        while self.queue.items:
            self.containment._process(self.queue.items.pop(0))

    def deliver(self) -> None:
        """Send the watch events for every object whose resourceVersion changed since the last delivery."""
        for key, body in list(self.storage.objects.items()):
            rv = body["metadata"]["resourceVersion"]
            if self.seen.get(key) == rv:
                continue
            event = "ADDED" if key not in self.seen else "MODIFIED"
            self.seen[key] = rv
            body = copy.deepcopy(body)
            if key[0] == "Pod":
                self.detector.observe_pod(event, body)
            elif key[0] == "NetworkPolicy":
                self.detector.observe_network_policy(event, body)
            elif key[0] == "MinerIncident":
                self.detector.observe_incident(event, body)

    def settle(self) -> None:
        """Deliver events and drain the queue until nothing changes."""
        for _ in range(10):
            self.deliver()
            if not self.queue.items:
                return
            self.drain()
        raise AssertionError("the operator did not settle")

    def incident(self, name: str) -> dict[str, Any]:
        return self.storage.objects[("MinerIncident", NS, name)]

    def matched(self, pod: str) -> tuple[Workload, dict[str, Any], list[Verdict]]:
        """The pod as stored, its workload view and its verdicts: what the worker contains."""
        body = copy.deepcopy(self.storage.objects[("Pod", NS, pod)])
        wl = self.containment.evaluator.workload(body)
        return wl, body, self.containment.evaluator.matches(wl)


def policy_body(mode: str = "Enforce", actions: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    return {
        "apiVersion": "minerguard.io/v1alpha1",
        "kind": "MinerPolicy",
        "metadata": {"name": "miners", "generation": 1, "uid": "policy-uid"},
        "spec": {
            "mode": mode,
            "actions": actions if actions is not None else [{"name": "quarantine"}],
            "signals": {"processes": [{"glob": "xmrig*"}]},
        },
    }


def pod_body(name: str = "worker-6b7f", command: str = "/opt/xmrig", **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "namespace": NS, "uid": f"uid-{name}", "labels": {"app": name}},
        "spec": {"nodeName": "node-1", "containers": [{"name": "c", "image": "busybox", "command": [command]}], **spec},
    }


def build(
    settings: Settings | None = None, policy: dict[str, Any] | None = None, storage: FakeStorage | None = None
) -> Operator:
    """The services over ``storage`` (a new FakeStorage by default: another process on the same one is a restart)."""
    storage = storage or FakeStorage()
    settings = settings or replace(Settings(), enabled_actions=frozenset({"scaleOwner"}))
    body = policy or policy_body()
    if ("MinerPolicy", "", "miners") not in storage.objects:
        storage.put("MinerPolicy", body)
    state = ClusterState()
    events = Events(storage)  # type: ignore[arg-type]
    policies = PolicyRegistry(storage, events)  # type: ignore[arg-type]
    policies.observe(storage.objects[("MinerPolicy", "", "miners")])
    guard = NodeGuard(storage, settings.guards)  # type: ignore[arg-type]
    recorder = Recorder(storage, state, events)  # type: ignore[arg-type]
    releaser = Releaser(storage, settings, guard, recorder, events)  # type: ignore[arg-type]
    evaluator = Evaluator(state, policies)
    footholds = Footholds(storage)  # type: ignore[arg-type]
    containment = Containment(
        storage,  # type: ignore[arg-type]
        settings,
        state,
        evaluator,
        recorder,
        releaser,
        guard=guard,
        footholds=footholds,
    )
    queue = ListQueue()
    detector = Detector(evaluator, state, queue)  # type: ignore[arg-type]
    containment.list_incidents()  # as the operator does at start
    storage.calls.clear()
    storage.order.clear()
    return Operator(storage, state, detector, containment, queue)


@pytest.fixture
def op() -> Iterator[Operator]:
    yield build()


def calls(op: Operator) -> dict[tuple[str, str], int]:
    return dict(op.storage.calls)


# ------------------------------------------------------------------ the hot path


def test_an_unmatched_pod_costs_no_call_at_all(op: Operator) -> None:
    op.storage.put("Pod", pod_body("web", command="nginx"))
    op.settle()
    assert op.storage.total_calls() == 0
    assert op.storage.events == []


def test_a_new_miner_costs_eight_calls_and_the_reviews_after_the_cut_and_its_echo_none(op: Operator) -> None:
    op.storage.put("Pod", pod_body())
    op.deliver()
    op.drain()
    assert calls(op) == {
        ("create", "MinerIncident"): 1,
        ("create", "NetworkPolicy"): 1,
        ("patch", "Namespace"): 1,  # marked as holding quarantined pods, for the admission policy
        ("patch", "Pod"): 1,
        ("create", "Event"): 3,
        ("update", "MinerIncident"): 1,
        ("create", "SubjectAccessReview"): 12,  # the foothold: once per ServiceAccount, after the cut (below)
    }
    order = op.storage.order
    cut = max(order.index(("patch", "Pod")), order.index(("create", "NetworkPolicy")))
    assert all(i > cut for i, call in enumerate(order) if call == ("create", "SubjectAccessReview"))
    assert op.storage.reasons() == ["MinerDetected", "MinerDetected", "PodQuarantined"]
    before = op.storage.total_calls()
    op.settle()  # the watch echoes of the pod patch, the NetworkPolicy and the incident writes
    assert op.storage.total_calls() == before
    pod = op.storage.objects[("Pod", NS, "worker-6b7f")]
    assert pod["metadata"]["labels"][netpol.QUARANTINE_LABEL] == "true"
    assert op.incident("pod-worker-6b7f")["status"]["state"] == inc.CONTAINED


def test_a_second_miner_in_a_quarantined_namespace_costs_six_calls(op: Operator) -> None:
    """The deny-all and the namespace mark are per namespace: the next miner there costs only its own writes."""
    op.storage.put("Pod", pod_body())
    op.settle()
    before = dict(op.storage.calls)
    op.storage.put("Pod", pod_body("worker-9c2d"))
    op.settle()
    after = {k: v - before.get(k, 0) for k, v in op.storage.calls.items() if v != before.get(k, 0)}
    assert after == {
        ("create", "MinerIncident"): 1,
        ("patch", "Pod"): 1,
        ("create", "Event"): 3,
        ("update", "MinerIncident"): 1,
    }


def test_a_pod_contained_before_it_is_scheduled_costs_one_write_to_record_its_node(op: Operator) -> None:
    """Contained within milliseconds, a pod is often not placed yet; where it ran is evidence (its node may be the
    compromised host), so the scheduler's binding costs exactly one incident status write, and nothing else."""
    body = pod_body()
    del body["spec"]["nodeName"]
    op.storage.put("Pod", body)
    op.settle()
    before = dict(op.storage.calls)
    op.storage._patch("Pod", NS, "worker-6b7f", {"status": {"phase": "Pending"}})  # a status update: nothing to do
    op.settle()
    assert dict(op.storage.calls) == before
    op.storage.objects[("Pod", NS, "worker-6b7f")]["spec"]["nodeName"] = "node-1"  # the scheduler binds it
    op.storage.put("Pod", op.storage.objects[("Pod", NS, "worker-6b7f")])
    op.settle()
    after = {k: v - before.get(k, 0) for k, v in op.storage.calls.items() if v != before.get(k, 0)}
    assert after == {("update", "MinerIncident"): 1}
    assert op.incident("pod-worker-6b7f")["status"]["pods"][0]["node"] == "node-1"
    assert op.incident("pod-worker-6b7f")["status"]["foothold"]["where"]["node"] == "node-1"  # in the same write


def test_a_resync_of_a_contained_pod_makes_no_call(op: Operator) -> None:
    op.storage.put("Pod", pod_body())
    op.settle()
    before = op.storage.total_calls()
    op.detector.resync()
    op.settle()
    assert op.storage.total_calls() == before


def test_policy_and_namespace_events_evaluate_the_cached_pods_again(op: Operator) -> None:
    op.storage.put("Pod", pod_body())
    op.settle()
    assert op.state.pod((NS, "worker-6b7f")).matched == ("miners",)  # type: ignore[union-attr]
    op.detector.observe_policy("DELETED", op.storage.objects[("MinerPolicy", "", "miners")])
    assert op.state.pod((NS, "worker-6b7f")).matched == ()  # type: ignore[union-attr]
    namespace = {"metadata": {"name": NS, "labels": {"team": "payments"}}}
    op.detector.observe_namespace("ADDED", namespace)
    assert op.state.namespace_labels(NS) == {"team": "payments"}
    op.detector.observe_namespace("DELETED", namespace)
    assert op.state.namespace_labels(NS) is None


# ------------------------------------------------------------------ the tenant fights back


def test_a_removed_label_is_restored_and_told_as_tampering(op: Operator) -> None:
    op.storage.put("Pod", pod_body())
    op.settle()
    op.storage.patch_pod_metadata(NS, "worker-6b7f", {netpol.QUARANTINE_LABEL: None}, {})  # the tenant
    op.storage.calls.clear()
    op.settle()
    pod = op.storage.objects[("Pod", NS, "worker-6b7f")]
    assert pod["metadata"]["labels"][netpol.QUARANTINE_LABEL] == "true"
    assert op.storage.calls[("patch", "Pod")] == 1
    assert "QuarantineRestored" in op.storage.reasons()


def test_a_tenant_allow_all_policy_gets_the_exclusion(op: Operator) -> None:
    op.storage.put("Pod", pod_body())
    op.settle()
    allow = {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": {"name": "allow-all", "namespace": NS},
        "spec": {"podSelector": {}, "ingress": [{}], "egress": [{}], "policyTypes": ["Ingress", "Egress"]},
    }
    op.storage.put("NetworkPolicy", allow)  # the tenant
    op.settle()
    live = op.storage.objects[("NetworkPolicy", NS, "allow-all")]
    assert netpol.has_exclusion(live)
    assert not netpol.reopening([live], {"app": "worker-6b7f"})
    assert "QuarantineRestored" in op.storage.reasons()
    assert op.incident("pod-worker-6b7f")["status"]["state"] == inc.CONTAINED


def test_an_edited_deny_all_is_restored(op: Operator) -> None:
    op.storage.put("Pod", pod_body())
    op.settle()
    live = copy.deepcopy(op.storage.objects[("NetworkPolicy", NS, netpol.QUARANTINE_POLICY)])
    live["spec"]["podSelector"] = {"matchLabels": {"nothing": "here"}}
    op.storage.replace_network_policy(NS, live)  # the tenant
    op.settle()
    assert netpol.quarantine_policy_intact(op.storage.objects[("NetworkPolicy", NS, netpol.QUARANTINE_POLICY)])


def test_a_stale_deny_all_view_costs_a_conflict_and_a_read_not_a_wrong_result(op: Operator) -> None:
    op.storage.put("Pod", pod_body())
    op.settle()
    live = copy.deepcopy(op.storage.objects[("NetworkPolicy", NS, netpol.QUARANTINE_POLICY)])
    live["spec"]["podSelector"] = {"matchLabels": {"nothing": "here"}}
    op.storage.replace_network_policy(NS, live)  # edited, and this process has not seen it yet
    edited = op.storage.objects[("NetworkPolicy", NS, netpol.QUARANTINE_POLICY)]
    op.detector.observe_network_policy("MODIFIED", copy.deepcopy(edited))
    op.storage.replace_network_policy(NS, copy.deepcopy(edited))  # and once more, unseen: the cache is stale now
    op.drain()
    assert netpol.quarantine_policy_intact(op.storage.objects[("NetworkPolicy", NS, netpol.QUARANTINE_POLICY)])


# ------------------------------------------------------------------ outcomes


def test_a_host_network_pod_is_recorded_not_containable_without_the_fallback() -> None:
    op = build(settings=replace(Settings(), host_network_fallback="none"))
    op.storage.put("Pod", pod_body(hostNetwork=True))
    op.settle()
    record = op.incident("pod-worker-6b7f")["status"]["pods"][0]
    assert record["state"] == inc.POD_NOT_CONTAINABLE
    assert ("patch", "Pod") not in op.storage.calls


def test_audit_mode_records_and_writes_nothing_to_the_pod() -> None:
    op = build(policy=policy_body(mode="Audit", actions=[]))
    op.storage.put("Pod", pod_body())
    op.settle()
    assert op.incident("pod-worker-6b7f")["status"]["state"] == inc.DETECTED
    assert ("patch", "Pod") not in op.storage.calls
    assert ("create", "NetworkPolicy") not in op.storage.calls


def test_dry_run_plans_and_writes_nothing_to_the_pod() -> None:
    op = build(settings=replace(Settings(), dry_run=True))
    op.storage.put("Pod", pod_body())
    op.settle()
    assert "DryRun" in op.storage.reasons()
    assert ("patch", "Pod") not in op.storage.calls
    assert ("create", "NetworkPolicy") not in op.storage.calls


# ------------------------------------------------------------------ faults


def test_a_conflict_on_the_status_write_is_retried_from_a_fresh_read(op: Operator) -> None:
    op.storage.put("Pod", pod_body())
    op.storage.fail_next[("update", "MinerIncident")] = Conflict("update MinerIncident: 409", 409, "Conflict")
    op.deliver()
    op.drain()
    assert op.storage.calls[("get", "MinerIncident")] == 1
    assert op.incident("pod-worker-6b7f")["status"]["state"] == inc.CONTAINED


def test_a_refused_exclusion_is_recorded_failed_never_contained(op: Operator) -> None:
    """An admission webhook refuses the exclusion on the tenant's allow policy: the pod is not isolated."""
    allow = {
        "metadata": {"name": "allow-all", "namespace": NS},
        "spec": {"podSelector": {}, "ingress": [{}], "egress": [{}], "policyTypes": ["Ingress", "Egress"]},
    }
    op.storage.put("NetworkPolicy", allow)
    op.storage.put("Pod", pod_body())
    op.storage.fail_next[("patch", "NetworkPolicy")] = Forbidden("patch NetworkPolicy: 403", 403, "Forbidden")
    op.deliver()
    op.drain()
    record = op.incident("pod-worker-6b7f")["status"]["pods"][0]
    assert record["state"] == inc.POD_FAILED
    assert "ContainmentFailed" in op.storage.reasons()


def test_a_pod_deleted_during_containment_is_recorded_deleted(op: Operator) -> None:
    op.storage.put("Pod", pod_body())
    op.storage.fail_next[("patch", "Pod")] = NotFound("patch Pod: 404", 404, "NotFound")
    op.deliver()
    op.drain()
    assert op.incident("pod-worker-6b7f")["status"]["pods"][0]["state"] == inc.POD_DELETED


def test_an_incident_created_elsewhere_is_read_not_duplicated(op: Operator) -> None:
    op.storage.put("Pod", pod_body())
    op.storage.put(
        "MinerIncident",
        inc.new_incident(NS, inc.WorkloadRef("v1", "Pod", "worker-6b7f", "uid-worker-6b7f"), "miners", "Enforce"),
    )
    op.detector.observe_pod("ADDED", copy.deepcopy(op.storage.objects[("Pod", NS, "worker-6b7f")]))
    op.drain()
    assert op.storage.calls[("create", "MinerIncident")] == 1  # answered AlreadyExists
    assert op.storage.calls[("get", "MinerIncident")] == 1
    assert op.incident("pod-worker-6b7f")["status"]["state"] == inc.CONTAINED


def test_a_deleted_pod_is_marked_and_the_incident_ends(op: Operator) -> None:
    op.storage.put("Pod", pod_body())
    op.settle()
    body = op.storage.objects.pop(("Pod", NS, "worker-6b7f"))
    op.detector.observe_pod("DELETED", body)
    op.drain()
    status = op.incident("pod-worker-6b7f")["status"]
    assert status["pods"][0]["state"] == inc.POD_DELETED
    assert status["state"] == inc.ENDED


# ------------------------------------------------------------------ release


def test_release_reverts_everything_and_keeps_the_record(op: Operator) -> None:
    op.storage.put("Pod", pod_body())
    op.settle()
    op.storage.patch_incident_spec(NS, "pod-worker-6b7f", {"release": True, "releasedBy": "alice"})  # a person
    op.settle()
    pod = op.storage.objects[("Pod", NS, "worker-6b7f")]
    assert netpol.QUARANTINE_LABEL not in (pod["metadata"].get("labels") or {})
    assert ("NetworkPolicy", NS, netpol.QUARANTINE_POLICY) not in op.storage.objects
    status = op.incident("pod-worker-6b7f")["status"]
    assert status["state"] == inc.RELEASED
    assert status["message"] == "Released by alice"
    assert "Released" in op.storage.reasons()
    before = op.storage.total_calls()
    op.detector.resync()
    op.settle()
    assert op.storage.total_calls() == before  # a released incident is not contained again


def test_a_release_is_carried_out_when_an_operator_write_overtakes_its_event(op: Operator) -> None:
    """A person sets release; before that event arrives, the operator writes the incident again (a pod of the
    workload gone, say) and caches the newer body: the person's event then looks old, and must still count."""
    op.storage.put("Pod", pod_body())
    op.settle()
    op.storage.patch_incident_spec(NS, "pod-worker-6b7f", {"release": True})  # a person
    live = op.storage.get_incident(NS, "pod-worker-6b7f")
    newer = op.storage.replace_incident_status(NS, live)  # the operator's own write, its body cached first
    op.state.put_incident(NS, "pod-worker-6b7f", newer)
    op.settle()
    assert op.incident("pod-worker-6b7f")["status"]["state"] == inc.RELEASED
    pod = op.storage.objects[("Pod", NS, "worker-6b7f")]
    assert netpol.QUARANTINE_LABEL not in (pod["metadata"].get("labels") or {})


def test_a_write_between_the_release_and_the_releaser_does_not_mark_it_released(op: Operator) -> None:
    """A person sets release; before the Releaser runs, the operator records a pod of the workload gone. That
    write must not call the incident Released (the Releaser would then skip it and the pod stay quarantined)."""
    op.storage.put("Pod", pod_body())
    op.settle()
    op.storage.patch_incident_spec(NS, "pod-worker-6b7f", {"release": True})  # a person
    op.containment.recorder.pod_gone(NS, "pod-worker-6b7f", "worker-6b7f", "uid-worker-6b7f")
    assert op.incident("pod-worker-6b7f")["status"]["state"] != inc.RELEASED
    op.settle()
    assert op.incident("pod-worker-6b7f")["status"]["state"] == inc.RELEASED
    pod = op.storage.objects[("Pod", NS, "worker-6b7f")]
    assert netpol.QUARANTINE_LABEL not in (pod["metadata"].get("labels") or {})


def test_a_quarantined_pod_that_stops_matching_is_kept_and_reported(op: Operator) -> None:
    """Upkeep follows the label and the open incident, not a fresh verdict: the pod no longer matches (its command
    changed), then an allow-all appears; the exclusion still goes in, and the pod is reported as kept once."""
    op.storage.put("Pod", pod_body())
    op.settle()
    pod = op.storage.objects[("Pod", NS, "worker-6b7f")]
    pod["spec"]["containers"][0]["command"] = ["/bin/true"]
    op.storage.put("Pod", pod)
    allow = {"podSelector": {}, "policyTypes": ["Egress"], "egress": [{}]}
    op.storage.put("NetworkPolicy", {"metadata": {"name": "let-me-out", "namespace": NS}, "spec": allow})
    op.settle()
    live = op.storage.objects[("NetworkPolicy", NS, "let-me-out")]
    assert netpol.has_exclusion(live)
    assert op.storage.objects[("Pod", NS, "worker-6b7f")]["metadata"]["labels"][netpol.QUARANTINE_LABEL] == "true"
    assert op.storage.reasons().count("ContainmentKept") == 1
    assert "stays quarantined" in op.incident("pod-worker-6b7f")["status"]["message"]


# ------------------------------------------------------------------ node actions


def node(name: str, **spec: Any) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Node", "metadata": {"name": name, "labels": {}}, "spec": spec}


def test_cordon_is_guarded_and_told_on_the_node() -> None:
    actions = [{"name": "quarantine"}, {"name": "cordon"}]
    settings = replace(Settings(), guards=GuardSettings(max_nodes=1, max_percent=100.0, min_schedulable_nodes=1))
    op = build(settings=settings, policy=policy_body(actions=actions))
    for n in ("node-1", "node-2", "node-3"):
        op.storage.put("Node", node(n))
    op.storage.put("Pod", pod_body())
    second = pod_body("second")
    second["spec"]["nodeName"] = "node-2"
    op.storage.put("Pod", second)
    op.settle()
    cordoned = [n for n in ("node-1", "node-2") if op.storage.objects[("Node", "", n)]["spec"].get("unschedulable")]
    assert len(cordoned) == 1  # the guard held back the second
    node_events = [e for e in op.storage.events if e["regarding"].get("kind") == "Node"]
    assert [e["reason"] for e in node_events].count("NodeCordoned") == 1
    assert "ContainmentSuppressed" in [e["reason"] for e in node_events]
    op.storage.patch_incident_spec(NS, "pod-worker-6b7f", {"release": True})
    op.storage.patch_incident_spec(NS, "pod-second", {"release": True})
    op.settle()
    assert not any(op.storage.objects[("Node", "", n)]["spec"].get("unschedulable") for n in ("node-1", "node-2"))
    assert "NodeUncordoned" in op.storage.reasons()
