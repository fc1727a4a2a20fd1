"""Unit tests for ``minerguard incident describe`` (#15): the one-screen text and the command line.

What these prove: the summary shows what matched, what was done, the foothold with its access table, related
workloads, the bill and next steps naming the ServiceAccount, the creator and the related workloads; an incident
without foothold or cost says so instead of failing; bad arguments exit 2. Its Events section lists the Events
minerguard emitted about the incident, its pods and the nodes it acted on (no one else's, no other pod's), as
``kubectl describe`` does: type, reason, count, age, object and message, repeats folded, newest last.
"""

from __future__ import annotations

import datetime
from typing import Any

import pytest

from minerguard.cli import main
from minerguard.domain import foothold
from minerguard.domain.describe import describe
from minerguard.domain.eventlines import event_namespaces, human_duration
from tests.unit.test_foothold import answers, owners, pod

pytestmark = pytest.mark.unit

NOW = datetime.datetime(2026, 12, 2, 6, 0, 0, tzinfo=datetime.UTC)
POD = {"apiVersion": "v1", "kind": "Pod", "name": "miner-7d9f-abcde", "namespace": "tenant", "uid": "u-1"}
INCIDENT = {"apiVersion": "minerguard.io/v1alpha1", "kind": "MinerIncident", "name": "deployment-miner",
            "namespace": "tenant"}  # fmt: skip
NODE = {"apiVersion": "v1", "kind": "Node", "name": "kwok-node-1"}


def event(kind: str, reason: str, regarding: dict[str, str], note: str, ago: float, **extra: Any) -> dict[str, Any]:
    """An events.k8s.io/v1 Event as the API returns it (plain), ``ago`` seconds before NOW, by minerguard."""
    at = (NOW - datetime.timedelta(seconds=ago)).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    body = {"type": kind, "reason": reason, "regarding": regarding, "note": note, "eventTime": at,
            "reportingController": "minerguard.io/operator", "metadata": {"name": f"x.{reason}.{ago}"}}  # fmt: skip
    return {**body, **extra}


def incident() -> dict[str, Any]:
    return {
        "metadata": {"name": "deployment-miner", "namespace": "tenant"},
        "spec": {"policy": "miners", "mode": "Enforce", "workload": {"kind": "Deployment", "name": "miner"}},
        "status": {
            "state": "Contained",
            "message": "Contained: last seen Pod tenant/miner-7d9f-abcde",
            "firstSeen": "2026-12-02T05:00:03Z",
            "evidence": [
                {"signal": "process", "strength": "Strong", "container": "worker", "detail": 'process "xmrig"'}
            ],
            "actions": [{"time": "t", "action": "quarantine", "target": "Pod tenant/x", "result": "Succeeded"}],
            "foothold": foothold.build(pod(), owners(), answers("read Secrets"), "2026-12-02T05:00:03Z"),
            "related": [{"namespace": "second", "kind": "Pod", "name": "helper", "shares": ["wallet 4AAA…AAA"]}],
            "relatedCount": 3,
            "cost": {
                "cpuCoreSeconds": 120.0,
                "currentCores": 1.0,
                "estimate": "0.0015 USD",
                "pricePerCoreHour": "0.0445",
                "currency": "USD",
                "since": "s",
            },
        },
    }


def test_one_screen_with_everything_and_the_next_steps() -> None:
    text = describe(incident(), [event("Warning", "RelatedWorkloadsFound", INCIDENT, "1 other workload", 30)], NOW)
    for expected in (
        "Name:              deployment-miner",
        "Workload:          Deployment tenant/miner",
        "process",
        "quarantine",
        "Created By:        tenant-admin (groups: system:authenticated, tenants)",
        "Deployment miner  created 2026-12-02T04:59:58Z  by kubectl-create, kube-controller-manager",
        "Service Account:   tenant/builder",
        "read Secrets",
        "privileged, hostPID, hostPath:/, SYS_ADMIN, NET_RAW; ServiceAccount token mounted: yes",
        "Related Workloads (3):",
        "Pod second/helper",
        "... and 2 more",
        "120.0 core-seconds while open",
        "0.0015 USD at 0.0445 USD/core-hour",
        "1. Rotate the token of ServiceAccount tenant/builder - it can read Secrets",
        "2. Check the credentials of tenant-admin",
        "3. Review the 3 related workload(s)",
        "4. When cleaned up, release: kubectl patch minerincident deployment-miner -n tenant",
        "Warning  RelatedWorkloadsFound  1      30s  MinerIncident/deployment-miner  1 other workload",
    ):
        assert expected in text, expected
    rows = [line.split() for line in text.splitlines() if "read Secrets" in line and "Namespace" in line]
    assert rows and rows[0][-1] == "yes"
    assert len(text.splitlines()) < 70  # one screen


def test_an_incident_without_foothold_or_cost_yet() -> None:
    body = incident()
    for key in ("foothold", "cost", "related", "relatedCount"):
        del body["status"][key]
    text = describe(body)
    assert "<not gathered yet>" in text and "<not metered" in text and "Related Workloads (0):" in text
    assert "1. When cleaned up, release" in text


def test_the_command_line_wants_namespace_slash_name(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["incident", "describe", "no-slash"]) == 2
    assert "NAMESPACE/NAME" in capsys.readouterr().err
    assert main(["incident", "frobnicate"]) == 2


def contained_incident() -> dict[str, Any]:
    body = incident()
    body["status"]["pods"] = [{"name": "miner-7d9f-abcde", "uid": "u-1", "node": "kwok-node-1", "state": "Contained"}]
    body["status"]["actions"].append(
        {"time": "t", "action": "cordon", "target": "Node kwok-node-1", "result": "Succeeded"}
    )
    return body


