"""Unit tests for minerguard.domain.netpol: quarantine by NetworkPolicy, reasoned about offline.

What these tests prove:

* the deny-all quarantine policy has the right shape, and :func:`quarantine_policy_intact`
  notices every edit that would let traffic through (rules added, selector changed,
  policyTypes missing or narrowed);
* :func:`selects` and :func:`policy_types` follow Kubernetes semantics (``{}`` and a
  missing selector select every pod; absent policyTypes means Ingress, plus Egress only
  when there are egress rules);
* NetworkPolicies are additive: a deny-all plus an allow-all that selects the same pod
  leaves the pod open, so :func:`reopening` and :func:`isolation_problems` must find the
  allow-all;
* :func:`with_exclusion` / :func:`without_exclusion` take a policy off quarantined pods
  and back again without changing anything else, idempotently, without mutating input;
* :func:`isolation_problems` reports every problem kind, and nothing when isolated.
"""

from __future__ import annotations

import copy
from typing import Any

import pytest

from minerguard.domain import netpol
from minerguard.domain.netpol import (
    EXCLUSION_ANNOTATION,
    QUARANTINE_LABEL,
    QUARANTINE_POLICY,
    allows_something,
    has_exclusion,
    is_ours,
    isolation_problems,
    policy_types,
    quarantine_policy,
    quarantine_policy_intact,
    quarantined_labels,
    reopening,
    selects,
    with_exclusion,
    without_exclusion,
)
from minerguard.domain.selectors import matches

pytestmark = pytest.mark.unit

EXCLUSION = {"key": QUARANTINE_LABEL, "operator": "DoesNotExist"}
POD = {"app": "web", "tier": "front"}
QPOD = quarantined_labels(POD)


def np_(name: str, spec: dict[str, Any] | None = None, **meta: Any) -> dict[str, Any]:
    """A NetworkPolicy named ``name`` with ``spec``."""
    out: dict[str, Any] = {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": {"name": name, "namespace": "ns", **meta},
    }
    if spec is not None:
        out["spec"] = spec
    return out


def allow_all(name: str = "allow-all", selector: dict[str, Any] | None = None) -> dict[str, Any]:
    """Allow every ingress and egress to the pods it selects (all pods by default)."""
    return np_(
        name,
        {
            "podSelector": {} if selector is None else selector,
            "policyTypes": ["Ingress", "Egress"],
            "ingress": [{}],
            "egress": [{}],
        },
    )


def deny_all(name: str = "default-deny", selector: dict[str, Any] | None = None) -> dict[str, Any]:
    return np_(name, {"podSelector": {} if selector is None else selector, "policyTypes": ["Ingress", "Egress"]})


def ours(namespace: str = "ns") -> dict[str, Any]:
    return quarantine_policy(namespace)


# --------------------------------------------------------------------------- quarantine policy


def test_quarantine_policy_shape() -> None:
    np = quarantine_policy("shop")
    assert np["apiVersion"] == "networking.k8s.io/v1"
    assert np["kind"] == "NetworkPolicy"
    assert np["metadata"]["name"] == QUARANTINE_POLICY == "minerguard-quarantine"
    assert np["metadata"]["namespace"] == "shop"
    assert np["metadata"]["labels"]["app.kubernetes.io/managed-by"] == "minerguard"
    assert np["metadata"]["annotations"]["minerguard.io/description"]
    assert np["spec"] == {
        "podSelector": {"matchLabels": {QUARANTINE_LABEL: "true"}},
        "policyTypes": ["Ingress", "Egress"],
    }
    # Deny-all: no rule of either kind, both kinds in force.
    assert "ingress" not in np["spec"] and "egress" not in np["spec"]
    assert policy_types(np) == {"Ingress", "Egress"}
    assert not allows_something(np)
    assert is_ours(np)


def test_quarantine_policy_selects_only_quarantined_pods() -> None:
    np = quarantine_policy("ns")
    assert selects(np, QPOD)
    assert not selects(np, POD)
    assert not selects(np, {**POD, QUARANTINE_LABEL: "false"})


