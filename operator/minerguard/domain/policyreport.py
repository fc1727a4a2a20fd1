"""PolicyReports (``wgpolicyk8s.io/v1alpha2``, the Kubernetes Policy WG's format that Kyverno and Policy
Reporter read): one per namespace, summarising its open MinerIncidents.

Each pod of an open incident (state neither Released nor Ended, the pod neither released nor
deleted) is one result: ``result: fail``, ``source: minerguard``, the incident's policy, a
severity from the policy's mode (``high`` for Enforce, ``medium`` for Audit), the pod as the
resource, and the incident's first evidence as the message. The summary counts them. Pure:
the caller reads the incidents from its cache and writes the report.
"""

from __future__ import annotations

import datetime
from collections.abc import Iterable, Mapping
from typing import Any

from minerguard.domain.incidents import OPEN_STATES, POD_DELETED, POD_RELEASED
from minerguard.domain.text import printable, shorten

__all__ = ["REPORT_NAME", "SEVERITY", "policy_report"]

REPORT_NAME = "minerguard"
REPORT_API_VERSION = "wgpolicyk8s.io/v1alpha2"
SEVERITY = {"Enforce": "high", "Audit": "medium"}
MAX_RESULTS = 1000


def _message(status: Mapping[str, Any]) -> str:
    evidence = status.get("evidence") or []
    first = evidence[0] if evidence and isinstance(evidence[0], Mapping) else {}
    text = f"{first.get('signal', 'detected')}: {first.get('detail', '')}".strip(": ")
    return shorten(printable(text or "miner detected"), 500)


def _results(incident: Mapping[str, Any]) -> list[dict[str, Any]]:
    spec, status = incident.get("spec") or {}, incident.get("status") or {}
    if status.get("state") not in OPEN_STATES or spec.get("release"):
        return []
    meta = incident.get("metadata") or {}
    namespace, name = str(meta.get("namespace", "")), str(meta.get("name", ""))
    policy, mode = str(spec.get("policy", "")), str(spec.get("mode", ""))
    results = []
    for pod in status.get("pods") or []:
        if not isinstance(pod, Mapping) or pod.get("state") in (POD_RELEASED, POD_DELETED):
            continue
        resource = {"apiVersion": "v1", "kind": "Pod", "namespace": namespace, "name": str(pod.get("name", ""))}
        if pod.get("uid"):
            resource["uid"] = str(pod["uid"])
        results.append(
            {
                "source": "minerguard",
                "policy": policy,
                "rule": "miner-detected",
                "category": "Cryptomining",
                "result": "fail",
                "severity": SEVERITY.get(mode, "medium"),
                "scored": True,
                "message": _message(status),
                "resources": [resource],
                "properties": {"incident": name, "mode": mode, "state": str(pod.get("state", ""))},
                "timestamp": _timestamp(str(status.get("lastSeen") or status.get("firstSeen") or "")),
            }
        )
    return results


def _timestamp(rfc3339: str) -> dict[str, int]:
    """The report's ``{seconds, nanos}`` of an incident time (``2026-12-02T05:31:02Z``); zero when unreadable."""
    try:
        moment = datetime.datetime.fromisoformat(rfc3339.replace("Z", "+00:00"))
    except ValueError:
        return {"seconds": 0, "nanos": 0}
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=datetime.UTC)
    return {"seconds": int(moment.timestamp()), "nanos": 0}


def policy_report(namespace: str, incidents: Iterable[Mapping[str, Any]]) -> dict[str, Any]:
    """The namespace's PolicyReport body (without resourceVersion) for these incidents, results in a stable order."""
    results = [r for incident in incidents for r in _results(incident)]
    results.sort(key=lambda r: (r["policy"], r["resources"][0]["name"], r["properties"]["incident"]))
    results = results[:MAX_RESULTS]
    return {
        "apiVersion": REPORT_API_VERSION,
        "kind": "PolicyReport",
        "metadata": {
            "name": REPORT_NAME,
            "namespace": namespace,
            "labels": {"app.kubernetes.io/managed-by": "minerguard"},
        },
        "scope": {"apiVersion": "v1", "kind": "Namespace", "name": namespace},
        "summary": {"pass": 0, "fail": len(results), "warn": 0, "error": 0, "skip": 0},
        "results": results,
    }
