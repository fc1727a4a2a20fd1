"""Unit tests for minerguard.domain.incidents: incident names, new records and status merges.

What these tests prove:

* :func:`incident_name` is deterministic, DNS-safe, distinguishes workload kinds, and
  shortens long names with a stable hash suffix so two long names never collide;
* :func:`new_incident` builds a well-formed MinerIncident;
* :func:`merge_evidence` de-duplicates by (signal, container, detail) and stays bounded;
* :func:`upsert_pod` inserts, reports only real changes, and keeps the newest
  :data:`MAX_PODS` pods;
* :func:`is_repeat` / :func:`append_actions` skip only records that repeat the latest
  record for the same action and target, keep every change, and stay bounded;
* :func:`overall_state` gives the documented incident state for every combination of
  pod states that matters.
"""

from __future__ import annotations

import copy
import re
from typing import Any

import pytest

from minerguard import API_GROUP, API_VERSION
from minerguard.domain.detection import Evidence
from minerguard.domain.incidents import (
    CONTAINED,
    CONTAINING,
    DETECTED,
    ENDED,
    FAILED,
    MAX_ACTIONS,
    MAX_EVIDENCE,
    MAX_PODS,
    PARTIAL,
    POD_CONTAINED,
    POD_DELETED,
    POD_DETECTED,
    POD_FAILED,
    POD_NOT_CONTAINABLE,
    POD_PARTIAL,
    POD_RELEASED,
    RELEASED,
    WorkloadRef,
    append_actions,
    evidence_records,
    incident_name,
    is_repeat,
    merge_evidence,
    new_incident,
    overall_state,
    upsert_pod,
    with_status,
)

pytestmark = pytest.mark.unit

# Kubernetes' IsDNS1123Subdomain (object names) and label-value rules.
DNS_SUBDOMAIN = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*")
LABEL_VALUE = re.compile(r"(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?")


def dns_ok(name: str) -> bool:
    return len(name) <= 253 and DNS_SUBDOMAIN.fullmatch(name) is not None


def label_value_ok(value: str) -> bool:
    return len(value) <= 63 and LABEL_VALUE.fullmatch(value) is not None


def ref(kind: str = "Deployment", name: str = "web", uid: str = "u-1", api_version: str = "apps/v1") -> WorkloadRef:
    return WorkloadRef(api_version=api_version, kind=kind, name=name, uid=uid)


# --------------------------------------------------------------------------- incident_name


@pytest.mark.parametrize(
    ("kind", "name", "expected"),
    [
        ("Pod", "miner", "pod-miner"),
        ("Deployment", "web", "deployment-web"),
        ("ReplicaSet", "web-5d8f7", "replicaset-web-5d8f7"),
        ("StatefulSet", "db", "statefulset-db"),
        ("DaemonSet", "agent", "daemonset-agent"),
        ("Job", "batch.v1", "job-batch.v1"),
        ("CronJob", "nightly", "cronjob-nightly"),
    ],
)
def test_incident_name_is_kind_and_name(kind: str, name: str, expected: str) -> None:
    assert incident_name(ref(kind, name)) == expected


def test_incident_name_distinguishes_kinds_of_the_same_name() -> None:
    names = {incident_name(ref(k, "x")) for k in ("Pod", "Deployment", "StatefulSet", "Job", "CronJob")}
    assert len(names) == 5


def test_incident_name_ignores_uid_and_api_version() -> None:
    # One record per workload name: a re-created workload finds the same incident.
    a = incident_name(ref("Deployment", "web", uid="1", api_version="apps/v1"))
    b = incident_name(ref("Deployment", "web", uid="2", api_version="apps/v1beta1"))
    assert a == b


def test_incident_name_is_deterministic() -> None:
    long = "a" * 300
    assert incident_name(ref("Pod", long)) == incident_name(ref("Pod", long))
    assert incident_name(ref("Pod", "x")) == incident_name(ref("Pod", "x"))


