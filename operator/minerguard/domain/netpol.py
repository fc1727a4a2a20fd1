"""Pure NetworkPolicy reasoning for quarantine: no API calls, plain dicts in and out.

NetworkPolicies are additive: a pod selected by a deny-all policy still gets any
traffic that another policy selecting it allows. So quarantine is two things:

1. one deny-all policy per namespace, ``minerguard-quarantine``, selecting pods that
   carry the label ``minerguard.io/quarantined=true`` for both Ingress and Egress;
2. every other policy in the namespace that would select a quarantined pod and allow
   it something gets ``minerguard.io/quarantined DoesNotExist`` added to its
   podSelector, so it stops selecting quarantined pods and nothing else changes
   (the expression is a no-op for every pod without the label). The policy is
   annotated so release can take the expression out again.

Taking the pod out of other policies this way never touches the pod's own labels,
so the ReplicaSet that owns it keeps owning it: no replacement replicas, no storm.

A pod is reported contained only when :func:`isolation_problems` finds nothing.
hostNetwork pods are never contained by NetworkPolicy; that is said, not hidden.

Writes to other people's policies are JSON patches whose only precondition is a ``test`` of the
podSelector they change (:func:`exclusion_patch`, :func:`exclusion_removal_patch`): no
resourceVersion, so a tenant rewriting anything else in its policy in a loop cannot starve
them. A namespace holding quarantined pods carries the label :data:`NAMESPACE_MARK`, which the
chart's admission policy reads to refuse new policies there that would select them.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable, Mapping
from typing import Any

from minerguard.domain import selectors

QUARANTINE_LABEL = "minerguard.io/quarantined"
QUARANTINE_POLICY = "minerguard-quarantine"
EXCLUSION_ANNOTATION = "minerguard.io/quarantine-exclusion"
NAMESPACE_MARK = "minerguard.io/quarantined-pods"
MANAGED_BY = {"app.kubernetes.io/managed-by": "minerguard", "app.kubernetes.io/part-of": "minerguard"}
_EXCLUSION = {"key": QUARANTINE_LABEL, "operator": "DoesNotExist"}


def quarantine_policy(namespace: str) -> dict[str, Any]:
    """The deny-all NetworkPolicy for quarantined pods in ``namespace``."""
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": {
            "name": QUARANTINE_POLICY,
            "namespace": namespace,
            "labels": dict(MANAGED_BY),
            "annotations": {
                "minerguard.io/description": (
                    "Deny-all for pods minerguard quarantined as cryptominers. "
                    "Release through their MinerIncident, not by editing this object."
                )
            },
        },
        "spec": {
            "podSelector": {"matchLabels": {QUARANTINE_LABEL: "true"}},
            "policyTypes": ["Ingress", "Egress"],
        },
    }


def quarantine_policy_intact(np: Mapping[str, Any]) -> bool:
    """True when the live quarantine policy still denies everything to quarantined pods."""
    spec = np.get("spec") or {}
    want = quarantine_policy("x")["spec"]
    return (
        spec.get("podSelector") == want["podSelector"]
        and sorted(spec.get("policyTypes") or []) == ["Egress", "Ingress"]
        and not spec.get("ingress")
        and not spec.get("egress")
    )


def quarantine_policy_owned(np: Mapping[str, Any]) -> bool:
    """True when the live quarantine policy carries minerguard's labels and no ownerReferences.

    A tenant may create ``minerguard-quarantine`` before minerguard does, owned by one of its own
    objects: deleting that owner would have the garbage collector delete the deny-all.
    """
    meta = np.get("metadata") or {}
    return not meta.get("ownerReferences") and MANAGED_BY.items() <= (meta.get("labels") or {}).items()


def quarantine_policy_repair(np: Mapping[str, Any]) -> list[dict[str, Any]]:
    """A JSON patch making a live ``minerguard-quarantine`` exactly minerguard's: spec, labels, no owners."""
    desired = quarantine_policy(str((np.get("metadata") or {}).get("namespace", "")))
    meta = np.get("metadata") or {}
    ops: list[dict[str, Any]] = [{"op": "replace", "path": "/spec", "value": desired["spec"]}]
    if "ownerReferences" in meta:
        ops.append({"op": "remove", "path": "/metadata/ownerReferences"})
    ops.append({"op": "add", "path": "/metadata/labels", "value": {**(meta.get("labels") or {}), **MANAGED_BY}})
    annotations = {**(meta.get("annotations") or {}), **desired["metadata"]["annotations"]}
    ops.append({"op": "add", "path": "/metadata/annotations", "value": annotations})
    return ops


def is_ours(np: Mapping[str, Any]) -> bool:
    return bool((np.get("metadata") or {}).get("name") == QUARANTINE_POLICY)


def quarantined_labels(labels: Mapping[str, str]) -> dict[str, str]:
    return {**labels, QUARANTINE_LABEL: "true"}


def selects(np: Mapping[str, Any], pod_labels: Mapping[str, str]) -> bool:
    """Whether the policy's podSelector selects a pod with these labels ({} selects every pod)."""
    selector = (np.get("spec") or {}).get("podSelector")
    if selector is None:
        selector = {}
    return selectors.matches(selector, pod_labels)


def policy_types(np: Mapping[str, Any]) -> set[str]:
    """The policy types in force, with Kubernetes' defaulting when the field is absent."""
    spec = np.get("spec") or {}
    declared = spec.get("policyTypes")
    if declared:
        return set(declared)
    types = {"Ingress"}
    if spec.get("egress"):
        types.add("Egress")
    return types


