"""minerguard_open_incidents{state}: the incidents neither released nor ended, counted from the watch (pure part).

What these tests prove: every open state is reported, zero included; an incident counts once,
in its latest state; a released, ended or deleted incident stops counting; incidents of the same
name in two namespaces are two.
"""

from __future__ import annotations

from typing import Any

import pytest

from minerguard.domain.incidents import CONTAINED, CONTAINING, DETECTED, ENDED, FAILED, PARTIAL, RELEASED, OpenIncidents

pytestmark = pytest.mark.unit


def body(ns: str, name: str, state: str | None) -> dict[str, Any]:
    out: dict[str, Any] = {"metadata": {"namespace": ns, "name": name}}
    if state is not None:
        out["status"] = {"state": state}
    return out


def test_counts_follow_each_incidents_latest_state() -> None:
    seen = OpenIncidents()
    assert seen.counts() == {DETECTED: 0, CONTAINING: 0, CONTAINED: 0, PARTIAL: 0, FAILED: 0}
    seen.observe("ADDED", body("a", "pod-x", None))  # no status yet: just detected
    seen.observe("ADDED", body("b", "pod-x", CONTAINING))
    assert seen.counts()[DETECTED] == 1 and seen.counts()[CONTAINING] == 1
    seen.observe("MODIFIED", body("b", "pod-x", CONTAINED))
    seen.observe("MODIFIED", body("b", "pod-x", CONTAINED))
    assert seen.counts()[CONTAINED] == 1 and seen.counts()[CONTAINING] == 0
    seen.observe("MODIFIED", body("b", "pod-x", RELEASED))
    seen.observe("MODIFIED", body("a", "pod-x", ENDED))
    assert sum(seen.counts().values()) == 0
    seen.observe("ADDED", body("c", "deployment-y", PARTIAL))
    seen.observe("DELETED", body("c", "deployment-y", PARTIAL))
    assert sum(seen.counts().values()) == 0