def test_incident_name_sanitises_to_dns() -> None:
    name = incident_name(ref("Pod", "Foo_Bar:baz"))
    assert name == "pod-foo-bar-baz"
    assert dns_ok(name)


def test_incident_name_strips_leading_and_trailing_separators() -> None:
    assert incident_name(ref("Pod", "x_")) == "pod-x"
    assert incident_name(ref("Pod", "x.")) == "pod-x"


def test_incident_name_short_names_are_kept_whole() -> None:
    name = "a" * (240 - len("pod-"))
    assert incident_name(ref("Pod", name)) == f"pod-{name}"


def test_long_name_is_truncated_with_stable_hash_suffix() -> None:
    long = "a" * 250
    out = incident_name(ref("Pod", long))
    assert len(out) == 240
    assert out.startswith("pod-aaaa")
    prefix, _, suffix = out.rpartition("-")
    assert re.fullmatch(r"[0-9a-f]{10}", suffix)
    assert len(prefix) == 229
    assert dns_ok(out)


def test_long_names_sharing_a_prefix_do_not_collide() -> None:
    a = incident_name(ref("Pod", "a" * 249 + "b"))
    b = incident_name(ref("Pod", "a" * 249 + "c"))
    assert a != b
    assert a[:229] == b[:229]
    assert len(a) == len(b) == 240


@pytest.mark.parametrize("length", [236, 237, 240, 250, 253])
def test_long_names_are_dns_safe(length: int) -> None:
    name = "-".join(["abc"] * 100)[:length].strip("-")
    out = incident_name(ref("StatefulSet", name))
    assert len(out) <= 253
    assert dns_ok(out), out


def test_truncation_after_a_dot_is_still_dns_safe() -> None:
    # A valid 250-character pod name (a DNS subdomain with labels of at most 63 characters),
    # with a '.' exactly where the 229-character cut of "pod-<name>" falls.
    labels = ["a" * 63, "b" * 63, "c" * 63, "d" * 32, "e" * 25]
    name = ".".join(labels)
    assert len(name) == 250 and dns_ok(name)
    assert f"pod-{name}"[228] == "."
    out = incident_name(ref("Pod", name))
    assert dns_ok(out), out


# --------------------------------------------------------------------------- new_incident


def test_new_incident_shape() -> None:
    r = ref("Deployment", "web", uid="abc")
    inc = new_incident("shop", r, "cryptominers", "Enforce")
    assert inc["apiVersion"] == f"{API_GROUP}/{API_VERSION}" == "minerguard.io/v1alpha1"
    assert inc["kind"] == "MinerIncident"
    assert inc["metadata"]["name"] == incident_name(r) == "deployment-web"
    assert inc["metadata"]["namespace"] == "shop"
    assert inc["metadata"]["labels"] == {
        "app.kubernetes.io/managed-by": "minerguard",
        "minerguard.io/policy": "cryptominers",
        "minerguard.io/workload-kind": "deployment",
    }
    assert inc["spec"] == {
        "policy": "cryptominers",
        "mode": "Enforce",
        "workload": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "web", "uid": "abc"},
        "release": False,
    }
    assert "status" not in inc


def test_new_incident_keeps_full_policy_name_in_spec_and_bounds_label() -> None:
    policy = "p" * 100
    inc = new_incident("ns", ref(), policy, "Audit")
    assert inc["spec"]["policy"] == policy
    assert inc["metadata"]["labels"]["minerguard.io/policy"] == "p" * 63


def test_new_incident_labels_are_valid_for_long_dotted_policy_names() -> None:
    policy = "a" * 62 + ".example.org"  # a valid MinerPolicy name (DNS subdomain)
    assert dns_ok(policy)
    inc = new_incident("ns", ref(), policy, "Enforce")
    for value in inc["metadata"]["labels"].values():
        assert label_value_ok(value), value


def test_workload_ref_to_dict() -> None:
    assert ref("Pod", "x", uid="u", api_version="v1").to_dict() == {
        "apiVersion": "v1",
        "kind": "Pod",
        "name": "x",
        "uid": "u",
    }