def test_quarantine_policy_objects_are_independent() -> None:
    a = quarantine_policy("a")
    a["metadata"]["labels"]["x"] = "y"
    a["spec"]["podSelector"]["matchLabels"]["z"] = "w"
    b = quarantine_policy("b")
    assert "x" not in b["metadata"]["labels"]
    assert b["spec"]["podSelector"] == {"matchLabels": {QUARANTINE_LABEL: "true"}}
    assert netpol.MANAGED_BY == {
        "app.kubernetes.io/managed-by": "minerguard",
        "app.kubernetes.io/part-of": "minerguard",
    }


def test_fresh_quarantine_policy_is_intact() -> None:
    assert quarantine_policy_intact(quarantine_policy("ns"))


def test_intact_ignores_metadata_and_policy_type_order() -> None:
    np = quarantine_policy("ns")
    np["metadata"]["labels"] = {"other": "x"}
    np["metadata"]["annotations"] = {}
    np["spec"]["policyTypes"] = ["Egress", "Ingress"]
    assert quarantine_policy_intact(np)


def test_intact_accepts_explicitly_empty_rule_lists() -> None:
    np = quarantine_policy("ns")
    np["spec"]["ingress"] = []
    np["spec"]["egress"] = []
    assert quarantine_policy_intact(np)


@pytest.mark.parametrize(
    ("edit", "why"),
    [
        (lambda s: s.__setitem__("ingress", [{}]), "ingress allow-all added"),
        (lambda s: s.__setitem__("egress", [{}]), "egress allow-all added"),
        (
            lambda s: s.__setitem__("egress", [{"to": [{"ipBlock": {"cidr": "0.0.0.0/0"}}]}]),
            "egress to the internet added",
        ),
        (lambda s: s.__setitem__("ingress", [{"from": [{"podSelector": {}}]}]), "ingress from the namespace added"),
        (lambda s: s.__setitem__("podSelector", {}), "selector widened to every pod"),
        (lambda s: s.__setitem__("podSelector", {"matchLabels": {"app": "web"}}), "selector replaced"),
        (lambda s: s.__setitem__("podSelector", {"matchLabels": {QUARANTINE_LABEL: "yes"}}), "label value changed"),
        (
            lambda s: s["podSelector"]["matchLabels"].__setitem__("app", "web"),
            "selector narrowed with an extra label",
        ),
        (lambda s: s.pop("podSelector"), "selector removed"),
        (lambda s: s.pop("policyTypes"), "policyTypes missing (defaults to Ingress only)"),
        (lambda s: s.__setitem__("policyTypes", []), "policyTypes emptied"),
        (lambda s: s.__setitem__("policyTypes", ["Ingress"]), "Egress dropped"),
        (lambda s: s.__setitem__("policyTypes", ["Egress"]), "Ingress dropped"),
    ],
)
def test_intact_detects_every_edit(edit: Any, why: str) -> None:
    np = quarantine_policy("ns")
    edit(np["spec"])
    assert not quarantine_policy_intact(np), why


def test_intact_false_without_spec() -> None:
    np = quarantine_policy("ns")
    del np["spec"]
    assert not quarantine_policy_intact(np)
    np["spec"] = None
    assert not quarantine_policy_intact(np)


def test_is_ours_by_name() -> None:
    assert is_ours({"metadata": {"name": QUARANTINE_POLICY}})
    assert not is_ours({"metadata": {"name": "allow-all"}})
    assert not is_ours({"metadata": None})
    assert not is_ours({})


def test_quarantined_labels_adds_label_without_mutating() -> None:
    labels = {"app": "web"}
    out = quarantined_labels(labels)
    assert out == {"app": "web", QUARANTINE_LABEL: "true"}
    assert labels == {"app": "web"}
    assert quarantined_labels({QUARANTINE_LABEL: "false"}) == {QUARANTINE_LABEL: "true"}


# --------------------------------------------------------------------------- selects


@pytest.mark.parametrize("spec", [{"podSelector": {}}, {"podSelector": None}, {}, None])
def test_empty_or_missing_selector_selects_every_pod(spec: dict[str, Any] | None) -> None:
    np = np_("p", spec)
    assert selects(np, POD)
    assert selects(np, {})
    assert selects(np, QPOD)


def test_missing_spec_selects_every_pod() -> None:
    assert selects({"metadata": {"name": "p"}}, POD)