def events_section(text: str) -> list[str]:
    return text[text.index("Events:") :].splitlines()


def test_the_events_minerguard_emitted_about_the_incident_its_pods_and_node_newest_last() -> None:
    other_pod = {**POD, "name": "web-1", "uid": "u-2"}
    kubelet = event("Normal", "Pulled", POD, "image pulled", 500, reportingController="kubelet")
    events = [
        event("Warning", "PodQuarantined", POD, "Quarantined Pod tenant/miner-7d9f-abcde", 190),
        event("Warning", "MinerDetected", POD, "MinerPolicy miners (Enforce) matched Pod tenant/miner-7d9f-abcde", 200),
        event("Warning", "NodeCordoned", NODE, "Cordoned Node kwok-node-1", 185),
        event("Warning", "RelatedWorkloadsFound", INCIDENT, "1 other workload shares wallet 4AAA", 10),
        event("Normal", "Released", {**POD, "uid": ""}, "Released Pod tenant/miner-7d9f-abcde", 5),
        kubelet,  # not minerguard's
        event("Warning", "MinerDetected", other_pod, "another pod's", 100),  # not this incident's pod
        event("Warning", "RelatedWorkloadsFound", {**INCIDENT, "name": "pod-other"}, "another incident's", 50),
        event("Warning", "NodeCordoned", {**NODE, "name": "kwok-node-9"}, "another node", 60),
    ]
    lines = events_section(describe(contained_incident(), events, NOW))
    assert lines[1].split() == ["Type", "Reason", "Count", "Age", "Object", "Message"]
    assert lines[2].split() == ["----", "------", "-----", "---", "------", "-------"]
    body = lines[3:]
    assert [line.split()[1] for line in body] == [
        "MinerDetected", "PodQuarantined", "NodeCordoned", "RelatedWorkloadsFound", "Released"
    ]  # fmt: skip
    assert body[0].split()[:5] == ["Warning", "MinerDetected", "1", "3m20s", "Pod/miner-7d9f-abcde"]
    assert body[0].endswith("MinerPolicy miners (Enforce) matched Pod tenant/miner-7d9f-abcde")
    assert body[2].split()[:5] == ["Warning", "NodeCordoned", "1", "3m5s", "Node/kwok-node-1"]
    assert body[4].split()[:4] == ["Normal", "Released", "1", "5s"]
    # The columns line up, as kubectl's do.
    assert len({line.index("Pod/") for line in body if "Pod/" in line}) == 1


def test_repeats_fold_into_one_line_with_their_count_and_span() -> None:
    series = {"count": 2, "lastObservedTime": (NOW - datetime.timedelta(seconds=40)).isoformat()}
    events = [
        event("Warning", "ContainmentKept", POD, "still contained", 400),
        event("Warning", "ContainmentKept", POD, "still contained", 300, series=series),
        event("Warning", "MinerDetected", POD, "matched", 600),
    ]
    body = events_section(describe(contained_incident(), events, NOW))[3:]
    assert body[0].split()[:4] == ["Warning", "MinerDetected", "1", "10m"]
    assert body[1].split()[:8] == [
        "Warning",
        "ContainmentKept",
        "3",
        "40s",
        "(x3",
        "over",
        "6m40s)",
        "Pod/miner-7d9f-abcde",
    ]


def test_events_none_or_not_readable() -> None:
    assert "Events:            <none>" in describe(contained_incident(), [], NOW)
    unread = describe(contained_incident(), None, NOW, unread="list Event tenant: 403 Forbidden")
    assert "Events:            <not read: list Event tenant: 403 Forbidden>" in unread
    assert "Events:" not in describe(contained_incident())  # not asked for


def test_more_events_than_a_screen_keep_the_newest() -> None:
    events = [event("Warning", "ContainmentKept", POD, f"pass {i}", 1000 - i) for i in range(40)]
    lines = events_section(describe(contained_incident(), events, NOW))
    assert lines[1] == "  (25 older not shown)"
    assert lines[-1].endswith("pass 39") and len(lines) == 2 + 2 + 15


def test_where_the_events_are_read() -> None:
    assert event_namespaces(contained_incident()) == ["tenant", "default"]  # the node's Events are in default
    assert event_namespaces(incident()) == ["tenant"]


@pytest.mark.parametrize(
    ("seconds", "shown"),
    [(0, "0s"), (119, "119s"), (120, "2m"), (303, "5m3s"), (600, "10m"), (3 * 3600, "3h"), (3 * 3600 + 420, "3h7m"),
     (30 * 3600, "30h"), (2 * 86400 + 4 * 3600, "2d4h"), (30 * 86400, "30d"), (800 * 86400, "2y70d")],
)  # fmt: skip
def test_ages_as_kubectl_prints_them(seconds: float, shown: str) -> None:
    assert human_duration(seconds) == shown


def test_messages_are_shown_whole_up_to_400_characters_on_one_line() -> None:
    whole, long = "m" * 300 + " end", "x" * 1000 + "\x1b[2J"
    events = [event("Warning", "MinerDetected", POD, whole, 20), event("Warning", "Other", POD, long, 10)]
    body = events_section(describe(contained_incident(), events, NOW))[3:]
    assert body[0].endswith(whole)
    assert len(body[1].split()[-1]) == 400 and body[1].endswith("\\x1b[2J") and "\x1b" not in body[1]