def test_with_status_copies() -> None:
    inc = new_incident("ns", ref(), "p", "Enforce")
    before = copy.deepcopy(inc)
    out = with_status(inc, {"state": DETECTED}, now="2026-12-02T03:00:00Z")
    assert out["status"]["state"] == DETECTED
    assert [c["type"] for c in out["status"]["conditions"]] == ["Detected", "Contained", "Released"]
    assert inc == before
    out["spec"]["release"] = True
    assert inc["spec"]["release"] is False


# --------------------------------------------------------------------------- evidence


def ev(signal: str = "image", container: str = "c", detail: str = "xmrig", **kw: Any) -> dict[str, Any]:
    return {"signal": signal, "container": container, "detail": detail, "strength": "strong", **kw}


def test_evidence_records_tag_the_policy() -> None:
    items = [Evidence("image", "strong", "c", "xmrig"), Evidence("podCpu", "weak", "", "95%", window="5m")]
    recs = evidence_records(items, "p1")
    assert recs == [
        {"signal": "image", "strength": "strong", "container": "c", "detail": "xmrig", "policy": "p1"},
        {"signal": "podCpu", "strength": "weak", "container": "", "detail": "95%", "window": "5m", "policy": "p1"},
    ]


def test_merge_evidence_appends_new_items_in_order() -> None:
    out = merge_evidence([ev(detail="a")], [ev(detail="b"), ev(detail="c")])
    assert [e["detail"] for e in out] == ["a", "b", "c"]


def test_merge_evidence_deduplicates_by_signal_container_detail() -> None:
    existing = [ev(detail="a")]
    new = [
        ev(detail="a", strength="weak", policy="other"),  # same key, other fields differ: a duplicate
        ev(detail="a", container="d"),
        ev(signal="command", detail="a"),
        ev(detail="a", container="d"),  # duplicate within the new items
    ]
    out = merge_evidence(existing, new)
    assert [(e["signal"], e["container"], e["detail"]) for e in out] == [
        ("image", "c", "a"),
        ("image", "d", "a"),
        ("command", "c", "a"),
    ]
    assert out[0]["strength"] == "strong"  # the recorded item is kept, not replaced


def test_merge_evidence_is_idempotent() -> None:
    new = [ev(detail=str(i)) for i in range(5)]
    once = merge_evidence([], new)
    assert merge_evidence(once, new) == once


def test_merge_evidence_is_bounded_keeping_the_first() -> None:
    existing = [ev(detail=f"old{i}") for i in range(MAX_EVIDENCE - 2)]
    out = merge_evidence(existing, [ev(detail=f"new{i}") for i in range(10)])
    assert len(out) == MAX_EVIDENCE
    assert out[: MAX_EVIDENCE - 2] == existing
    assert [e["detail"] for e in out[-2:]] == ["new0", "new1"]
    assert len(merge_evidence([ev(detail=str(i)) for i in range(MAX_EVIDENCE + 20)], [])) == MAX_EVIDENCE


def test_merge_evidence_does_not_mutate_inputs() -> None:
    existing = [ev(detail="a")]
    before = copy.deepcopy(existing)
    out = merge_evidence(existing, [ev(detail="b")])
    out[0]["detail"] = "changed"
    assert existing == before


# --------------------------------------------------------------------------- upsert_pod


def pod(uid: str, state: str = POD_DETECTED, node: str = "n1", **kw: str) -> dict[str, str]:
    return {"uid": uid, "name": f"pod-{uid}", "state": state, "node": node, **kw}


def test_upsert_inserts_a_new_pod() -> None:
    out, changed = upsert_pod([pod("a")], pod("b"))
    assert changed
    assert [p["uid"] for p in out] == ["a", "b"]


def test_upsert_same_state_is_no_change() -> None:
    pods = [pod("a", POD_CONTAINED, reason="x")]
    out, changed = upsert_pod(pods, pod("a", POD_CONTAINED, reason="y"))
    assert not changed
    assert out == pods  # nothing rewritten when nothing changed