def allows_something(np: Mapping[str, Any]) -> bool:
    """Whether the policy allows any traffic to or from the pods it selects."""
    spec = np.get("spec") or {}
    types = policy_types(np)
    return bool(("Ingress" in types and spec.get("ingress")) or ("Egress" in types and spec.get("egress")))


def reopening(policies: Iterable[Mapping[str, Any]], pod_labels: Mapping[str, str]) -> list[Mapping[str, Any]]:
    """Other policies that would allow traffic to or from a quarantined pod with these labels."""
    labels = quarantined_labels(pod_labels)
    return [np for np in policies if not is_ours(np) and selects(np, labels) and allows_something(np)]


def with_exclusion(np: Mapping[str, Any]) -> dict[str, Any]:
    """A copy of the policy that no longer selects quarantined pods, annotated for release."""
    out = copy.deepcopy(dict(np))
    spec = out.setdefault("spec", {})
    selector = spec.get("podSelector") or {}
    expressions = [e for e in selector.get("matchExpressions") or [] if e != _EXCLUSION]
    expressions.append(dict(_EXCLUSION))
    spec["podSelector"] = {**selector, "matchExpressions": expressions}
    meta = out.setdefault("metadata", {})
    meta["annotations"] = {**(meta.get("annotations") or {}), EXCLUSION_ANNOTATION: "added"}
    return out


def without_exclusion(np: Mapping[str, Any]) -> dict[str, Any]:
    """A copy with the expression minerguard added taken out again (an exclusion a person wrote stays)."""
    out = copy.deepcopy(dict(np))
    if ((out.get("metadata") or {}).get("annotations") or {}).get(EXCLUSION_ANNOTATION) != "added":
        return out
    spec = out.setdefault("spec", {})
    selector = dict(spec.get("podSelector") or {})
    expressions = [e for e in selector.get("matchExpressions") or [] if e != _EXCLUSION]
    if expressions:
        selector["matchExpressions"] = expressions
    else:
        selector.pop("matchExpressions", None)
    spec["podSelector"] = selector
    annotations = dict((out.get("metadata") or {}).get("annotations") or {})
    annotations.pop(EXCLUSION_ANNOTATION, None)
    out.setdefault("metadata", {})["annotations"] = annotations
    return out


def exclusion_patch(np: Mapping[str, Any]) -> list[dict[str, Any]]:
    """A JSON patch adding the exclusion to the policy's podSelector, on condition that the selector is as read.

    The ``test`` guards only the podSelector, never the resourceVersion: edits of anything else made
    meanwhile neither conflict with it nor get lost.
    """
    selector = (np.get("spec") or {}).get("podSelector") or {}
    ops: list[dict[str, Any]] = [{"op": "test", "path": "/spec/podSelector", "value": selector}]
    if selector.get("matchExpressions"):
        ops.append({"op": "add", "path": "/spec/podSelector/matchExpressions/-", "value": dict(_EXCLUSION)})
    else:
        ops.append({"op": "add", "path": "/spec/podSelector/matchExpressions", "value": [dict(_EXCLUSION)]})
    return ops


def exclusion_removal_patch(np: Mapping[str, Any]) -> list[dict[str, Any]]:
    """A JSON patch taking minerguard's exclusion out of the podSelector again, on condition it is as read."""
    selector = (np.get("spec") or {}).get("podSelector") or {}
    remaining = [e for e in selector.get("matchExpressions") or [] if e != _EXCLUSION]
    ops: list[dict[str, Any]] = [{"op": "test", "path": "/spec/podSelector", "value": selector}]
    if remaining:
        ops.append({"op": "replace", "path": "/spec/podSelector/matchExpressions", "value": remaining})
    else:
        ops.append({"op": "remove", "path": "/spec/podSelector/matchExpressions"})
    return ops


def exclusion_annotation(added: bool) -> dict[str, str | None]:
    """The annotation that tells release which exclusions minerguard added (merge-patch form; None removes)."""
    return {EXCLUSION_ANNOTATION: "added" if added else None}


def has_exclusion(np: Mapping[str, Any]) -> bool:
    """Whether minerguard added its exclusion to this policy (and so release must take it out)."""
    selector = (np.get("spec") or {}).get("podSelector") or {}
    added = ((np.get("metadata") or {}).get("annotations") or {}).get(EXCLUSION_ANNOTATION) == "added"
    return added and _EXCLUSION in (selector.get("matchExpressions") or [])


def isolation_problems(
    policies: Iterable[Mapping[str, Any]], pod_labels: Mapping[str, str], host_network: bool = False
) -> list[str]:
    """Everything that stops a pod with these labels being isolated; empty means isolated.

    ``pod_labels`` are the pod's live labels: a pod without the quarantine label is not isolated.
    """
    problems: list[str] = []
    if host_network:
        problems.append("the pod uses the host network, which NetworkPolicy does not govern")
    if pod_labels.get(QUARANTINE_LABEL) != "true":
        problems.append(f"the pod lacks the label {QUARANTINE_LABEL}=true")
    policies = list(policies)
    ours = [np for np in policies if is_ours(np)]
    if not ours:
        problems.append(f"NetworkPolicy {QUARANTINE_POLICY} is missing")
    elif not quarantine_policy_intact(ours[0]):
        problems.append(f"NetworkPolicy {QUARANTINE_POLICY} was changed and no longer denies all traffic")
    for np in policies:
        if not is_ours(np) and selects(np, pod_labels) and allows_something(np):
            name = (np.get("metadata") or {}).get("name", "?")
            problems.append(f"NetworkPolicy {name} still allows traffic to or from the pod")
    return problems
