"""Pure helpers for MinerIncident records: names, new objects, and status merges.

One incident per detected workload (a bare pod, or the controller that owns it),
named deterministically from the workload so that a second event, a restart or a
second replica of the operator always finds the same record instead of making one.
No API calls here; ``services.containment`` reads and writes the records.
"""

from __future__ import annotations

import copy
import datetime
import hashlib
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from minerguard import API_GROUP, API_VERSION
from minerguard.domain.detection import Evidence
from minerguard.domain.text import printable, shorten

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


def new_incident(namespace: str, ref: WorkloadRef, policy: str, mode: str, name: str = "") -> dict[str, Any]:
    """A new incident about ``ref``, named ``name`` (by default the workload's own incident name)."""
    return {
        "apiVersion": f"{API_GROUP}/{API_VERSION}",
        "kind": "MinerIncident",
        "metadata": {
            "name": name or incident_name(ref),
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


# Conditions, in the usual Kubernetes shape, so that generic tools (kstatus, Argo CD) read an
# incident's health: Detected, Contained, Released.
CONDITION_TYPES = ("Detected", "Contained", "Released")
_NOT_CONTAINED = {
    CONTAINING: "Containing",
    PARTIAL: "PartiallyContained",
    FAILED: "ContainmentFailed",
    RELEASED: "Released",
    ENDED: "WorkloadGone",
}


def conditions(
    status: Mapping[str, Any], mode: str, generation: int, previous: Sequence[Any], now: str
) -> list[dict[str, Any]]:
    """The incident's conditions for ``status``: what each says now, and since when.

    Detected is True for every incident (it exists because a policy matched; the reason is the
    mode). Contained is True only while every live pod's containment is verified (state
    Contained), otherwise False with the state as reason (AuditOnly for an Audit incident).
    Released is True once a person released it. A condition's lastTransitionTime moves only when
    its status changes; observedGeneration is the incident's generation.
    """
    state = str(status.get("state") or DETECTED)
    message = shorten(printable(str(status.get("message") or state)), 1024)
    if state == CONTAINED:
        contained = ("True", "Contained")
    elif state == DETECTED:
        contained = ("False", "AuditOnly" if mode == "Audit" else "NotContainedYet")
    else:
        contained = ("False", _NOT_CONTAINED.get(state, "Unknown"))
    wanted = {
        "Detected": ("True", "Audit" if mode == "Audit" else "Enforce"),
        "Contained": contained,
        "Released": ("True", "ReleasedByPerson") if state == RELEASED else ("False", "NotReleased"),
    }
    before = {str(c.get("type")): c for c in previous if isinstance(c, Mapping)}
    out: list[dict[str, Any]] = []
    for kind in CONDITION_TYPES:
        value, reason = wanted[kind]
        old = before.get(kind) or {}
        since = old.get("lastTransitionTime") if old.get("status") == value else None
        out.append(
            {
                "type": kind,
                "status": value,
                "reason": reason,
                "message": message,
                "observedGeneration": generation,
                "lastTransitionTime": str(since or now),
            }
        )
    return out


def with_status(incident: Mapping[str, Any], status: Mapping[str, Any], now: str | None = None) -> dict[str, Any]:
    """The incident with ``status`` as its status, and its conditions computed from it (see :func:`conditions`).

    ``now`` defaults to the status' lastUpdated, which every writer sets just before.
    """
    out = copy.deepcopy(dict(incident))
    new = dict(status)
    meta = out.get("metadata") or {}
    spec = out.get("spec") or {}
    when = now or str(new.get("lastUpdated") or "") or utc_now()
    previous = (incident.get("status") or {}).get("conditions") or []
    new["conditions"] = conditions(new, str(spec.get("mode") or ""), int(meta.get("generation") or 1), previous, when)
    out["status"] = new
    return out


def utc_now() -> str:
    return datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


OPEN_STATES = (DETECTED, CONTAINING, CONTAINED, PARTIAL, FAILED)


class OpenIncidents:
    """The state of every incident seen on the watch, to count the open ones (not Released or Ended) by state."""

    def __init__(self) -> None:
        self._states: dict[tuple[str, str], str] = {}

    def observe(self, event_type: str | None, body: Mapping[str, Any]) -> None:
        meta = body.get("metadata") or {}
        key = (str(meta.get("namespace") or ""), str(meta.get("name") or ""))
        state = str((body.get("status") or {}).get("state") or DETECTED)
        if event_type == "DELETED" or state not in OPEN_STATES:
            self._states.pop(key, None)
        else:
            self._states[key] = state

    def counts(self) -> dict[str, int]:
        """Every open state, zero included (so that a dashboard has a series for each)."""
        out = dict.fromkeys(OPEN_STATES, 0)
        for state in self._states.values():
            out[state] += 1
        return out