def test_upsert_state_change_updates_the_record() -> None:
    pods = [pod("a", POD_DETECTED, extra="kept"), pod("b")]
    out, changed = upsert_pod(pods, pod("a", POD_CONTAINED))
    assert changed
    assert out[0]["state"] == POD_CONTAINED
    assert out[0]["extra"] == "kept"
    assert [p["uid"] for p in out] == ["a", "b"]  # updated in place


def test_upsert_node_change_is_a_change() -> None:
    out, changed = upsert_pod([pod("a", node="n1")], pod("a", node="n2"))
    assert changed and out[0]["node"] == "n2"


def test_upsert_record_without_node() -> None:
    out, changed = upsert_pod([{"uid": "a", "state": POD_DETECTED}], {"uid": "a", "state": POD_DETECTED})
    assert not changed
    out, changed = upsert_pod([], {"uid": "a", "state": POD_DETECTED})
    assert changed and out == [{"uid": "a", "state": POD_DETECTED}]


def test_upsert_does_not_mutate_input() -> None:
    pods = [pod("a")]
    before = copy.deepcopy(pods)
    upsert_pod(pods, pod("a", POD_CONTAINED))
    upsert_pod(pods, pod("b"))
    assert pods == before


def test_upsert_is_bounded_keeping_the_newest() -> None:
    pods = [pod(str(i)) for i in range(MAX_PODS)]
    out, changed = upsert_pod(pods, pod("new"))
    assert changed
    assert len(out) == MAX_PODS
    assert out[-1]["uid"] == "new"
    assert out[0]["uid"] == "1"  # the oldest one went
    assert "0" not in {p["uid"] for p in out}


def test_upsert_update_when_full_keeps_everyone() -> None:
    pods = [pod(str(i)) for i in range(MAX_PODS)]
    out, changed = upsert_pod(pods, pod("0", POD_CONTAINED))
    assert changed and len(out) == MAX_PODS and out[0]["state"] == POD_CONTAINED


# --------------------------------------------------------------------------- actions


def act(
    action: str = "quarantine", target: str = "pod/a", result: str = "Succeeded", message: str = "ok", **kw: Any
) -> dict[str, Any]:
    return {"action": action, "target": target, "result": result, "message": message, **kw}


def test_is_repeat_of_latest_record_for_action_and_target() -> None:
    actions = [act(result="Failed", message="boom"), act()]
    assert is_repeat(actions, act(time="later"))  # time and other fields do not matter
    assert not is_repeat(actions, act(result="Failed", message="boom"))  # older record, not the latest
    assert not is_repeat(actions, act(message="other"))
    assert not is_repeat(actions, act(result="Skipped"))


def test_is_repeat_distinguishes_action_and_target() -> None:
    actions = [act()]
    assert not is_repeat(actions, act(action="cordon"))
    assert not is_repeat(actions, act(target="pod/b"))
    assert not is_repeat([], act())


def test_is_repeat_looks_past_other_targets() -> None:
    actions = [act(target="pod/a"), act(target="pod/b", message="x"), act(action="cordon", target="node/n")]
    assert is_repeat(actions, act(target="pod/a"))


def test_append_actions_skips_repeats_and_keeps_changes() -> None:
    actions = [act()]
    out = append_actions(
        actions,
        [
            act(),  # repeat: skipped
            act(result="Failed", message="boom"),  # change: kept
            act(result="Failed", message="boom"),  # repeats the new latest: skipped
            act(),  # back to success: a change again, kept
            act(target="pod/b"),  # other target: kept
        ],
    )
    assert [(a["target"], a["result"]) for a in out] == [
        ("pod/a", "Succeeded"),
        ("pod/a", "Failed"),
        ("pod/a", "Succeeded"),
        ("pod/b", "Succeeded"),
    ]


def test_append_actions_does_not_mutate_input() -> None:
    actions = [act()]
    before = copy.deepcopy(actions)
    out = append_actions(actions, [act(message="new")])
    assert actions == before
    out[0]["message"] = "changed"
    assert actions == before


