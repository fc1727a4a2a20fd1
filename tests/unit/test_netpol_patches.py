"""Unit tests for the JSON patches minerguard writes to NetworkPolicies (minerguard.domain.netpol).

What these tests prove:

* applying :func:`exclusion_patch` to a policy gives the same podSelector as :func:`with_exclusion`,
  and :func:`exclusion_removal_patch` takes it out again as :func:`without_exclusion` does;
* both patches are conditioned on the podSelector only: a policy changed anywhere else since it
  was read still takes the patch (so a busy writer cannot starve it); one whose podSelector
  changed does not (the caller reads again);
* :func:`quarantine_policy_repair` makes a tenant-made ``minerguard-quarantine`` minerguard's:
  deny-all spec, minerguard's labels, no ownerReferences; :func:`quarantine_policy_owned` tells.
"""

from __future__ import annotations

import copy
from typing import Any

import pytest

from minerguard.domain.netpol import (
    MANAGED_BY,
    QUARANTINE_POLICY,
    exclusion_patch,
    exclusion_removal_patch,
    quarantine_policy,
    quarantine_policy_intact,
    quarantine_policy_owned,
    quarantine_policy_repair,
    with_exclusion,
    without_exclusion,
)
from tests.fakes import json_patch

pytestmark = pytest.mark.unit


def apply(doc: dict[str, Any], ops: list[dict[str, Any]]) -> dict[str, Any]:
    """Apply the patch to a copy, as the apiserver would (tests.fakes.json_patch: a failed test raises ValueError)."""
    return json_patch(copy.deepcopy(doc), ops)


def policy(selector: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {
        "metadata": {"name": "web", "namespace": "t", "resourceVersion": "7", **extra},
        "spec": {"podSelector": selector, "ingress": [{}], "policyTypes": ["Ingress"]},
    }


SELECTORS = [
    {},
    {"matchLabels": {"app": "web"}},
    {"matchExpressions": [{"key": "tier", "operator": "In", "values": ["a", "b"]}]},
    {"matchLabels": {"app": "web"}, "matchExpressions": [{"key": "x", "operator": "Exists"}]},
]


@pytest.mark.parametrize("selector", SELECTORS)
def test_exclusion_patch_is_with_exclusion(selector: dict[str, Any]) -> None:
    np = policy(selector)
    patched = apply(np, exclusion_patch(np))
    assert patched["spec"] == with_exclusion(np)["spec"]
    marked = {**patched, "metadata": with_exclusion(np)["metadata"]}
    assert apply(marked, exclusion_removal_patch(marked))["spec"] == without_exclusion(marked)["spec"] == np["spec"]


@pytest.mark.parametrize("selector", SELECTORS)
def test_exclusion_patch_needs_no_resource_version(selector: dict[str, Any]) -> None:
    read = policy(selector)
    ops = exclusion_patch(read)
    assert all("resourceVersion" not in op["path"] for op in ops)
    # The tenant rewrote everything but the selector meanwhile: the patch still applies, their edit stays.
    busy = policy(selector, resourceVersion="9999", annotations={"edit": "42"})
    busy["spec"]["egress"] = [{}]
    patched = apply(busy, ops)
    assert patched["spec"]["egress"] == [{}] and patched["metadata"]["annotations"] == {"edit": "42"}
    assert patched["spec"]["podSelector"] == with_exclusion(read)["spec"]["podSelector"]


def test_a_changed_selector_fails_the_test_so_the_caller_reads_again() -> None:
    read = policy({"matchLabels": {"app": "web"}})
    changed = policy({"matchLabels": {"app": "other"}})
    with pytest.raises(ValueError, match="test failed"):
        apply(changed, exclusion_patch(read))
    with pytest.raises(ValueError, match="test failed"):
        apply(changed, exclusion_removal_patch(with_exclusion(read)))


def test_a_tenant_made_quarantine_policy_is_taken_over() -> None:
    planted = quarantine_policy("t")
    planted["metadata"]["labels"] = {"app.kubernetes.io/managed-by": "mallory", "team": "x"}
    planted["metadata"]["ownerReferences"] = [{"apiVersion": "v1", "kind": "ConfigMap", "name": "a", "uid": "u"}]
    assert quarantine_policy_intact(planted) and not quarantine_policy_owned(planted)
    fixed = apply(planted, quarantine_policy_repair(planted))
    assert quarantine_policy_intact(fixed) and quarantine_policy_owned(fixed)
    assert "ownerReferences" not in fixed["metadata"]
    assert fixed["metadata"]["labels"] == {**MANAGED_BY, "team": "x"}
    assert fixed["metadata"]["name"] == QUARANTINE_POLICY


def test_an_edited_quarantine_policy_is_restored_and_ours_is_owned() -> None:
    ours = quarantine_policy("t")
    assert quarantine_policy_owned(ours)
    edited = copy.deepcopy(ours)
    edited["spec"]["egress"] = [{}]
    edited["spec"]["podSelector"] = {}
    fixed = apply(edited, quarantine_policy_repair(edited))
    assert fixed["spec"] == ours["spec"] and quarantine_policy_owned(fixed)
