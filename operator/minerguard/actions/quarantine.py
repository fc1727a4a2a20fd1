"""``quarantine``: cut a pod off the network with a deny-all NetworkPolicy.

See :mod:`minerguard.domain.netpol` for why this is a label plus one deny-all policy per
namespace plus exclusions in the namespace's other policies, and why that never
starts a replica storm. The pod counts as quarantined only when, read back from the
API, nothing else allows it traffic.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

from minerguard.actions.base import (
    FAILED,
    SUCCEEDED,
    Action,
    ActionContext,
    ActionResult,
    Blocked,
    NetworkPolicyView,
    RbacRule,
)
from minerguard.actions.enforcement import BACKEND_RBAC, Enforcement
from minerguard.domain import netpol
from minerguard.domain.incidents import label_value
from minerguard.domain.kinds import ActionScope
from minerguard.errors import AlreadyExists, Conflict, NotFound
from minerguard.storage.kubernetes import KubeStorage, retrying

INCIDENT_ANNOTATION = "minerguard.io/incident"
# The same, as a label (shortened to a label value): release finds every pod of an incident by it,
# however many there are (the incident's status lists at most a hundred).
INCIDENT_LABEL = "minerguard.io/incident"
POLICY_ANNOTATION = "minerguard.io/policy"


class Quarantine(Action):
    name: ClassVar[str] = "quarantine"
    scope: ClassVar[ActionScope] = ActionScope.POD
    events: ClassVar[tuple[str, ...]] = ("PodQuarantined", "QuarantineRestored", "Released")
    description: ClassVar[str] = (
        "Label the pod minerguard.io/quarantined=true, make sure the namespace's deny-all policy "
        "minerguard-quarantine exists, and take the pod out of every other NetworkPolicy that would allow it "
        "traffic. Requires a CNI that enforces NetworkPolicy. With an admin-tier backend (AdminNetworkPolicy or "
        "ClusterNetworkPolicy, Cilium, Calico) only the label: one cluster-wide Deny policy minerguard owns "
        "isolates every labelled pod, and no tenant object is touched."
    )
    parameters: ClassVar[dict[str, str]] = {}
    rbac: ClassVar[tuple[RbacRule, ...]] = (RbacRule(("",), ("pods",), ("get", "list", "watch", "patch")),)
    backend_rbac: ClassVar[dict[str, tuple[RbacRule, ...]]] = BACKEND_RBAC
    """What each enforcement backend needs besides: the chart renders only the backends it may use."""

    def precondition(self, ctx: ActionContext) -> Blocked | None:
        if ctx.workload is None:
            return Blocked("quarantine acts on pods; this incident has none")
        if ctx.workload.host_network:
            return Blocked(
                "NotContainable: the pod uses the host network, which NetworkPolicy does not govern; "
                "node actions (cordon, taint) are the containment for it",
                not_containable=True,
            )
        return None

    def plan(self, ctx: ActionContext) -> str:
        return f"label {ctx.pod_ref} {netpol.QUARANTINE_LABEL}=true behind NetworkPolicy {netpol.QUARANTINE_POLICY}"

    # ------------------------------------------------------------------ apply

    def apply(self, ctx: ActionContext) -> ActionResult:
        assert ctx.workload is not None
        if ctx.enforcement is not None and ctx.enforcement.cluster_wide:
            return self._apply_cluster_wide(ctx, ctx.enforcement)
        ns = ctx.workload.namespace
        undone: list[str] = []
        known = ctx.policies.list(ns)
        policy_change = ensure_quarantine_policy(ctx.storage, ctx.policies, ns, known)
        if policy_change == "restored":
            undone.append(f"NetworkPolicy {netpol.QUARANTINE_POLICY} was edited")
        elif policy_change == "created":
            undone.append(f"NetworkPolicy {netpol.QUARANTINE_POLICY} was missing")
        elif policy_change == "taken over":
            undone.append(
                f"NetworkPolicy {netpol.QUARANTINE_POLICY} was made by someone else (its owners and labels are reset)"
            )
        labels = dict((ctx.pod.get("metadata") or {}).get("labels") or {})
        reopened = exclude_from_other_policies(ctx.storage, ctx.policies, ns, labels, known)
        undone += [f"NetworkPolicy {n} allowed it traffic" for n in reopened]
        annotations = (ctx.pod.get("metadata") or {}).get("annotations") or {}
        if labels.get(netpol.QUARANTINE_LABEL) != "true":
            undone.append(f"the label {netpol.QUARANTINE_LABEL} was missing")
        if (
            undone
            or annotations.get(INCIDENT_ANNOTATION) != ctx.incident
            or annotations.get(POLICY_ANNOTATION) != (ctx.policy)
            or labels.get(INCIDENT_LABEL) != incident_label(ctx.incident)
        ):
            label_pod(ctx, labels, annotations)
        if policy_change:  # after the label: the mark guards against new allow policies, not the cut itself
            mark_namespace(ctx.storage, ns)
        changed = bool(undone) or annotations.get(INCIDENT_ANNOTATION) != ctx.incident
        tampered = "; ".join(undone) if ctx.previously_contained and undone else ""
        problems = self.verify(ctx)
        if problems:
            return ActionResult(self.name, ctx.pod_ref, FAILED, "; ".join(problems), changed, tampered=tampered)
        return ActionResult(
            self.name,
            ctx.pod_ref,
            SUCCEEDED,
            f"Quarantined {ctx.pod_ref} behind NetworkPolicy {netpol.QUARANTINE_POLICY}; "
            "no other NetworkPolicy allows it traffic",
            changed,
            tampered=tampered,
        )

    def verify(self, ctx: ActionContext) -> list[str]:
        """Checked on the pod as last written or seen and the namespace's NetworkPolicies as the view knows them
        (the operator's watch plus its own writes: a NetworkPolicy change queues the pod for another check)."""
        if ctx.workload is None:
            return []
        labels = (ctx.pod.get("metadata") or {}).get("labels") or {}
        if ctx.enforcement is not None and ctx.enforcement.cluster_wide:
            found = [] if labels.get(netpol.QUARANTINE_LABEL) == "true" else [f"{ctx.pod_ref} is not labelled"]
            return found + ctx.enforcement.problems(ctx.storage)
        policies = ctx.policies.list(ctx.workload.namespace)
        return netpol.isolation_problems(policies, labels, host_network=ctx.workload.host_network)

    def _apply_cluster_wide(self, ctx: ActionContext, enforcement: Enforcement) -> ActionResult:
        """Label the pod; the cluster-wide Deny (created or restored here) isolates it; no tenant object changes.

        Quarantines made before by the networkPolicy backend are moved: once this one verifies, the namespace's
        deny-all and the exclusions in tenants' policies are taken out again.
        """
        assert ctx.workload is not None and enforcement.kind is not None
        what = f"{enforcement.kind.kind} {enforcement.kind.name}"
        change = enforcement.ensure(ctx.storage)
        undone = {"created": [f"{what} was missing"], "restored": [f"{what} was edited"]}.get(change, [])
        if change == "taken over":
            undone.append(f"{what} was made by someone else (its owners and labels are reset)")
        meta = ctx.pod.get("metadata") or {}
        labels, annotations = dict(meta.get("labels") or {}), dict(meta.get("annotations") or {})
        if labels.get(netpol.QUARANTINE_LABEL) != "true":
            undone.append(f"the label {netpol.QUARANTINE_LABEL} was missing")
        changed = label_pod(ctx, labels, annotations) or bool(change)
        tampered = "; ".join(undone) if ctx.previously_contained and undone else ""
        problems = self.verify(ctx)
        if problems:
            return ActionResult(self.name, ctx.pod_ref, FAILED, "; ".join(problems), changed, tampered=tampered)
        if netpol_artefacts(ctx.policies.list(ctx.workload.namespace)):
            release_namespace(ctx.storage, ctx.workload.namespace)  # moved from the networkPolicy backend
        return ActionResult(
            self.name,
            ctx.pod_ref,
            SUCCEEDED,
            f"Quarantined {ctx.pod_ref} behind {what} (backend {enforcement.backend}); no tenant object changed",
            changed,
            tampered=tampered,
        )

    # ------------------------------------------------------------------ revert

    def applied_to(self, ctx: ActionContext) -> bool:
        meta = ctx.pod.get("metadata") or {}
        return bool(
            (meta.get("labels") or {}).get(netpol.QUARANTINE_LABEL) == "true"
            and (meta.get("annotations") or {}).get(INCIDENT_ANNOTATION) == ctx.incident
        )

    def revert(self, ctx: ActionContext) -> ActionResult:
        assert ctx.workload is not None
        ns, name = ctx.workload.namespace, ctx.workload.name
        try:
            retrying(
                lambda: ctx.storage.patch_pod_metadata(
                    ns,
                    name,
                    {netpol.QUARANTINE_LABEL: None, INCIDENT_LABEL: None},
                    {INCIDENT_ANNOTATION: None, POLICY_ANNOTATION: None},
                ),
                what=f"unlabel {ctx.pod_ref}",
            )
        except NotFound:
            pass
        if not ctx.batch:  # in a batch the caller settles the namespace once, after every pod
            settle_namespace(ctx, ns)
        return ActionResult("release", ctx.pod_ref, SUCCEEDED, f"Released {ctx.pod_ref} from quarantine", True)


def ensure_quarantine_policy(
    storage: KubeStorage, view: NetworkPolicyView, namespace: str, known: list[dict[str, Any]]
) -> str:
    """Create the namespace's deny-all policy, or make it minerguard's again: "created", "restored", "taken over" or "".

    A policy of that name minerguard did not make (foreign ownerReferences, other labels) is taken over: its
    metadata is rewritten, so deleting a tenant's object can never garbage-collect the deny-all. ``known`` are
    the namespace's policies as last seen; a stale view costs a 409 and a read, never a wrong result.
    """
    desired = netpol.quarantine_policy(namespace)
    live = next((p for p in known if (p.get("metadata") or {}).get("name") == netpol.QUARANTINE_POLICY), None)

    def attempt() -> str:
        nonlocal live
        if live is None:
            try:
                view.wrote(storage.create_network_policy(namespace, desired))
                return "created"
            except AlreadyExists:  # another worker or replica created it meanwhile
                live = storage.get_network_policy(namespace, netpol.QUARANTINE_POLICY)
        intact, owned = netpol.quarantine_policy_intact(live), netpol.quarantine_policy_owned(live)
        if intact and owned:
            return ""
        try:
            repair = netpol.quarantine_policy_repair(live)
            view.wrote(storage.patch_network_policy(namespace, netpol.QUARANTINE_POLICY, repair))
        except (Conflict, NotFound):
            live = None  # changed or deleted meanwhile: create it, or read it on AlreadyExists, and retry
            raise Conflict(f"NetworkPolicy {namespace}/{netpol.QUARANTINE_POLICY} changed meanwhile") from None
        return "restored" if not intact else "taken over"

    return retrying(attempt, what=f"ensure NetworkPolicy {namespace}/{netpol.QUARANTINE_POLICY}")


def exclude_from_other_policies(
    storage: KubeStorage,
    view: NetworkPolicyView,
    namespace: str,
    pod_labels: dict[str, str],
    known: list[dict[str, Any]],
) -> list[str]:
    """Add the quarantine exclusion to every policy that would re-open a quarantined pod; the names it changed."""
    return [
        np["metadata"]["name"]
        for np in netpol.reopening(known, pod_labels)
        if _exclude(storage, view, namespace, pod_labels, np)
    ]


def _exclude(
    storage: KubeStorage, view: NetworkPolicyView, namespace: str, pod_labels: dict[str, str], np: Mapping[str, Any]
) -> bool:
    """Add the exclusion to one policy, starting from the version last seen; False when it is gone or needs none."""
    name = np["metadata"]["name"]
    current: Mapping[str, Any] | None = np

    def attempt() -> bool:
        nonlocal current
        if current is None:
            current = storage.get_network_policy(namespace, name)
        if not netpol.reopening([current], pod_labels):
            return False
        # A JSON patch conditioned on the podSelector alone (no resourceVersion): a tenant rewriting the rest of
        # its policy in a loop cannot keep the exclusion out. The annotation first: release takes out only an
        # exclusion whose annotation says minerguard added it.
        try:
            annotate = {"metadata": {"annotations": netpol.exclusion_annotation(True)}}
            storage.patch_network_policy(namespace, name, annotate)
            view.wrote(storage.patch_network_policy(namespace, name, netpol.exclusion_patch(current)))
        except Conflict:
            current = None  # the podSelector changed meanwhile: read it again and retry
            raise
        return True

    try:
        return retrying(attempt, what=f"exclude quarantined pods from NetworkPolicy {namespace}/{name}")
    except NotFound:
        return False


def incident_label(incident: str) -> str:
    """The incident's name as a label value (shortened: release also checks the annotation)."""
    return label_value(incident)


def mark_namespace(storage: KubeStorage, namespace: str) -> None:
    """Label the namespace as holding quarantined pods: the admission policy refuses new policies there that would
    select them. Set when the deny-all is created or repaired, removed with it at release."""
    storage.patch_namespace_labels(namespace, {netpol.NAMESPACE_MARK: "true"})


def settle_namespace(ctx: ActionContext, namespace: str) -> None:
    """After a release: when no quarantined pod is left, release the namespace (:func:`release_namespace`). With a
    cluster-wide backend the tenant's objects are touched only if the networkPolicy backend changed them before."""
    cluster_wide = ctx.enforcement is not None and ctx.enforcement.cluster_wide
    if cluster_wide and not netpol_artefacts(ctx.policies.list(namespace)):
        return
    if not ctx.storage.list_pods(namespace, label_selector=f"{netpol.QUARANTINE_LABEL}=true"):
        release_namespace(ctx.storage, namespace)


def release_namespace(storage: KubeStorage, namespace: str) -> None:
    """No quarantined pod left: delete the deny-all policy, take the exclusions out again, unmark the namespace."""
    try:
        storage.delete_network_policy(namespace, netpol.QUARANTINE_POLICY)
    except NotFound:
        pass
    for np in storage.list_network_policies(namespace):
        if not netpol.has_exclusion(np):
            continue
        np_name = np["metadata"]["name"]

        def attempt(np_name: str = np_name) -> None:
            live = storage.get_network_policy(namespace, np_name)
            if netpol.has_exclusion(live):
                storage.patch_network_policy(namespace, np_name, netpol.exclusion_removal_patch(live))
                storage.patch_network_policy(
                    namespace, np_name, {"metadata": {"annotations": netpol.exclusion_annotation(False)}}
                )

        try:
            retrying(attempt, what=f"restore NetworkPolicy {namespace}/{np_name}")
        except (NotFound, Conflict):
            continue
    try:
        storage.patch_namespace_labels(namespace, {netpol.NAMESPACE_MARK: None})
    except NotFound:
        pass


def label_pod(ctx: ActionContext, labels: Mapping[str, str], annotations: Mapping[str, str]) -> bool:
    """Give the pod the quarantine label and the incident's label and annotations unless it has them."""
    assert ctx.workload is not None
    ns, name = ctx.workload.namespace, ctx.workload.name
    if (
        labels.get(netpol.QUARANTINE_LABEL) == "true"
        and labels.get(INCIDENT_LABEL) == incident_label(ctx.incident)
        and annotations.get(INCIDENT_ANNOTATION) == ctx.incident
    ):
        return False
    ctx.pod = retrying(
        lambda: ctx.storage.patch_pod_metadata(
            ns,
            name,
            {netpol.QUARANTINE_LABEL: "true", INCIDENT_LABEL: incident_label(ctx.incident)},
            {INCIDENT_ANNOTATION: ctx.incident, POLICY_ANNOTATION: ctx.policy},
        ),
        what=f"label {ctx.pod_ref}",
    )
    return True


def netpol_artefacts(policies: list[dict[str, Any]]) -> bool:
    """Whether the networkPolicy backend left anything in these policies (its deny-all, an exclusion)."""
    return any(
        (p.get("metadata") or {}).get("name") == netpol.QUARANTINE_POLICY or netpol.has_exclusion(p) for p in policies
    )