@pytest.mark.parametrize(
    ("selector", "labels", "expected"),
    [
        ({"matchLabels": {"app": "web"}}, POD, True),
        ({"matchLabels": {"app": "web", "tier": "front"}}, POD, True),
        ({"matchLabels": {"app": "web", "tier": "back"}}, POD, False),
        ({"matchLabels": {"app": "db"}}, POD, False),
        ({"matchLabels": {"app": "web"}}, {}, False),
        ({"matchExpressions": [{"key": "app", "operator": "In", "values": ["web", "api"]}]}, POD, True),
        ({"matchExpressions": [{"key": "app", "operator": "In", "values": ["db"]}]}, POD, False),
        ({"matchExpressions": [{"key": "app", "operator": "NotIn", "values": ["db"]}]}, POD, True),
        ({"matchExpressions": [{"key": "app", "operator": "NotIn", "values": ["web"]}]}, POD, False),
        ({"matchExpressions": [{"key": "zone", "operator": "NotIn", "values": ["a"]}]}, POD, True),
        ({"matchExpressions": [{"key": "tier", "operator": "Exists"}]}, POD, True),
        ({"matchExpressions": [{"key": "zone", "operator": "Exists"}]}, POD, False),
        ({"matchExpressions": [{"key": "zone", "operator": "DoesNotExist"}]}, POD, True),
        ({"matchExpressions": [{"key": "app", "operator": "DoesNotExist"}]}, POD, False),
        (
            {
                "matchLabels": {"app": "web"},
                "matchExpressions": [{"key": "tier", "operator": "In", "values": ["front"]}],
            },
            POD,
            True,
        ),
        (
            {
                "matchLabels": {"app": "web"},
                "matchExpressions": [{"key": "tier", "operator": "In", "values": ["back"]}],
            },
            POD,
            False,
        ),
        ({"matchExpressions": [EXCLUSION]}, POD, True),
        ({"matchExpressions": [EXCLUSION]}, QPOD, False),
    ],
)
def test_selects_match_labels_and_expressions(selector: dict[str, Any], labels: dict[str, str], expected: bool) -> None:
    assert selects(np_("p", {"podSelector": selector}), labels) is expected


# --------------------------------------------------------------------------- policy types


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ({}, {"Ingress"}),
        ({"podSelector": {}}, {"Ingress"}),
        ({"ingress": [{}]}, {"Ingress"}),
        ({"egress": [{}]}, {"Ingress", "Egress"}),
        ({"ingress": [{}], "egress": [{}]}, {"Ingress", "Egress"}),
        ({"egress": []}, {"Ingress"}),
        ({"policyTypes": ["Egress"]}, {"Egress"}),
        ({"policyTypes": ["Egress"], "ingress": [{}]}, {"Egress"}),
        ({"policyTypes": ["Ingress"], "egress": [{}]}, {"Ingress"}),
        ({"policyTypes": ["Ingress", "Egress"]}, {"Ingress", "Egress"}),
    ],
)
def test_policy_types_defaulting(spec: dict[str, Any], expected: set[str]) -> None:
    assert policy_types(np_("p", spec)) == expected


def test_policy_types_without_spec_is_ingress() -> None:
    assert policy_types({"metadata": {"name": "p"}}) == {"Ingress"}
    assert policy_types(np_("p", None)) == {"Ingress"}


# --------------------------------------------------------------------------- allows_something


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ({"podSelector": {}}, False),
        ({"podSelector": {}, "policyTypes": ["Ingress", "Egress"]}, False),
        ({"podSelector": {}, "ingress": []}, False),
        ({"podSelector": {}, "ingress": [{}]}, True),
        ({"podSelector": {}, "ingress": [{"from": [{"podSelector": {"matchLabels": {"a": "b"}}}]}]}, True),
        ({"podSelector": {}, "egress": [{}]}, True),
        ({"podSelector": {}, "egress": [{"to": [{"ipBlock": {"cidr": "10.0.0.0/8"}}]}]}, True),
        # Rules of a type that is not in force allow nothing.
        ({"podSelector": {}, "policyTypes": ["Egress"], "ingress": [{}]}, False),
        ({"podSelector": {}, "policyTypes": ["Ingress"], "egress": [{}]}, False),
        ({"podSelector": {}, "policyTypes": ["Ingress"], "ingress": [{}]}, True),
        ({"podSelector": {}, "policyTypes": ["Egress"], "egress": [{}]}, True),
    ],
)
def test_allows_something(spec: dict[str, Any], expected: bool) -> None:
    assert allows_something(np_("p", spec)) is expected


