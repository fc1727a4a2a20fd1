"""MinerIncident conditions (Detected, Contained, Released), computed purely from the status by domain.incidents.

What these tests prove: every status write (every writer goes through :func:`with_status`) carries
the three conditions in the Kubernetes shape; Contained is True only in state Contained and
otherwise says why not (AuditOnly for an Audit incident); Released follows a person's release;
lastTransitionTime moves only when a condition's status changes, never on a mere message change;
observedGeneration is the incident's generation; a hostile message is made printable and bounded.
"""

from __future__ import annotations

from typing import Any

import pytest

from minerguard.domain.incidents import (
    CONDITION_TYPES,
    CONTAINED,
    CONTAINING,
    DETECTED,
    ENDED,
    FAILED,
    PARTIAL,
    RELEASED,
    conditions,
    with_status,
)

pytestmark = pytest.mark.unit

T0, T1 = "2026-12-02T03:00:00Z", "2026-12-02T03:05:00Z"


def by_type(conds: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {c["type"]: c for c in conds}


def incident(mode: str = "Enforce", generation: int = 3, status: dict[str, Any] | None = None) -> dict[str, Any]:
    body: dict[str, Any] = {
        "apiVersion": "minerguard.io/v1alpha1",
        "kind": "MinerIncident",
        "metadata": {"name": "pod-x", "namespace": "shop", "generation": generation},
        "spec": {"policy": "p", "mode": mode, "workload": {"kind": "Pod", "name": "x"}},
    }
    if status is not None:
        body["status"] = status
    return body


@pytest.mark.parametrize(
    ("state", "mode", "contained", "reason", "released"),
    [
        (DETECTED, "Audit", "False", "AuditOnly", "False"),
        (DETECTED, "Enforce", "False", "NotContainedYet", "False"),
        (CONTAINING, "Enforce", "False", "Containing", "False"),
        (CONTAINED, "Enforce", "True", "Contained", "False"),
        (PARTIAL, "Enforce", "False", "PartiallyContained", "False"),
        (FAILED, "Enforce", "False", "ContainmentFailed", "False"),
        (RELEASED, "Enforce", "False", "Released", "True"),
        (ENDED, "Enforce", "False", "WorkloadGone", "False"),
    ],
)
def test_each_state_gives_its_conditions(state: str, mode: str, contained: str, reason: str, released: str) -> None:
    conds = conditions({"state": state, "message": "m"}, mode, 4, [], T0)
    assert [c["type"] for c in conds] == list(CONDITION_TYPES) == ["Detected", "Contained", "Released"]
    got = by_type(conds)
    assert got["Detected"]["status"] == "True" and got["Detected"]["reason"] == mode
    assert (got["Contained"]["status"], got["Contained"]["reason"]) == (contained, reason)
    assert got["Released"]["status"] == released
    for c in conds:
        assert set(c) == {"type", "status", "reason", "message", "observedGeneration", "lastTransitionTime"}
        assert c["observedGeneration"] == 4 and c["lastTransitionTime"] == T0 and c["message"] == "m"
        assert c["reason"].isalnum() and c["reason"][0].isupper()


def test_transition_time_moves_only_when_the_status_changes() -> None:
    first = conditions({"state": CONTAINING, "message": "working"}, "Enforce", 1, [], T0)
    # Same statuses, new message: the times stay.
    again = conditions({"state": PARTIAL, "message": "one pod held back"}, "Enforce", 1, first, T1)
    assert {c["type"]: c["lastTransitionTime"] for c in again} == dict.fromkeys(CONDITION_TYPES, T0)
    assert by_type(again)["Contained"]["reason"] == "PartiallyContained"
    # Contained flips to True: only its time moves.
    done = conditions({"state": CONTAINED, "message": "ok"}, "Enforce", 1, again, T1)
    times = {c["type"]: c["lastTransitionTime"] for c in done}
    assert times == {"Detected": T0, "Contained": T1, "Released": T0}


def test_with_status_writes_conditions_from_the_records_generation_and_last_update() -> None:
    old = incident(
        generation=2,
        status={"state": CONTAINING, "conditions": conditions({"state": CONTAINING}, "Enforce", 1, [], T0)},
    )
    out = with_status(old, {"state": CONTAINED, "message": "2 pods contained", "lastUpdated": T1})
    got = by_type(out["status"]["conditions"])
    assert got["Contained"] == {
        "type": "Contained",
        "status": "True",
        "reason": "Contained",
        "message": "2 pods contained",
        "observedGeneration": 2,
        "lastTransitionTime": T1,
    }
    assert got["Detected"]["lastTransitionTime"] == T0
    assert out["status"]["state"] == CONTAINED and "conditions" not in out["spec"]
    assert old["status"]["state"] == CONTAINING, "the input is not modified"
    released = with_status(out, {"state": RELEASED, "message": "released by alice", "lastUpdated": T1})
    assert by_type(released["status"]["conditions"])["Released"]["status"] == "True"
    audit = with_status(incident(mode="Audit"), {"state": DETECTED, "lastUpdated": T0})
    assert by_type(audit["status"]["conditions"])["Contained"]["reason"] == "AuditOnly"


def test_hostile_messages_and_previous_conditions_are_harmless() -> None:
    message = "\x1b[31mpwned\u202e" + "x" * 50_000
    conds = conditions({"state": FAILED, "message": message}, "Enforce", 1, ["junk", {"type": 7}], T0)
    for c in conds:
        assert "\x1b" not in c["message"] and "\u202e" not in c["message"]
        assert len(c["message"]) <= 1024
        assert c["lastTransitionTime"] == T0
