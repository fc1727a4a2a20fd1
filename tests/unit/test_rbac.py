"""Unit tests for minerguard.rbac: the least privilege the operator asks for.

What these tests prove: :func:`required_rules` has no wildcard anywhere and never touches
Secrets; every rule each registered action declares is included, as are the operator's
own rules; the status subresources of both custom resources are there with exactly the
verbs the operator uses; and nothing grants delete beyond the quarantine NetworkPolicies.
"""

from __future__ import annotations

import pytest

from minerguard.actions import ACTIONS, RbacRule
from minerguard.actions.enforcement import backends_for
from minerguard.domain import admintier
from minerguard.rbac import required_rules

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


def test_the_only_authorization_call_is_a_subject_access_review() -> None:
    """The foothold asks what a miner's ServiceAccount can do; that is the one authorization call (#15)."""
    assert {t for t in REQUIRED if t[0] == "authorization.k8s.io"} == {
        ("authorization.k8s.io", "subjectaccessreviews", "create")
    }


def test_no_escalation_verbs() -> None:
    verbs = {v for _, _, v in REQUIRED}
    assert not verbs & {"escalate", "bind", "impersonate", "deletecollection"}
    assert not {t for t in REQUIRED if t[0] == "rbac.authorization.k8s.io"}


def test_every_action_declares_rules() -> None:
    assert ACTIONS, "no actions registered"
    for name, action in ACTIONS.items():
        assert action.name == name
        assert action.rbac, f"action {name} declares no RBAC"


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


def test_delete_only_on_network_policies_and_pods_for_evict() -> None:
    deletes = {(g, r) for g, r, v in REQUIRED if v == "delete"}
    admin_tier = {(k.group, k.plural) for k in admintier.KINDS}
    assert deletes == {("networking.k8s.io", "networkpolicies"), ("", "pods")} | admin_tier
    declaring = [
        a.name for a in ACTIONS.values() for rule in a.rbac if "delete" in rule.verbs and "pods" in rule.resources
    ]
    assert declaring == ["evict"]  # deleting pods comes with the evict action, and only with it


@pytest.mark.parametrize("backend", admintier.BACKENDS)
def test_each_backend_asks_only_for_its_own_policies(backend: str) -> None:
    """An admin-tier backend alone cannot write tenants' NetworkPolicies; networkPolicy alone
    cannot write any cluster-wide policy; ``auto`` needs them all."""
    alone = required_rules((backend,))
    writes = {(g, r) for g, r, v in alone if v in ("create", "patch", "delete")}
    own = {(k.group, k.plural) for k in admintier.KINDS if k.backend == backend}
    others = {(k.group, k.plural) for k in admintier.KINDS} - own
    assert own <= writes and not (others & writes)
    tenant = ("networking.k8s.io", "networkpolicies")
    assert (tenant in writes) == (backend == admintier.NETWORK_POLICY)
    assert required_rules(backends_for(admintier.AUTO)) == REQUIRED
    assert required_rules(backends_for(backend, migrate_from_network_policy=False)) == alone


def test_pods_and_nodes_are_never_created_and_nodes_never_deleted() -> None:
    for resource in ("pods", "nodes", "namespaces"):
        for verb in ("create", "update"):
            assert ("", resource, verb) not in REQUIRED
    assert ("", "nodes", "delete") not in REQUIRED
    assert ("", "namespaces", "delete") not in REQUIRED
    assert ("", "pods/exec", "create") not in REQUIRED
    assert ("", "pods/eviction", "create") not in REQUIRED


# Every call storage makes, as the RBAC rule that grants it: (verb, kind) as minerguard_api_calls_total
# labels it -> (apiGroup, resource, verb). Only the status of incidents is updated and only the status of
# policies is patched; "scale" is a patch of the scale subresource.
GRANTS = {
    ("get", "Pod"): ("", "pods", "get"),
    ("list", "Pod"): ("", "pods", "list"),
    ("patch", "Pod"): ("", "pods", "patch"),
    ("delete", "Pod"): ("", "pods", "delete"),
    ("get", "Node"): ("", "nodes", "get"),
    ("list", "Node"): ("", "nodes", "list"),
    ("patch", "Node"): ("", "nodes", "patch"),
    ("get", "NetworkPolicy"): ("networking.k8s.io", "networkpolicies", "get"),
    ("list", "NetworkPolicy"): ("networking.k8s.io", "networkpolicies", "list"),
    ("create", "NetworkPolicy"): ("networking.k8s.io", "networkpolicies", "create"),
    ("update", "NetworkPolicy"): ("networking.k8s.io", "networkpolicies", "update"),
    ("delete", "NetworkPolicy"): ("networking.k8s.io", "networkpolicies", "delete"),
    ("patch", "NetworkPolicy"): ("networking.k8s.io", "networkpolicies", "patch"),
    ("get", "Namespace"): ("", "namespaces", "get"),
    ("patch", "Namespace"): ("", "namespaces", "patch"),
    ("get", "MinerIncident"): ("minerguard.io", "minerincidents", "get"),
    ("list", "MinerIncident"): ("minerguard.io", "minerincidents", "list"),
    ("create", "MinerIncident"): ("minerguard.io", "minerincidents", "create"),
    ("patch", "MinerIncident"): ("minerguard.io", "minerincidents", "patch"),
    ("update", "MinerIncident"): ("minerguard.io", "minerincidents/status", "update"),
    ("get", "MinerPolicy"): ("minerguard.io", "minerpolicies", "get"),
    ("patch", "MinerPolicy"): ("minerguard.io", "minerpolicies/status", "patch"),
    ("create", "Event"): ("events.k8s.io", "events", "create"),
    ("create", "SubjectAccessReview"): ("authorization.k8s.io", "subjectaccessreviews", "create"),
    ("get", "ReplicaSet"): ("apps", "replicasets", "get"),
    ("get", "Deployment"): ("apps", "deployments", "get"),
    ("patch", "Deployment"): ("apps", "deployments", "patch"),
    ("scale", "Deployment"): ("apps", "deployments/scale", "patch"),
}