def test_allows_something_without_spec() -> None:
    assert not allows_something({"metadata": {"name": "p"}})


# --------------------------------------------------------------------------- reopening


def test_reopening_finds_allow_all_selecting_the_pod() -> None:
    policies = [ours(), allow_all()]
    found = reopening(policies, POD)
    assert [p["metadata"]["name"] for p in found] == ["allow-all"]


def test_reopening_judges_the_pod_as_quarantined() -> None:
    # A policy that only selects pods without the label does not re-open a quarantined pod.
    np = allow_all(selector={"matchExpressions": [{"key": QUARANTINE_LABEL, "operator": "DoesNotExist"}]})
    assert reopening([np], POD) == []
    # And one that selects quarantined pods specifically does, even though POD lacks the label today.
    np = allow_all("forensics", selector={"matchLabels": {QUARANTINE_LABEL: "true"}})
    assert [p["metadata"]["name"] for p in reopening([np], POD)] == ["forensics"]


def test_reopening_skips_deny_only_policies() -> None:
    assert reopening([deny_all(), np_("ingress-only-deny", {"podSelector": {}})], POD) == []


def test_reopening_skips_policies_not_selecting_the_pod() -> None:
    policies = [
        allow_all("db", selector={"matchLabels": {"app": "db"}}),
        allow_all("back", selector={"matchExpressions": [{"key": "tier", "operator": "In", "values": ["back"]}]}),
    ]
    assert reopening(policies, POD) == []


def test_reopening_skips_a_policy_that_already_has_the_exclusion() -> None:
    np = with_exclusion(allow_all())
    assert has_exclusion(np)
    assert reopening([np], POD) == []


def test_reopening_never_reports_our_own_policy() -> None:
    tampered = ours()
    tampered["spec"]["ingress"] = [{}]
    assert allows_something(tampered)
    assert reopening([tampered], POD) == []


def test_reopening_returns_every_offender_in_order() -> None:
    policies = [
        allow_all("a"),
        deny_all(),
        allow_all("b", selector={"matchLabels": {"app": "web"}}),
        allow_all("c", selector={"matchLabels": {"app": "db"}}),
        np_("d", {"podSelector": {"matchLabels": {"tier": "front"}}, "egress": [{}]}),
    ]
    assert [p["metadata"]["name"] for p in reopening(policies, POD)] == ["a", "b", "d"]


def test_reopening_accepts_any_iterable() -> None:
    assert len(reopening(iter([allow_all()]), POD)) == 1


# --------------------------------------------------------------------------- exclusion round trip


def test_with_exclusion_stops_selecting_quarantined_pods_only() -> None:
    np = allow_all(selector={"matchLabels": {"app": "web"}})
    out = with_exclusion(np)
    assert not selects(out, QPOD)
    assert selects(out, POD)
    assert not selects(out, {"app": "db"})
    assert has_exclusion(out)
    assert not reopening([out], POD)


def test_with_exclusion_on_empty_selector() -> None:
    out = with_exclusion(allow_all())
    assert out["spec"]["podSelector"] == {"matchExpressions": [EXCLUSION]}
    assert selects(out, {}) and selects(out, POD) and not selects(out, QPOD)


def test_with_exclusion_on_missing_selector_and_spec() -> None:
    out = with_exclusion(np_("p", {"ingress": [{}]}))
    assert out["spec"]["podSelector"] == {"matchExpressions": [EXCLUSION]}
    out = with_exclusion({"metadata": {"name": "p"}})
    assert out["spec"]["podSelector"] == {"matchExpressions": [EXCLUSION]}
    assert out["metadata"]["annotations"] == {EXCLUSION_ANNOTATION: "added"}


