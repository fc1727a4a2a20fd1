"""``scaleOwner``: stop the pod's owner from making more miners.

New replicas of a contained workload are caught on creation anyway; this optional action goes
further and scales a Deployment, StatefulSet or ReplicaSet to zero, or suspends a CronJob or Job.
The replica count before is recorded on the owner (``minerguard.io/replicas-before``) and in the
incident, and release puts it back. DaemonSets cannot be scaled: the action says so.

Guarded: an owner running more than ``guards.maxScaleReplicas`` replicas (default 10; in the
environment ``MINERGUARD_GUARD_MAX_SCALE_REPLICAS``) is held back (Suppressed): taking a large
service to zero is an outage, and a large service with a miner signal deserves a person's look first.
"""

from __future__ import annotations

from typing import Any, ClassVar

from minerguard.actions.base import (
    FAILED,
    SUCCEEDED,
    SUPPRESSED,
    Action,
    ActionContext,
    ActionResult,
    Blocked,
    RbacRule,
)
from minerguard.domain.kinds import ActionScope
from minerguard.errors import Invalid, NotFound

REPLICAS_BEFORE = "minerguard.io/replicas-before"
SCALED_BY = "minerguard.io/scaled-by"
SCALABLE = ("Deployment", "StatefulSet", "ReplicaSet")
SUSPENDABLE = ("CronJob", "Job")


class ScaleOwner(Action):
    name: ClassVar[str] = "scaleOwner"
    scope: ClassVar[ActionScope] = ActionScope.OWNER
    events: ClassVar[tuple[str, ...]] = ("OwnerScaled", "OwnerRestored")
    description: ClassVar[str] = (
        "Scale the owning Deployment/StatefulSet/ReplicaSet to 0 or suspend the owning CronJob/Job, recording "
        "the previous state on the owner for release. Held back for owners above the replica guard."
    )
    parameters: ClassVar[dict[str, str]] = {"guards.maxScaleReplicas": "largest owner scaled (10)"}
    rbac: ClassVar[tuple[RbacRule, ...]] = (
        RbacRule(("apps",), ("deployments/scale", "statefulsets/scale", "replicasets/scale"), ("patch",)),
        RbacRule(("apps",), ("deployments", "statefulsets", "replicasets"), ("patch",)),
        RbacRule(("batch",), ("cronjobs", "jobs"), ("patch",)),
    )

    def _owner(self, ctx: ActionContext) -> tuple[str, str]:
        return (ctx.owner.kind, ctx.owner.name) if ctx.owner is not None else ("", "")

    @staticmethod
    def _namespace(ctx: ActionContext) -> str:
        return ctx.incident_namespace or (ctx.workload.namespace if ctx.workload is not None else "")

    def target(self, ctx: ActionContext) -> str:
        kind, name = self._owner(ctx)
        return f"{kind} {self._namespace(ctx)}/{name}"

    def precondition(self, ctx: ActionContext) -> Blocked | None:
        kind, _ = self._owner(ctx)
        if kind in ("", "Pod"):
            return Blocked("NotApplicable: the pod has no owning controller to scale")
        if kind not in SCALABLE + SUSPENDABLE:
            return Blocked(f"NotApplicable: a {kind} cannot be scaled to zero or suspended")
        return None

    def plan(self, ctx: ActionContext) -> str:
        kind, _ = self._owner(ctx)
        return f"{'suspend' if kind in SUSPENDABLE else 'scale to 0'} {self.target(ctx)}"

    def apply(self, ctx: ActionContext) -> ActionResult:
        kind, name = self._owner(ctx)
        namespace, target = self._namespace(ctx), self.target(ctx)
        try:
            owner = ctx.storage.get_owner(namespace, kind, name)
        except NotFound:
            return ActionResult(self.name, target, FAILED, f"{target} does not exist")
        meta, spec = owner.get("metadata") or {}, owner.get("spec") or {}
        annotations = meta.get("annotations") or {}
        if annotations.get(SCALED_BY) == ctx.incident_ref:
            return ActionResult(self.name, target, SUCCEEDED, f"{target} is held by this incident")
        if kind in SUSPENDABLE:
            if spec.get("suspend"):
                return ActionResult(self.name, target, SUCCEEDED, f"{target} was already suspended; left as is")
            ctx.storage.patch_owner(namespace, kind, name, self._record(ctx, "suspended"), {"suspend": True})
            return ActionResult(
                self.name, target, SUCCEEDED, f"Suspended {target} (incident {ctx.incident_ref})", changed=True
            )
        raw_replicas = spec.get("replicas")
        replicas = raw_replicas if isinstance(raw_replicas, int) else 1
        if replicas == 0:
            return ActionResult(self.name, target, SUCCEEDED, f"{target} was already at 0 replicas; left as is")
        if replicas > ctx.settings.guards.max_scale_replicas:
            return ActionResult(
                self.name,
                target,
                SUPPRESSED,
                f"scaleOwner of {target} held back by guard MaxScaleReplicas: it runs {replicas} replicas, "
                f"more than {ctx.settings.guards.max_scale_replicas}",
                guard="MaxScaleReplicas",
            )
        try:
            ctx.storage.patch_owner(namespace, kind, name, self._record(ctx, str(replicas)), None)
            ctx.storage.scale_owner(namespace, kind, name, 0)
        except Invalid as exc:
            return ActionResult(self.name, target, FAILED, str(exc))
        return ActionResult(
            self.name,
            target,
            SUCCEEDED,
            f"Scaled {target} from {replicas} to 0 replicas (incident {ctx.incident_ref})",
            changed=True,
        )

    def _record(self, ctx: ActionContext, before: str) -> dict[str, str | None]:
        return {SCALED_BY: ctx.incident_ref, REPLICAS_BEFORE: before}

    def _owned(self, ctx: ActionContext) -> dict[str, Any] | None:
        kind, name = self._owner(ctx)
        if kind not in SCALABLE + SUSPENDABLE:
            return None
        try:
            owner = ctx.storage.get_owner(self._namespace(ctx), kind, name)
        except NotFound:
            return None
        annotations = (owner.get("metadata") or {}).get("annotations") or {}
        return owner if annotations.get(SCALED_BY) == ctx.incident_ref else None

    def applied_to(self, ctx: ActionContext) -> bool:
        return self._owned(ctx) is not None

    def revert(self, ctx: ActionContext) -> ActionResult:
        owner = self._owned(ctx)
        target = self.target(ctx)
        if owner is None:
            return ActionResult("release", target, SUCCEEDED, f"{target} was not held by this incident")
        kind, name = self._owner(ctx)
        namespace = self._namespace(ctx)
        before = str(((owner.get("metadata") or {}).get("annotations") or {}).get(REPLICAS_BEFORE, ""))
        clear: dict[str, str | None] = {SCALED_BY: None, REPLICAS_BEFORE: None}
        if kind in SUSPENDABLE:
            ctx.storage.patch_owner(namespace, kind, name, clear, {"suspend": False})
            return ActionResult("release", target, SUCCEEDED, f"Resumed {target}", changed=True)
        replicas = int(before) if before.isdigit() else 1
        ctx.storage.scale_owner(namespace, kind, name, replicas)
        ctx.storage.patch_owner(namespace, kind, name, clear, None)
        return ActionResult("release", target, SUCCEEDED, f"Scaled {target} back to {replicas} replicas", changed=True)
