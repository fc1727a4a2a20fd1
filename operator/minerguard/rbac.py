"""The RBAC the operator needs: its own watches and records, plus what each action declares.

The Helm chart's ClusterRole must grant exactly :func:`required_rules` (a test renders
the chart and compares), so a new API call means a new line here, in review.
"""

from __future__ import annotations

from collections.abc import Iterable

from minerguard.actions import ACTIONS
from minerguard.actions.base import RbacRule
from minerguard.actions.enforcement import CLEANUP_RBAC
from minerguard.actions.quarantine import Quarantine
from minerguard.domain.admintier import BACKENDS

# What the operator itself calls, outside the actions (see storage.py and handlers.py).
OPERATOR_RULES: tuple[RbacRule, ...] = (
    # Watched: every pod, namespace, node and NetworkPolicy (kopf event handlers; no writes from here).
    RbacRule(("",), ("pods", "namespaces", "nodes"), ("get", "list", "watch")),
    RbacRule(("networking.k8s.io",), ("networkpolicies",), ("get", "list", "watch")),
    # ConfigMaps, read for detection (policies with signals.configMaps); never Secrets.
    RbacRule(("",), ("configmaps",), ("get", "list", "watch")),
    # Owner resolution of a matched pod: ReplicaSet -> Deployment, Job -> CronJob.
    RbacRule(("apps",), ("replicasets", "deployments", "statefulsets", "daemonsets"), ("get",)),
    RbacRule(("batch",), ("jobs", "cronjobs"), ("get",)),
    # Its own custom resources.
    RbacRule(("minerguard.io",), ("minerpolicies",), ("get", "list", "watch")),
    RbacRule(("minerguard.io",), ("minerpolicies/status",), ("patch",)),
    RbacRule(("minerguard.io",), ("minerincidents",), ("get", "list", "watch", "create", "patch")),
    RbacRule(("minerguard.io",), ("minerincidents/status",), ("update",)),
    # Events about pods, nodes, policies and incidents.
    RbacRule(("events.k8s.io",), ("events",), ("create",)),
    # Foothold evidence: SubjectAccessReviews of a miner's ServiceAccount for the dangerous verbs.
    RbacRule(("authorization.k8s.io",), ("subjectaccessreviews",), ("create",)),
    # kopf: resource discovery and peering between replicas.
    RbacRule(("apiextensions.k8s.io",), ("customresourcedefinitions",), ("list", "watch")),
    RbacRule(("kopf.dev",), ("clusterkopfpeerings",), ("get", "list", "watch", "patch")),
)


POLICY_REPORT_RULES: tuple[RbacRule, ...] = (
    # Only with MINERGUARD_POLICY_REPORTS (the chart's policyReports.enabled, a ClusterRole of its own).
    RbacRule(("wgpolicyk8s.io",), ("policyreports",), ("get", "create", "update")),
)


def required_rules(
    backends: Iterable[str] = BACKENDS, enabled: Iterable[str] = (), cleanup: Iterable[str] = ()
) -> set[tuple[str, str, str]]:
    """Every (apiGroup, resource, verb) the operator may call with the given enforcement backends.

    The default, every backend, is what ``enforcement.backend: auto`` needs
    (:func:`minerguard.actions.enforcement.backends_for` tells the set for the other settings). An optional
    action (``scaleOwner``) counts only when ``enabled`` names it (the chart's ``<action>.enabled``).
    ``cleanup``: backends whose leftover cluster-wide policy the operator may read and delete after moving away
    from them (:func:`minerguard.actions.enforcement.cleanup_for`).
    """
    rules = list(OPERATOR_RULES)
    wanted = set(enabled)
    for action in ACTIONS.values():
        if not action.optional or action.name in wanted:
            rules.extend(action.rbac)
    for backend in backends:
        rules.extend(Quarantine.backend_rbac[backend])
    for backend in cleanup:
        rules.extend(CLEANUP_RBAC[backend])
    return {(g, r, v) for rule in rules for g in rule.api_groups for r in rule.resources for v in rule.verbs}