def test_with_exclusion_preserves_everything_else() -> None:
    user_expr = {"key": "tier", "operator": "In", "values": ["front"]}
    np = np_(
        "web",
        {
            "podSelector": {"matchLabels": {"app": "web"}, "matchExpressions": [user_expr]},
            "policyTypes": ["Ingress", "Egress"],
            "ingress": [{"from": [{"namespaceSelector": {}}]}],
            "egress": [{"to": [{"ipBlock": {"cidr": "10.0.0.0/8"}}]}],
        },
        labels={"team": "shop"},
        annotations={"owner": "alice"},
        resourceVersion="42",
    )
    out = with_exclusion(np)
    assert out["spec"]["podSelector"] == {"matchLabels": {"app": "web"}, "matchExpressions": [user_expr, EXCLUSION]}
    for key in ("policyTypes", "ingress", "egress"):
        assert out["spec"][key] == np["spec"][key]
    assert out["metadata"]["labels"] == {"team": "shop"}
    assert out["metadata"]["annotations"] == {"owner": "alice", EXCLUSION_ANNOTATION: "added"}
    assert out["metadata"]["resourceVersion"] == "42"
    assert out["metadata"]["name"] == "web"
    assert out["apiVersion"] == np["apiVersion"] and out["kind"] == np["kind"]


def test_with_exclusion_is_a_no_op_for_pods_without_the_label() -> None:
    np = np_(
        "web",
        {
            "podSelector": {
                "matchLabels": {"app": "web"},
                "matchExpressions": [{"key": "tier", "operator": "NotIn", "values": ["back"]}],
            },
            "ingress": [{}],
        },
    )
    out = with_exclusion(np)
    for labels in ({}, POD, {"app": "web"}, {"app": "web", "tier": "back"}, {"app": "db"}, {"tier": "front"}):
        assert selects(out, labels) == selects(np, labels), labels
        assert not selects(out, quarantined_labels(labels))


def test_with_exclusion_is_idempotent() -> None:
    np = allow_all(selector={"matchLabels": {"app": "web"}})
    once = with_exclusion(np)
    twice = with_exclusion(once)
    assert twice == once
    assert twice["spec"]["podSelector"]["matchExpressions"].count(EXCLUSION) == 1


def test_with_exclusion_does_not_mutate_input() -> None:
    np = np_(
        "web",
        {"podSelector": {"matchLabels": {"app": "web"}, "matchExpressions": [{"key": "x", "operator": "Exists"}]}},
        annotations={"owner": "alice"},
    )
    before = copy.deepcopy(np)
    out = with_exclusion(np)
    assert np == before
    out["spec"]["podSelector"]["matchLabels"]["app"] = "changed"
    out["metadata"]["annotations"]["owner"] = "changed"
    assert np == before


def test_without_exclusion_undoes_with_exclusion() -> None:
    user_expr = {"key": "tier", "operator": "In", "values": ["front"]}
    np = np_(
        "web",
        {
            "podSelector": {"matchLabels": {"app": "web"}, "matchExpressions": [user_expr]},
            "ingress": [{}],
        },
        annotations={"owner": "alice"},
    )
    back = without_exclusion(with_exclusion(np))
    assert back == np
    assert not has_exclusion(back)
    assert EXCLUSION_ANNOTATION not in back["metadata"]["annotations"]


def test_round_trip_of_empty_selector_drops_match_expressions() -> None:
    np = allow_all()
    back = without_exclusion(with_exclusion(np))
    assert back["spec"]["podSelector"] == {}
    assert back["spec"] == np["spec"]
    # The annotation is taken out again (an empty map is left, which Kubernetes treats as none).
    assert not back["metadata"].get("annotations")


def test_round_trip_preserves_selection_for_every_pod() -> None:
    np = np_(
        "web",
        {
            "podSelector": {
                "matchLabels": {"app": "web"},
                "matchExpressions": [{"key": "tier", "operator": "Exists"}],
            },
            "ingress": [{}],
        },
    )
    back = without_exclusion(with_exclusion(np))
    for labels in ({}, POD, QPOD, {"app": "web"}, {"app": "db", "tier": "x"}):
        assert selects(back, labels) == selects(np, labels)


def test_without_exclusion_is_idempotent_and_harmless_on_plain_policies() -> None:
    np = allow_all(selector={"matchLabels": {"app": "web"}})
    out = without_exclusion(np)
    assert out["spec"] == np["spec"]
    assert without_exclusion(out) == out


def test_without_exclusion_does_not_mutate_input() -> None:
    np = with_exclusion(allow_all(selector={"matchLabels": {"app": "web"}}))
    before = copy.deepcopy(np)
    out = without_exclusion(np)
    assert np == before
    assert has_exclusion(np) and not has_exclusion(out)


