"""Unit tests for minerguard.rbac: the least privilege the operator asks for.

What these tests prove: :func:`required_rules` has no wildcard anywhere and never touches
Secrets; every rule each registered action declares is included, as are the operator's
own rules; the status subresources of both custom resources are there with exactly the
verbs the operator uses; and nothing grants delete beyond the quarantine NetworkPolicies.
"""

from __future__ import annotations

import pytest

from minerguard.actions import ACTIONS, RbacRule
from minerguard.rbac import OPERATOR_RULES, required_rules

pytestmark = pytest.mark.unit


def triples(rules: tuple[RbacRule, ...]) -> set[tuple[str, str, str]]:
    return {(g, r, v) for rule in rules for g in rule.api_groups for r in rule.resources for v in rule.verbs}


REQUIRED = required_rules()


def test_required_rules_are_triples_of_strings() -> None:
    assert REQUIRED
    for triple in REQUIRED:
        assert len(triple) == 3
        assert all(isinstance(part, str) for part in triple)
        _, resource, verb = triple
        assert resource and verb  # "" is only valid as the core API group


def test_no_wildcards() -> None:
    for group, resource, verb in REQUIRED:
        assert "*" not in group and "*" not in resource and "*" not in verb, (group, resource, verb)


def test_no_secrets() -> None:
    for _, resource, _ in REQUIRED:
        assert resource.split("/")[0] != "secrets", resource
    assert not {t for t in REQUIRED if "secret" in t[1]}


def test_no_escalation_verbs() -> None:
    verbs = {v for _, _, v in REQUIRED}
    assert not verbs & {"escalate", "bind", "impersonate", "deletecollection"}
    assert not {t for t in REQUIRED if t[0] == "rbac.authorization.k8s.io"}


def test_every_action_declares_rules() -> None:
    assert ACTIONS, "no actions registered"
    for name, action in ACTIONS.items():
        assert action.name == name
        assert action.rbac, f"action {name} declares no RBAC"


@pytest.mark.parametrize("name", sorted(ACTIONS))
def test_every_actions_rules_are_included(name: str) -> None:
    missing = triples(ACTIONS[name].rbac) - REQUIRED
    assert not missing, f"{name} needs {sorted(missing)}"


def test_operator_rules_are_included() -> None:
    assert triples(OPERATOR_RULES) <= REQUIRED


def test_required_rules_are_exactly_operator_plus_actions() -> None:
    union = triples(OPERATOR_RULES)
    for action in ACTIONS.values():
        union |= triples(action.rbac)
    assert union == REQUIRED


def test_status_subresources() -> None:
    assert ("minerguard.io", "minerpolicies/status", "patch") in REQUIRED
    assert ("minerguard.io", "minerincidents/status", "update") in REQUIRED
    status = {t for t in REQUIRED if t[1].endswith("/status")}
    assert {r for _, r, _ in status} == {"minerpolicies/status", "minerincidents/status"}


def test_own_resources_and_watches() -> None:
    for verb in ("get", "list", "watch"):
        for resource in ("pods", "namespaces", "nodes"):
            assert ("", resource, verb) in REQUIRED
        assert ("networking.k8s.io", "networkpolicies", verb) in REQUIRED
        assert ("minerguard.io", "minerpolicies", verb) in REQUIRED
        assert ("minerguard.io", "minerincidents", verb) in REQUIRED
    assert ("minerguard.io", "minerincidents", "create") in REQUIRED
    assert ("events.k8s.io", "events", "create") in REQUIRED
    assert ("kopf.dev", "clusterkopfpeerings", "patch") in REQUIRED


def test_the_operator_never_changes_policies_or_deletes_incidents() -> None:
    for verb in ("create", "update", "patch", "delete"):
        assert ("minerguard.io", "minerpolicies", verb) not in REQUIRED
    assert ("minerguard.io", "minerincidents", "delete") not in REQUIRED


def test_delete_only_on_network_policies() -> None:
    deletes = {(g, r) for g, r, v in REQUIRED if v == "delete"}
    assert deletes == {("networking.k8s.io", "networkpolicies")}


def test_pods_and_nodes_are_never_deleted_or_created() -> None:
    for resource in ("pods", "nodes", "namespaces"):
        for verb in ("create", "delete", "update"):
            assert ("", resource, verb) not in REQUIRED
    assert ("", "pods/exec", "create") not in REQUIRED
    assert ("", "pods/eviction", "create") not in REQUIRED
