"""PolicyReports (wgpolicyk8s.io/v1alpha2): the report of a namespace's open incidents, and the service that
writes one per namespace through storage only when it changed."""

from __future__ import annotations

from typing import Any

import pytest

from minerguard.domain.policyreport import REPORT_NAME, policy_report
from minerguard.rbac import POLICY_REPORT_RULES
from minerguard.services.policyreports import PolicyReports
from minerguard.services.state import ClusterState
from tests.fakes import FakeStorage

pytestmark = pytest.mark.unit

NS = "payments"


def incident(
    name: str, state: str = "Contained", mode: str = "Enforce", release: bool = False, **pods: str
) -> dict[str, Any]:
    return {
        "metadata": {"name": name, "namespace": NS, "resourceVersion": "1"},
        "spec": {"policy": "miners", "mode": mode, "release": release},
        "status": {
            "state": state,
            "firstSeen": "2026-12-02T05:31:02Z",
            "evidence": [
                {"signal": "runtime", "strength": "Strong", "detail": "Falco Critical 'Detect crypto miners'"}
            ],
            "pods": [{"name": p, "uid": f"uid-{p}", "state": s} for p, s in pods.items()],
        },
    }


def test_each_pod_of_an_open_incident_is_a_failed_result() -> None:
    report = policy_report(
        NS,
        [
            incident("pod-web", web="Contained"),
            incident("deployment-api", mode="Audit", state="Detected", **{"api-1": "Detected", "api-2": "Deleted"}),
            incident("pod-old", state="Released", old="Released"),
            incident("pod-freed", release=True, freed="Contained"),
        ],
    )
    assert report["apiVersion"] == "wgpolicyk8s.io/v1alpha2" and report["kind"] == "PolicyReport"
    assert report["metadata"]["name"] == REPORT_NAME and report["summary"]["fail"] == 2
    by_pod = {r["resources"][0]["name"]: r for r in report["results"]}
    assert set(by_pod) == {"web", "api-1"}
    assert (by_pod["web"]["result"], by_pod["web"]["severity"], by_pod["api-1"]["severity"]) == (
        "fail",
        "high",
        "medium",
    )
    assert by_pod["web"]["resources"] == [
        {"apiVersion": "v1", "kind": "Pod", "namespace": NS, "name": "web", "uid": "uid-web"}
    ]
    assert by_pod["web"]["message"] == "runtime: Falco Critical 'Detect crypto miners'"
    assert by_pod["web"]["timestamp"] == {"seconds": 1796189462, "nanos": 0}
    assert by_pod["api-1"]["properties"] == {"incident": "deployment-api", "mode": "Audit", "state": "Detected"}
    assert policy_report(NS, [])["summary"]["fail"] == 0


def service(storage: FakeStorage, *incidents: dict[str, Any]) -> tuple[PolicyReports, ClusterState]:
    state = ClusterState()
    for body in incidents:
        state.put_incident(NS, body["metadata"]["name"], body)
    return PolicyReports(storage, state), state  # type: ignore[arg-type]


def test_written_once_when_it_changes_and_emptied_not_deleted() -> None:
    storage = FakeStorage()
    reports, state = service(storage, incident("pod-web", web="Contained"))
    reports.sync()
    reports.sync()
    assert storage.calls == {("get", "PolicyReport"): 1, ("create", "PolicyReport"): 1}
    assert storage.objects[("PolicyReport", NS, REPORT_NAME)]["summary"]["fail"] == 1
    closed = incident("pod-web", state="Released", web="Released")
    closed["metadata"]["resourceVersion"] = "2"
    state.put_incident(NS, "pod-web", closed)
    reports.sync()
    assert storage.objects[("PolicyReport", NS, REPORT_NAME)]["results"] == []
    assert storage.calls[("update", "PolicyReport")] == 1


def test_a_namespace_without_open_incidents_gets_no_report() -> None:
    storage = FakeStorage()
    reports, _ = service(storage, incident("pod-old", state="Released", old="Released"))
    reports.sync()
    reports.sync()
    assert not [k for k in storage.objects if k[0] == "PolicyReport"]
    assert storage.calls == {("get", "PolicyReport"): 1}  # looked once for a report of before a restart


def test_every_call_is_granted_by_the_policy_report_rules() -> None:
    storage = FakeStorage()
    reports, state = service(storage, incident("pod-web", web="Contained"))
    reports.sync()
    state.put_incident(
        NS,
        "pod-api",
        {
            **incident("pod-api", api="Detected"),
            "metadata": {"name": "pod-api", "namespace": NS, "resourceVersion": "5"},
        },
    )
    reports.sync()
    granted = {
        (g, r, v) for rule in POLICY_REPORT_RULES for g in rule.api_groups for r in rule.resources for v in rule.verbs
    }
    verbs = {"get": "get", "create": "create", "update": "update"}
    for verb, kind in storage.calls:
        assert kind == "PolicyReport" and ("wgpolicyk8s.io", "policyreports", verbs[verb]) in granted


def test_while_the_crd_is_not_served_nothing_is_written_and_it_is_tried_again() -> None:
    from minerguard.errors import NotFound

    storage = FakeStorage()
    reports, _ = service(storage, incident("pod-web", web="Contained"))
    storage.fail_next[("create", "PolicyReport")] = NotFound("the server could not find the requested resource", 404)
    reports.sync()
    assert not [k for k in storage.objects if k[0] == "PolicyReport"]
    reports.sync()
    assert storage.objects[("PolicyReport", NS, REPORT_NAME)]["summary"]["fail"] == 1