def test_without_exclusion_keeps_other_expressions_on_other_keys() -> None:
    others = [{"key": "tier", "operator": "Exists"}, {"key": "zone", "operator": "NotIn", "values": ["a"]}]
    np = np_("p", {"podSelector": {"matchExpressions": [others[0], EXCLUSION, others[1]]}})
    np["metadata"]["annotations"] = {EXCLUSION_ANNOTATION: "added"}
    assert without_exclusion(np)["spec"]["podSelector"] == {"matchExpressions": others}


def test_has_exclusion() -> None:
    assert not has_exclusion(allow_all())
    assert not has_exclusion({"metadata": {"name": "x"}})
    ours = np_("p", {"podSelector": {"matchExpressions": [EXCLUSION]}})
    # The expression alone, written by a person, is not minerguard's to take out on release.
    assert not has_exclusion(ours)
    ours["metadata"]["annotations"] = {EXCLUSION_ANNOTATION: "added"}
    assert has_exclusion(ours)
    # Another operator on the same key is not the exclusion.
    assert not has_exclusion(
        np_("p", {"podSelector": {"matchExpressions": [{"key": QUARANTINE_LABEL, "operator": "Exists"}]}})
    )


def test_with_exclusion_never_changes_selection_of_unquarantined_pods_with_user_expression_on_label() -> None:
    # A hand-written policy that lets a forensics namespace reach quarantined pods.
    forensics = np_(
        "forensics",
        {
            "podSelector": {"matchExpressions": [{"key": QUARANTINE_LABEL, "operator": "In", "values": ["true"]}]},
            "policyTypes": ["Ingress"],
            "ingress": [{"from": [{"namespaceSelector": {"matchLabels": {"team": "forensics"}}}]}],
        },
    )
    assert reopening([forensics], POD)  # it re-opens quarantined pods, so quarantine rewrites it
    out = with_exclusion(forensics)
    # The module's promise: the exclusion is a no-op for every pod without the label.
    assert not selects(forensics, POD)
    assert not selects(out, POD)
    # And release restores the policy exactly.
    assert without_exclusion(out) == {**forensics, "metadata": {**forensics["metadata"], "annotations": {}}}


def test_without_exclusion_keeps_an_exclusion_minerguard_did_not_add() -> None:
    hardened = np_("hardened", {"podSelector": {"matchExpressions": [EXCLUSION]}, "ingress": [{}]})
    assert EXCLUSION_ANNOTATION not in (hardened["metadata"].get("annotations") or {})
    assert without_exclusion(hardened)["spec"] == hardened["spec"]


# --------------------------------------------------------------------------- isolation_problems


def test_isolated_pod_has_no_problems() -> None:
    assert isolation_problems([ours()], QPOD) == []


def test_isolated_with_unrelated_and_excluded_policies() -> None:
    policies = [
        ours(),
        deny_all(),
        allow_all("db", selector={"matchLabels": {"app": "db"}}),
        with_exclusion(allow_all()),
        np_("ingress-deny", {"podSelector": {}}),
    ]
    assert isolation_problems(policies, QPOD) == []


def test_additive_semantics_deny_all_plus_allow_all_is_not_isolated() -> None:
    # Kubernetes unions what every selecting policy allows: the deny-all does not win.
    problems = isolation_problems([ours(), allow_all()], QPOD)
    assert problems == ["NetworkPolicy allow-all still allows traffic to or from the pod"]


def test_additive_semantics_ingress_only_or_egress_only_reopeners() -> None:
    ingress = np_("in", {"podSelector": {}, "ingress": [{"from": [{"podSelector": {}}]}]})
    egress = np_("out", {"podSelector": {}, "policyTypes": ["Egress"], "egress": [{"to": [{"podSelector": {}}]}]})
    problems = isolation_problems([ours(), ingress, egress], QPOD)
    assert problems == [
        "NetworkPolicy in still allows traffic to or from the pod",
        "NetworkPolicy out still allows traffic to or from the pod",
    ]


def test_problem_host_network() -> None:
    problems = isolation_problems([ours()], QPOD, host_network=True)
    assert problems == ["the pod uses the host network, which NetworkPolicy does not govern"]


