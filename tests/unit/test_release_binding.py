"""A release covers one workload as it was (UID, pod template, policies), never a name (issue #11 item 3).

The pure rules of :mod:`minerguard.domain.binding`, then the services over FakeStorage: a pod made
again under a released name, an in-place image change, an incident the tenant made.
"""

from __future__ import annotations

import copy
from typing import Any

import pytest

from minerguard.domain import binding, netpol
from minerguard.domain import incidents as inc
from tests.unit.test_containment_service import NS, Operator, build, pod_body

pytestmark = pytest.mark.unit


def released_incident(**status: Any) -> dict[str, Any]:
    body = inc.new_incident(NS, inc.WorkloadRef("v1", "Pod", "miner", "uid-1"), "miners", "Enforce")
    body["spec"]["release"] = True
    body["status"] = {"firstSeen": "2026-01-01T00:00:00Z", "state": inc.RELEASED, **status}
    return body


# ------------------------------------------------------------------ the pure rules


def test_the_template_is_what_the_containers_run() -> None:
    a = pod_body("a")
    b = pod_body("b", nodeName="node-2")
    assert binding.template_hash(a) == binding.template_hash(b)  # name, uid, labels and node do not count
    c = copy.deepcopy(a)
    c["spec"]["containers"][0]["image"] = "other"
    assert binding.template_hash(c) != binding.template_hash(a)
    d = copy.deepcopy(a)
    d["spec"]["containers"][0]["env"] = [{"name": "POOL", "value": "x"}]
    assert binding.template_hash(d) != binding.template_hash(a)
    assert binding.template_hash({}) == binding.template_hash({"spec": "junk"})


def test_a_release_covers_its_uid_templates_and_policies_only() -> None:
    body = released_incident(releasedFor={"uid": "uid-1", "templates": ["t1"], "policies": ["miners"]})
    assert binding.decide(body, "uid-1", "t1", ["miners"]) == "exempt"
    assert binding.decide(body, "uid-2", "t1", ["miners"]) == "next"  # made again under the name
    assert binding.decide(body, "uid-1", "t2", ["miners"]) == "next"  # set image
    assert binding.decide(body, "uid-1", "t1", ["miners", "new"]) == "next"  # a policy that did not match then
    assert binding.decide(None, "uid-1", "t1", ["miners"]) == "use"
    none_running = released_incident(releasedFor={"uid": "uid-1", "templates": [], "policies": ["miners"]})
    assert binding.decide(none_running, "uid-1", "t2", ["miners"]) == "exempt"  # scaled to 0 when released
    assert binding.decide(none_running, "uid-2", "t2", ["miners"]) == "next"


def test_a_release_under_way_exempts_its_workload_and_an_old_release_still_binds_the_uid() -> None:
    asked = released_incident()
    asked["status"]["state"] = inc.CONTAINED
    assert binding.decide(asked, "uid-1", "t9", ["miners"]) == "exempt"
    assert binding.decide(asked, "uid-2", "t9", ["miners"]) == "next"
    legacy = released_incident()  # released before bindings were recorded
    assert binding.decide(legacy, "uid-1", "any", ["miners"]) == "exempt"
    assert binding.decide(legacy, "uid-2", "any", ["miners"]) == "next"


def test_an_incident_without_minerguards_record_is_not_minerguards() -> None:
    forged = released_incident()
    del forged["status"]
    assert not binding.operator_made(forged, "uid-1")
    assert binding.decide(forged, "uid-1", "t1", ["miners"]) == "next"
    fresh = inc.new_incident(NS, inc.WorkloadRef("v1", "Pod", "miner", "uid-1"), "miners", "Enforce")
    assert binding.operator_made(fresh, "uid-1")  # minerguard's own create, its status not written yet
    assert not binding.operator_made(fresh, "uid-2")


