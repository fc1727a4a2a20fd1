"""``evict``: delete a miner pod that nothing else can contain, its evidence kept in the incident.

NetworkPolicy does not govern a pod on the host network, so ``quarantine`` cannot cut a
``hostNetwork`` miner off (it is ``NotContainable``). ``evict`` stops it: the pod is deleted
with a grace period of 0 (a miner ignores SIGTERM), guarded by its UID so that a pod made
again under the same name is never deleted by mistake. The incident records the evidence
before the pod is deleted, so nothing of the detection is lost with it.

By default (``hostNetworkFallback: evict``, ``MINERGUARD_HOST_NETWORK_FALLBACK``) it is what
an Enforce policy that lists ``quarantine`` does to a hostNetwork pod; a policy may also list
it for every pod. The owner may make a new replica: it is detected and evicted again, within
the guard; list ``scaleOwner`` too to stop the owner.

Guarded like the node actions: never in the namespaces ``guards.evictExcludedNamespaces``
(``kube-system`` by default: hostNetwork is what system DaemonSets use) or the operator's own,
never a static (mirror) pod, and at most ``guards.maxEvictionsPerHour`` evictions (10) in any
hour, counted from the incidents' action records (so the count survives restarts and is the
same for every replica). Audit mode and ``dryRun`` plan it without deleting. Nothing to revert:
a release cannot bring a deleted pod back.
"""

from __future__ import annotations

from typing import ClassVar

from minerguard.actions.base import (
    SUCCEEDED,
    SUPPRESSED,
    Action,
    ActionContext,
    ActionResult,
    Blocked,
    RbacRule,
)
from minerguard.domain.kinds import ActionScope
from minerguard.errors import Conflict, NotFound

MIRROR_ANNOTATION = "kubernetes.io/config.mirror"


class Evict(Action):
    name: ClassVar[str] = "evict"
    scope: ClassVar[ActionScope] = ActionScope.POD
    events: ClassVar[tuple[str, ...]] = ("PodEvicted",)
    description: ClassVar[str] = (
        "Delete the pod (grace period 0, only that UID) once the incident holds its evidence: the containment "
        "for pods NetworkPolicy does not govern (hostNetwork), and for any policy that asks. Guarded: never in "
        "guards.evictExcludedNamespaces or a static pod, at most guards.maxEvictionsPerHour an hour."
    )
    parameters: ClassVar[dict[str, str]] = {
        "guards.maxEvictionsPerHour": "evictions in any hour (10)",
        "guards.evictExcludedNamespaces": "namespaces never evicted in (kube-system)",
    }
    rbac: ClassVar[tuple[RbacRule, ...]] = (RbacRule(("",), ("pods",), ("delete",)),)

    def precondition(self, ctx: ActionContext) -> Blocked | None:
        if ctx.workload is None:
            return Blocked("evict acts on pods; this incident has none")
        annotations = (ctx.pod.get("metadata") or {}).get("annotations") or {}
        if annotations.get(MIRROR_ANNOTATION):
            return Blocked("NotApplicable: a static pod is deleted only by removing its manifest from the node")
        return None

    def plan(self, ctx: ActionContext) -> str:
        return f"delete {ctx.pod_ref} (grace period 0)"

    def _held_back(self, ctx: ActionContext) -> ActionResult | None:
        assert ctx.workload is not None
        guards = ctx.settings.guards
        namespace = ctx.workload.namespace
        excluded = {n.strip() for n in guards.evict_excluded_namespaces.split(",") if n.strip()}
        if namespace in excluded or namespace == ctx.settings.namespace:
            why = f"namespace {namespace} is excluded from evictions"
            return self._suppressed(ctx, "ExcludedNamespace", why)
        if ctx.evictions_last_hour >= guards.max_evictions_per_hour:
            why = f"{ctx.evictions_last_hour} evictions in the last hour; the limit is {guards.max_evictions_per_hour}"
            return self._suppressed(ctx, "RateLimit", why)
        return None

    def _suppressed(self, ctx: ActionContext, guard: str, why: str) -> ActionResult:
        message = f"evict of {ctx.pod_ref} held back by guard {guard}: {why}"
        return ActionResult(self.name, ctx.pod_ref, SUPPRESSED, message, guard=guard)

    def apply(self, ctx: ActionContext) -> ActionResult:
        assert ctx.workload is not None
        wl = ctx.workload
        if wl.deleting:
            message = f"{ctx.pod_ref} is being deleted already (its containers are stopped)"
            return ActionResult(self.name, ctx.pod_ref, SUCCEEDED, message)
        held = self._held_back(ctx)
        if held is not None:
            return held
        try:
            ctx.storage.delete_pod(wl.namespace, wl.name, wl.uid)
        except (NotFound, Conflict):  # gone already, or the name is another pod's now: nothing of ours to delete
            return ActionResult(self.name, ctx.pod_ref, SUCCEEDED, f"{ctx.pod_ref} is gone")
        message = f"Evicted {ctx.pod_ref} (policy {ctx.policy}, incident {ctx.incident_ref}); its evidence is kept"
        return ActionResult(self.name, ctx.pod_ref, SUCCEEDED, message, changed=True)

    def revert(self, ctx: ActionContext) -> ActionResult:
        return ActionResult("release", ctx.pod_ref, SUCCEEDED, "an evicted pod is not brought back")