def test_problem_missing_label() -> None:
    assert isolation_problems([ours()], POD) == [f"the pod lacks the label {QUARANTINE_LABEL}=true"]
    assert isolation_problems([ours()], {**POD, QUARANTINE_LABEL: "false"}) == [
        f"the pod lacks the label {QUARANTINE_LABEL}=true"
    ]


def test_problem_missing_deny_all() -> None:
    assert isolation_problems([], QPOD) == [f"NetworkPolicy {QUARANTINE_POLICY} is missing"]
    assert isolation_problems([deny_all()], QPOD) == [f"NetworkPolicy {QUARANTINE_POLICY} is missing"]


def test_problem_edited_deny_all() -> None:
    edited = ours()
    edited["spec"]["policyTypes"] = ["Ingress"]
    assert isolation_problems([edited], QPOD) == [
        f"NetworkPolicy {QUARANTINE_POLICY} was changed and no longer denies all traffic"
    ]


def test_edited_deny_all_with_rules_is_reported_once_as_changed() -> None:
    edited = ours()
    edited["spec"]["egress"] = [{}]
    problems = isolation_problems([edited], QPOD)
    assert problems == [f"NetworkPolicy {QUARANTINE_POLICY} was changed and no longer denies all traffic"]


def test_problem_reopening_policy_without_a_name() -> None:
    nameless = {"spec": {"podSelector": {}, "ingress": [{}]}}
    assert isolation_problems([ours(), nameless], QPOD) == ["NetworkPolicy ? still allows traffic to or from the pod"]


def test_every_problem_at_once_in_order() -> None:
    problems = isolation_problems([allow_all()], POD, host_network=True)
    assert problems == [
        "the pod uses the host network, which NetworkPolicy does not govern",
        f"the pod lacks the label {QUARANTINE_LABEL}=true",
        f"NetworkPolicy {QUARANTINE_POLICY} is missing",
        "NetworkPolicy allow-all still allows traffic to or from the pod",
    ]


def test_isolation_judges_the_live_labels() -> None:
    # A policy that selects only unlabelled pods re-opens the pod while it lacks the label.
    np = allow_all("web", selector={"matchLabels": {"app": "web"}, "matchExpressions": [EXCLUSION]})
    assert "NetworkPolicy web still allows traffic to or from the pod" in isolation_problems([ours(), np], POD)
    assert isolation_problems([ours(), np], QPOD) == []


def test_isolation_accepts_a_generator() -> None:
    assert isolation_problems((p for p in [ours(), allow_all()]), QPOD) == [
        "NetworkPolicy allow-all still allows traffic to or from the pod"
    ]


def test_quarantine_then_isolation_end_to_end() -> None:
    """What the quarantine action does, in pure form: deny-all plus exclusions leaves nothing open."""
    policies = [
        allow_all(),
        allow_all("web", selector={"matchLabels": {"app": "web"}}),
        np_("dns", {"podSelector": {}, "policyTypes": ["Egress"], "egress": [{"ports": [{"port": 53}]}]}),
        allow_all("db", selector={"matchLabels": {"app": "db"}}),
    ]
    assert len(isolation_problems(policies, QPOD)) == 4  # missing deny-all + three re-openers
    to_fix = {p["metadata"]["name"] for p in reopening(policies, POD)}
    assert to_fix == {"allow-all", "web", "dns"}
    fixed = [with_exclusion(p) if p["metadata"]["name"] in to_fix else p for p in policies] + [ours()]
    assert isolation_problems(fixed, QPOD) == []
    # Every other pod keeps exactly the policies it had.
    for labels in (POD, {"app": "db"}, {}):
        before = [p["metadata"]["name"] for p in policies if selects(p, labels)]
        after = [p["metadata"]["name"] for p in fixed if not is_ours(p) and selects(p, labels)]
        assert before == after
    # Release restores the originals.
    released = [without_exclusion(p) if has_exclusion(p) else p for p in fixed if not is_ours(p)]
    for orig, back in zip(policies, released, strict=True):
        assert back["spec"] == orig["spec"]


def test_selector_semantics_agree_with_selectors_module() -> None:
    sel = {"matchLabels": {"app": "web"}, "matchExpressions": [EXCLUSION]}
    for labels in (POD, QPOD, {}):
        assert selects(np_("p", {"podSelector": sel}), labels) == matches(sel, labels)
