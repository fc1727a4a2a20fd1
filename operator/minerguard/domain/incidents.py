"""Pure helpers for MinerIncident records: names, new objects, and status merges.

One incident per detected workload (a bare pod, or the controller that owns it),
named deterministically from the workload so that a second event, a restart or a
second replica of the operator always finds the same record instead of making one.
No API calls here; ``services.containment`` reads and writes the records.
"""

from __future__ import annotations

import copy
import hashlib
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from minerguard import API_GROUP, API_VERSION
from minerguard.domain.detection import Evidence

MAX_PODS = 100
MAX_ACTIONS = 200
MAX_EVIDENCE = 50

# Pod states inside an incident.
POD_CONTAINED = "Contained"
POD_DETECTED = "Detected"
POD_NOT_CONTAINABLE = "NotContainable"
POD_PARTIAL = "PartiallyContained"
POD_FAILED = "ContainmentFailed"
POD_RELEASED = "Released"
POD_DELETED = "Deleted"

# Incident states.
DETECTED = "Detected"
CONTAINING = "Containing"
CONTAINED = "Contained"
PARTIAL = "PartiallyContained"
FAILED = "ContainmentFailed"
RELEASED = "Released"
ENDED = "Ended"


@dataclass(frozen=True)
class WorkloadRef:
    """The workload an incident is about."""

    api_version: str
    kind: str
    name: str
    uid: str

    def to_dict(self) -> dict[str, str]:
        return {"apiVersion": self.api_version, "kind": self.kind, "name": self.name, "uid": self.uid}


def incident_name(ref: WorkloadRef) -> str:
    """A valid, stable object name for the workload's incident."""
    base = re.sub(r"[^a-z0-9.-]", "-", f"{ref.kind.lower()}-{ref.name.lower()}").strip("-.")
    if len(base) <= 240:
        return base
    digest = hashlib.sha256(base.encode()).hexdigest()[:10]
    return f"{base[:229].rstrip('-.')}-{digest}"


def label_value(text: str) -> str:
    """A valid label value: at most 63 characters, starting and ending alphanumeric."""
    value = re.sub(r"[^A-Za-z0-9_.-]", "-", text)[:63]
    return value.strip("-_.")


def new_incident(namespace: str, ref: WorkloadRef, policy: str, mode: str) -> dict[str, Any]:
    return {
        "apiVersion": f"{API_GROUP}/{API_VERSION}",
        "kind": "MinerIncident",
        "metadata": {
            "name": incident_name(ref),
            "namespace": namespace,
            "labels": {
                "app.kubernetes.io/managed-by": "minerguard",
                "minerguard.io/policy": label_value(policy),
                "minerguard.io/workload-kind": label_value(ref.kind.lower()),
            },
        },
        "spec": {"policy": policy, "mode": mode, "workload": ref.to_dict(), "release": False},
    }


def evidence_records(evidence: Iterable[Evidence], policy: str) -> list[dict[str, str]]:
    return [{**e.to_dict(), "policy": policy} for e in evidence]


def merge_evidence(existing: Sequence[Mapping[str, Any]], new: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Existing evidence plus new items not already recorded (by signal, container and detail), bounded."""
    out = [dict(e) for e in existing]
    seen = {(e.get("signal"), e.get("container"), e.get("detail")) for e in out}
    for e in new:
        key = (e.get("signal"), e.get("container"), e.get("detail"))
        if key not in seen:
            out.append(dict(e))
            seen.add(key)
    return out[:MAX_EVIDENCE]


def upsert_pod(pods: Sequence[Mapping[str, Any]], record: Mapping[str, str]) -> tuple[list[dict[str, Any]], bool]:
    """Insert or update the pod record by uid. Returns the list and whether the pod's state changed."""
    out = [dict(p) for p in pods]
    for i, p in enumerate(out):
        if p.get("uid") == record["uid"]:
            if p.get("state") == record["state"] and p.get("node") == record.get("node"):
                return out, False
            out[i] = {**p, **record}
            return out, True
    out.append(dict(record))
    return out[-MAX_PODS:], True


def is_repeat(actions: Sequence[Mapping[str, Any]], rec: Mapping[str, Any]) -> bool:
    """Whether the latest record of the same action and target already says the same (result and message)."""
    latest = next(
        (a for a in reversed(actions) if a.get("action") == rec.get("action") and a.get("target") == rec.get("target")),
        None,
    )
    return latest is not None and all(latest.get(k) == rec.get(k) for k in ("result", "message"))


def append_actions(actions: Sequence[Mapping[str, Any]], new: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Append action records, skipping those that repeat the latest record for their action and target."""
    out = [dict(a) for a in actions]
    for rec in new:
        if not is_repeat(out, rec):
            out.append(dict(rec))
    return out[-MAX_ACTIONS:]


def overall_state(pods: Sequence[Mapping[str, Any]], mode: str, released: bool) -> str:
    """The incident state that follows from its pods."""
    if released:
        return RELEASED
    live = [p for p in pods if p.get("state") not in (POD_DELETED, POD_RELEASED)]
    if not live:
        return ENDED if pods else DETECTED
    if mode == "Audit":
        return DETECTED
    states = {p.get("state") for p in live}
    if states == {POD_CONTAINED}:
        return CONTAINED
    if states & {POD_CONTAINED, POD_NOT_CONTAINABLE, POD_PARTIAL}:
        return PARTIAL
    if POD_FAILED in states:
        return FAILED
    return CONTAINING


def with_status(incident: Mapping[str, Any], status: Mapping[str, Any]) -> dict[str, Any]:
    out = copy.deepcopy(dict(incident))
    out["status"] = dict(status)
    return out
