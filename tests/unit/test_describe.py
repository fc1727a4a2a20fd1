"""Unit tests for ``minerguard incident describe`` (#15): the one-screen text and the command line.

What these prove: the summary shows what matched, what was done, the foothold with its access table, related
workloads, the bill and next steps naming the ServiceAccount, the creator and the related workloads; an incident
without foothold or cost says so instead of failing; bad arguments exit 2.
"""

from __future__ import annotations

from typing import Any

import pytest

from minerguard.cli import main
from minerguard.domain import foothold
from minerguard.domain.describe import describe
from tests.unit.test_foothold import answers, owners, pod

pytestmark = pytest.mark.unit


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
    text = describe(incident(), [{"reason": "RelatedWorkloadsFound", "note": "1 other workload"}])
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
        "RelatedWorkloadsFound",
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