def test_every_call_the_services_make_is_granted() -> None:
    """Contain a Deployment's miner with every pod, node and owner action, then release it, on FakeStorage:
    each call made must be granted by required_rules(), so an action that starts calling something it does
    not declare fails here (and the chart, rendered from the same rules, would refuse it in a cluster)."""
    from tests.unit.test_containment_service import NS, build, node, pod_body, policy_body

    actions = [{"name": "quarantine"}, {"name": "cordon"}, {"name": "taint"}, {"name": "scaleOwner"}]
    op = build(policy=policy_body(actions=actions))
    for n in ("node-1", "node-2", "node-3", "node-4"):
        op.storage.put("Node", node(n))
    deployment = {"kind": "Deployment", "apiVersion": "apps/v1", "metadata": {"name": "web", "namespace": NS}}
    deployment["spec"] = {"replicas": 2}
    op.storage.put("Deployment", deployment)
    owner = {"apiVersion": "apps/v1", "kind": "Deployment", "name": "web", "uid": "uid-web", "controller": True}
    op.storage.put(
        "ReplicaSet", {"kind": "ReplicaSet", "metadata": {"name": "web-1", "namespace": NS, "ownerReferences": [owner]}}
    )
    pod = pod_body("web-1-abcde")
    pod["metadata"]["ownerReferences"] = [
        {"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "web-1", "uid": "uid-web-1", "controller": True}
    ]
    op.storage.put("Pod", pod)
    op.settle()
    op.storage.patch_incident_spec(NS, "deployment-web", {"release": True})
    op.settle()
    made = set(op.storage.calls)
    assert {("scale", "Deployment"), ("patch", "Node"), ("patch", "Pod")} <= made  # the flow really ran them
    assert ("create", "SubjectAccessReview") in made  # the foothold's reviews
    granted = required_rules(enabled={"scaleOwner"})  # the chart with scaleOwner.enabled
    ungranted = sorted(call for call in made if call not in GRANTS or GRANTS[call] not in granted)
    assert not ungranted, f"calls the operator's RBAC does not grant: {ungranted}"
    assert GRANTS[("scale", "Deployment")] not in REQUIRED  # the chart's default: scaleOwner off, no workload writes


def test_scale_owner_rules_only_when_enabled() -> None:
    """scaleOwner is the one action that writes workloads: off by default, its rules come only with it."""
    workload_writes = {(g, r, v) for g, r, v in required_rules(enabled={"scaleOwner"}) if g in ("apps", "batch")}
    workload_writes = {t for t in workload_writes if t[2] != "get"}
    assert workload_writes == triples(ACTIONS["scaleOwner"].rbac)
    assert not {t for t in REQUIRED if t[0] in ("apps", "batch") and t[2] != "get"}
    assert [a.name for a in ACTIONS.values() if a.optional] == ["scaleOwner"]


def test_back_to_network_policy_may_only_read_and_delete_the_old_cluster_wide_policy() -> None:
    from minerguard.actions.enforcement import cleanup_for

    alone = required_rules((admintier.NETWORK_POLICY,))
    moving = required_rules((admintier.NETWORK_POLICY,), cleanup=cleanup_for(admintier.NETWORK_POLICY))
    added = moving - alone
    assert added == {(k.group, k.plural, v) for k in admintier.KINDS for v in ("get", "delete")}
    assert cleanup_for(admintier.NETWORK_POLICY, migrate_from_admin_tier=False) == ()
    assert cleanup_for(admintier.AUTO) == () and cleanup_for(admintier.CILIUM) == ()


def test_a_disabled_optional_action_fails_without_an_api_call() -> None:
    from dataclasses import replace

    from minerguard.actions import Outcome
    from minerguard.config import Settings
    from tests.fakes import FakeStorage
    from tests.unit.test_actions import context

    storage = FakeStorage()
    ctx = context(storage, settings=Settings())
    calls = storage.total_calls()
    result = ACTIONS["scaleOwner"].run(ctx)
    assert result.result == Outcome.FAILED and result.message.startswith("NotEnabled: scaleOwner")
    assert storage.total_calls() == calls
    assert replace(Settings(), enabled_actions=frozenset({"scaleOwner"})).enabled_actions