def test_append_actions_is_bounded_keeping_the_newest() -> None:
    actions = [act(target=f"pod/{i}") for i in range(MAX_ACTIONS)]
    out = append_actions(actions, [act(target="pod/new1"), act(target="pod/new2")])
    assert len(out) == MAX_ACTIONS
    assert [a["target"] for a in out[-2:]] == ["pod/new1", "pod/new2"]
    assert out[0]["target"] == "pod/2"


def test_append_nothing() -> None:
    actions = [act()]
    assert append_actions(actions, []) == actions


# --------------------------------------------------------------------------- overall_state


def pods_in(*states: str) -> list[dict[str, str]]:
    return [pod(str(i), s) for i, s in enumerate(states)]


@pytest.mark.parametrize(
    ("states", "mode", "expected"),
    [
        # Audit: detection only, whatever the pods say.
        ((POD_DETECTED,), "Audit", DETECTED),
        ((POD_CONTAINED,), "Audit", DETECTED),
        ((POD_FAILED, POD_DETECTED), "Audit", DETECTED),
        # No pods yet.
        ((), "Enforce", DETECTED),
        ((), "Audit", DETECTED),
        # Every live pod contained.
        ((POD_CONTAINED,), "Enforce", CONTAINED),
        ((POD_CONTAINED, POD_CONTAINED), "Enforce", CONTAINED),
        ((POD_CONTAINED, POD_DELETED), "Enforce", CONTAINED),
        ((POD_CONTAINED, POD_RELEASED), "Enforce", CONTAINED),
        # Some contained, some not yet / not possible.
        ((POD_CONTAINED, POD_DETECTED), "Enforce", PARTIAL),
        ((POD_PARTIAL,), "Enforce", PARTIAL),
        ((POD_CONTAINED, POD_PARTIAL), "Enforce", PARTIAL),
        ((POD_NOT_CONTAINABLE,), "Enforce", PARTIAL),
        ((POD_CONTAINED, POD_NOT_CONTAINABLE), "Enforce", PARTIAL),
        ((POD_CONTAINED, POD_FAILED), "Enforce", PARTIAL),
        ((POD_NOT_CONTAINABLE, POD_FAILED), "Enforce", PARTIAL),
        # Nothing contained and something failed.
        ((POD_FAILED,), "Enforce", FAILED),
        ((POD_FAILED, POD_DETECTED), "Enforce", FAILED),
        ((POD_FAILED, POD_DELETED), "Enforce", FAILED),
        # Work still to do.
        ((POD_DETECTED,), "Enforce", CONTAINING),
        ((POD_DETECTED, POD_DELETED), "Enforce", CONTAINING),
        # Every pod gone or released.
        ((POD_DELETED,), "Enforce", ENDED),
        ((POD_DELETED, POD_DELETED), "Enforce", ENDED),
        ((POD_DELETED, POD_RELEASED), "Enforce", ENDED),
        ((POD_RELEASED,), "Enforce", ENDED),
        ((POD_DELETED,), "Audit", ENDED),
    ],
)
def test_overall_state(states: tuple[str, ...], mode: str, expected: str) -> None:
    assert overall_state(pods_in(*states), mode, released=False) == expected


@pytest.mark.parametrize(
    "states",
    [(), (POD_CONTAINED,), (POD_FAILED,), (POD_DELETED,), (POD_DETECTED, POD_CONTAINED)],
)
@pytest.mark.parametrize("mode", ["Enforce", "Audit"])
def test_released_wins_over_everything(states: tuple[str, ...], mode: str) -> None:
    assert overall_state(pods_in(*states), mode, released=True) == RELEASED


def test_states_are_the_documented_enum() -> None:
    assert {DETECTED, CONTAINING, CONTAINED, PARTIAL, FAILED, RELEASED, ENDED} == {
        "Detected",
        "Containing",
        "Contained",
        "PartiallyContained",
        "ContainmentFailed",
        "Released",
        "Ended",
    }
