"""The MinerIncident CRD on the real API server: spec.workload is immutable (CEL), printer columns, conditions.

The session applies crds/ as they are in the repository; these tests write incidents directly, as
an attacker or a careless script would, and read them back the way a person does (kubectl get).
"""

from __future__ import annotations

import json
from typing import Any

import yaml

from tests.e2e.helpers import kubectl


def incident(name: str, workload: str = "build-cache") -> dict[str, Any]:
    return {
        "apiVersion": "minerguard.io/v1alpha1",
        "kind": "MinerIncident",
        "metadata": {"name": name},
        "spec": {"policy": "mining-pools", "mode": "Enforce", "workload": {"kind": "Deployment", "name": workload}},
    }


def test_spec_workload_cannot_be_changed_but_release_can(namespace: str) -> None:
    kubectl("apply", "-n", namespace, "-f", "-", stdin=yaml.safe_dump(incident("deployment-build-cache")))
    # Repointing a record at another workload would rewrite history (and lift nothing): refused.
    moved = kubectl(
        "patch", "minerincident", "deployment-build-cache", "-n", namespace, "--type", "merge",
        "-p", json.dumps({"spec": {"workload": {"name": "innocent"}}}), check=False,
    )  # fmt: skip
    assert moved.returncode != 0
    assert "spec.workload is immutable" in moved.stderr, moved.stderr
    kind = kubectl(
        "patch", "minerincident", "deployment-build-cache", "-n", namespace, "--type", "json",
        "-p", json.dumps([{"op": "replace", "path": "/spec/workload/kind", "value": "Pod"}]), check=False,
    )  # fmt: skip
    assert kind.returncode != 0 and "spec.workload is immutable" in kind.stderr
    # What a person is meant to change still works.
    kubectl(
        "patch", "minerincident", "deployment-build-cache", "-n", namespace, "--type", "merge",
        "-p", json.dumps({"spec": {"release": True, "releasedBy": "alice: SEC-142"}}),
    )  # fmt: skip
    got = json.loads(kubectl("get", "minerincident", "deployment-build-cache", "-n", namespace, "-o", "json").stdout)
    assert got["spec"]["workload"] == {"kind": "Deployment", "name": "build-cache"}
    assert got["spec"]["release"] is True


def test_printer_columns_and_conditions_in_the_status(namespace: str) -> None:
    kubectl("apply", "-n", namespace, "-f", "-", stdin=yaml.safe_dump(incident("deployment-x", "x")))
    status = {
        "state": "Contained",
        "podCount": 2,
        "message": "2 pods contained",
        "conditions": [
            {
                "type": "Contained",
                "status": "True",
                "reason": "Contained",
                "message": "2 pods contained",
                "observedGeneration": 1,
                "lastTransitionTime": "2026-12-02T03:00:00Z",
            }
        ],
    }
    kubectl(
        "patch", "minerincident", "deployment-x", "-n", namespace, "--subresource", "status", "--type", "merge",
        "-p", json.dumps({"status": status}),
    )  # fmt: skip
    got = json.loads(kubectl("get", "minerincident", "deployment-x", "-n", namespace, "-o", "json").stdout)
    assert got["status"]["conditions"][0]["observedGeneration"] == 1  # kept by the schema, not pruned
    table = kubectl("get", "minerincidents", "-n", namespace, "-o", "wide").stdout.splitlines()
    header = [
        "NAME",
        "STATE",
        "POLICY",
        "KIND",
        "WORKLOAD",
        "PODS",
        "EST.",
        "COST",
        "RELATED",
        "FOOTHOLD",
        "MODE",
        "AGE",
    ]
    assert table[0].split() == header
    row = table[1].split()
    assert row[:6] == ["deployment-x", "Contained", "mining-pools", "Deployment", "x", "2"]
    assert "Enforce" in row[6:]  # after the canary's columns, empty until the operator fills them
    bad = kubectl(
        "patch", "minerincident", "deployment-x", "-n", namespace, "--subresource", "status", "--type", "merge",
        "-p", json.dumps({"status": {"conditions": [{"type": "Contained", "status": "Maybe"}]}}), check=False,
    )  # fmt: skip
    assert bad.returncode != 0 and "Unsupported value" in bad.stderr