def test_candidate_names_are_stable_and_distinct() -> None:
    ref = inc.WorkloadRef("apps/v1", "Deployment", "miner", "uid-1")
    names = binding.candidate_names(ref, "t1", "miners")
    assert names[0] == "deployment-miner"
    assert len(set(names)) == 3
    assert names == binding.candidate_names(ref, "t1", "miners")
    assert names[1] != binding.candidate_names(ref, "t2", "miners")[1]
    long = binding.candidate_names(inc.WorkloadRef("v1", "Pod", "x" * 300, "u"), "t", "p")
    assert all(len(n) <= 253 for n in long)


# ------------------------------------------------------------------ the services


def contained_then_released(op: Operator) -> None:
    op.storage.put("Pod", pod_body())
    op.settle()
    op.storage.patch_incident_spec(NS, "pod-worker-6b7f", {"release": True, "releasedBy": "alice"})
    op.settle()
    assert op.incident("pod-worker-6b7f")["status"]["state"] == inc.RELEASED


def quarantined_under(op: Operator, pod: str) -> str:
    meta = op.storage.objects[("Pod", NS, pod)]["metadata"]
    assert meta["labels"].get(netpol.QUARANTINE_LABEL) == "true", meta
    return str(meta["annotations"]["minerguard.io/incident"])


def test_a_release_records_what_it_covers() -> None:
    op = build()
    contained_then_released(op)
    covered = op.incident("pod-worker-6b7f")["status"]["releasedFor"]
    assert covered == {
        "uid": "uid-worker-6b7f",
        "templates": [binding.template_hash(pod_body())],
        "policies": ["miners"],
    }


def test_a_pod_made_again_under_a_released_name_is_contained_again() -> None:
    op = build()
    contained_then_released(op)
    old = op.storage.objects.pop(("Pod", NS, "worker-6b7f"))
    op.detector.observe_pod("DELETED", old)
    op.settle()
    again = pod_body()
    again["metadata"]["uid"] = "uid-second"
    op.storage.put("Pod", again)
    op.settle()
    name = quarantined_under(op, "worker-6b7f")
    assert name != "pod-worker-6b7f"
    assert op.incident(name)["spec"]["workload"]["uid"] == "uid-second"
    assert op.incident(name)["status"]["state"] == inc.CONTAINED
    assert op.incident("pod-worker-6b7f")["status"]["state"] == inc.RELEASED
    # Its deletion is recorded in the incident it was contained under.
    body = op.storage.objects.pop(("Pod", NS, "worker-6b7f"))
    op.detector.observe_pod("DELETED", body)
    op.settle()
    assert op.incident(name)["status"]["state"] == inc.ENDED


def test_a_released_pod_set_to_another_image_is_contained_again() -> None:
    op = build()
    contained_then_released(op)
    pod = op.storage.objects[("Pod", NS, "worker-6b7f")]
    pod["spec"]["containers"][0]["image"] = "another-miner:latest"
    op.storage.put("Pod", pod)
    op.settle()
    name = quarantined_under(op, "worker-6b7f")
    assert name != "pod-worker-6b7f"
    before = op.storage.total_calls()
    op.detector.resync()
    op.settle()
    assert op.storage.total_calls() == before  # kept up at no cost, like any containment


def test_an_incident_the_tenant_made_neither_exempts_nor_releases() -> None:
    op = build()
    forged = inc.new_incident(NS, inc.WorkloadRef("v1", "Pod", "worker-6b7f", ""), "miners", "Enforce")
    forged["spec"]["release"] = True
    op.storage.put("MinerIncident", forged)
    op.settle()  # its release asked for: ignored and told
    assert op.storage.reasons() == ["IncidentIgnored"]
    op.storage.put("Pod", pod_body())
    op.settle()
    name = quarantined_under(op, "worker-6b7f")
    assert name != "pod-worker-6b7f"
    assert op.incident(name)["status"]["state"] == inc.CONTAINED
    assert "status" not in op.incident("pod-worker-6b7f")  # never written to
    assert op.storage.reasons().count("IncidentIgnored") == 2  # once as a release, once where it was in the way
    op.detector.resync()
    op.settle()
    assert op.storage.reasons().count("IncidentIgnored") == 2
