"""``scaleOwner``: stop the pod's owner from making more miners.

New replicas of a contained workload are caught on creation anyway; this optional action goes
further and scales a Deployment, StatefulSet or ReplicaSet to zero, or suspends a CronJob or Job.
DaemonSets cannot be scaled: the action says so.

What it did is kept in the incident's ``status.scaledOwner`` (kind, name, uid, the replica count
before, or that it suspended), written before the owner is touched, and nowhere else: the
``minerguard.io/scaled-by`` annotation it leaves on the owner is for people reading the owner and is
never trusted (a tenant can write it). Every run checks the owner against that record, so an owner
scaled up or resumed after containment is put back to 0 or suspended again, and release restores
the recorded count, not whatever was set since.

Guarded: an owner running more than ``guards.maxScaleReplicas`` replicas (default 10; in the
environment ``MINERGUARD_GUARD_MAX_SCALE_REPLICAS``) is held back (Suppressed): taking a large
service to zero is an outage, and a large service with a miner signal deserves a person's look first.
An owner already held is kept at 0 whatever its size.
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
from minerguard.storage.kubernetes import now_iso, retrying

REPLICAS_BEFORE = "minerguard.io/replicas-before"
SCALED_BY = "minerguard.io/scaled-by"
SCALABLE = ("Deployment", "StatefulSet", "ReplicaSet")
SUSPENDABLE = ("CronJob", "Job")
RECORD = "scaledOwner"


class ScaleOwner(Action):
    name: ClassVar[str] = "scaleOwner"
    scope: ClassVar[ActionScope] = ActionScope.OWNER
    events: ClassVar[tuple[str, ...]] = ("OwnerScaled", "OwnerRestored")
    description: ClassVar[str] = (
        "Scale the owning Deployment/StatefulSet/ReplicaSet to 0 or suspend the owning CronJob/Job, recording "
        "the previous state in the incident; kept at 0 (or suspended) on every run until release. Held back "
        "for owners above the replica guard."
    )
    parameters: ClassVar[dict[str, str]] = {"guards.maxScaleReplicas": "largest owner scaled (10)"}
    optional: ClassVar[bool] = True  # it writes workloads: its RBAC and admission allowance only when enabled
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

    # ------------------------------------------------------------------ the record in the incident

    def _record_of(self, ctx: ActionContext, owner: dict[str, Any] | None = None) -> dict[str, Any] | None:
        """This incident's record of the owner it holds, or None (a record of another owner does not count)."""
        kind, name = self._owner(ctx)
        try:
            incident = ctx.storage.get_incident(self._namespace(ctx), ctx.incident)
        except NotFound:
            return None
        record = (incident.get("status") or {}).get(RECORD)
        if not isinstance(record, dict) or record.get("kind") != kind or record.get("name") != name:
            return None
        uid = str(((owner or {}).get("metadata") or {}).get("uid", ""))
        if owner is not None and record.get("uid") and uid and record.get("uid") != uid:
            return None  # a new object of the same name: not the one this incident held
        return record

    def _write_record(self, ctx: ActionContext, record: dict[str, Any] | None) -> None:
        """Set (or, with None, clear) status.scaledOwner of the incident: read-modify-write with the resourceVersion."""
        namespace = self._namespace(ctx)

        def attempt() -> None:
            live = ctx.storage.get_incident(namespace, ctx.incident)
            status = dict(live.get("status") or {})
            if record is None:
                if RECORD not in status:
                    return
                status.pop(RECORD)
            else:
                status[RECORD] = record
            ctx.storage.replace_incident_status(namespace, {**live, "status": status})

        retrying(attempt, what=f"record scaleOwner in MinerIncident {ctx.incident_ref}")

    # ------------------------------------------------------------------ apply

    def apply(self, ctx: ActionContext) -> ActionResult:
        kind, name = self._owner(ctx)
        namespace, target = self._namespace(ctx), self.target(ctx)
        try:
            owner = ctx.storage.get_owner(namespace, kind, name)
        except NotFound:
            return ActionResult(self.name, target, FAILED, f"{target} does not exist")
        spec = owner.get("spec") or {}
        uid = str((owner.get("metadata") or {}).get("uid", ""))
        held = self._record_of(ctx, owner)
        if kind in SUSPENDABLE:
            return self._suspend(ctx, spec, uid, held)
        raw_replicas = spec.get("replicas")
        replicas = raw_replicas if isinstance(raw_replicas, int) else 1
        if held is not None:
            if replicas == 0:
                return ActionResult(self.name, target, SUCCEEDED, f"{target} is held at 0 replicas by this incident")
            try:
                ctx.storage.scale_owner(namespace, kind, name, 0)
            except Invalid as exc:
                return ActionResult(self.name, target, FAILED, str(exc))
            return ActionResult(
                self.name, target, SUCCEEDED,
                f"Scaled {target} from {replicas} back to 0 replicas (incident {ctx.incident_ref})",
                changed=True, tampered=f"{target} was scaled up to {replicas} replicas",
            )  # fmt: skip
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
        # The record first: a crash after it leaves an owner release knows how to put back.
        self._write_record(
            ctx, {"kind": kind, "name": name, "uid": uid, "replicasBefore": replicas, "since": now_iso()}
        )
        try:
            annotations = {SCALED_BY: ctx.incident_ref, REPLICAS_BEFORE: str(replicas)}
            ctx.storage.patch_owner(namespace, kind, name, annotations, None)
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

    def _suspend(self, ctx: ActionContext, spec: dict[str, Any], uid: str, held: dict[str, Any] | None) -> ActionResult:
        """A CronJob or Job: suspended and recorded, or suspended again when it was resumed since."""
        kind, name = self._owner(ctx)
        namespace, target = self._namespace(ctx), self.target(ctx)
        annotations: dict[str, str | None] = {SCALED_BY: ctx.incident_ref}
        if held is not None:
            if spec.get("suspend"):
                return ActionResult(self.name, target, SUCCEEDED, f"{target} is held suspended by this incident")
            ctx.storage.patch_owner(namespace, kind, name, annotations, {"suspend": True})
            return ActionResult(
                self.name, target, SUCCEEDED, f"Suspended {target} again (incident {ctx.incident_ref})",
                changed=True, tampered=f"{target} was resumed",
            )  # fmt: skip
        if spec.get("suspend"):
            return ActionResult(self.name, target, SUCCEEDED, f"{target} was already suspended; left as is")
        self._write_record(ctx, {"kind": kind, "name": name, "uid": uid, "suspended": True, "since": now_iso()})
        ctx.storage.patch_owner(namespace, kind, name, annotations, {"suspend": True})
        return ActionResult(
            self.name, target, SUCCEEDED, f"Suspended {target} (incident {ctx.incident_ref})", changed=True
        )

    # ------------------------------------------------------------------ release

    def applied_to(self, ctx: ActionContext) -> bool:
        return self._record_of(ctx) is not None

    def revert(self, ctx: ActionContext) -> ActionResult:
        target = self.target(ctx)
        kind, name = self._owner(ctx)
        namespace = self._namespace(ctx)
        try:
            owner = ctx.storage.get_owner(namespace, kind, name)
        except NotFound:
            owner = None
        record = self._record_of(ctx, owner)
        if record is None or owner is None:
            if record is not None:
                self._write_record(ctx, None)
            return ActionResult("release", target, SUCCEEDED, f"{target} was not held by this incident")
        clear: dict[str, str | None] = {SCALED_BY: None, REPLICAS_BEFORE: None}
        if kind in SUSPENDABLE:
            ctx.storage.patch_owner(namespace, kind, name, clear, {"suspend": False})
            self._write_record(ctx, None)
            return ActionResult("release", target, SUCCEEDED, f"Resumed {target}", changed=True)
        before = record.get("replicasBefore")
        replicas = before if isinstance(before, int) and before >= 0 else 1
        ctx.storage.scale_owner(namespace, kind, name, replicas)
        ctx.storage.patch_owner(namespace, kind, name, clear, None)
        self._write_record(ctx, None)
        return ActionResult("release", target, SUCCEEDED, f"Scaled {target} back to {replicas} replicas", changed=True)
