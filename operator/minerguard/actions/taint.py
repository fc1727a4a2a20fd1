"""``taint``: a ``NoSchedule`` taint of minerguard's own key on the node.

Softer than cordon for clusters that run DaemonSets tolerating everything: new
workloads stay off the node unless they tolerate ``minerguard.io/suspect``. Guarded
like cordon; release removes only minerguard's taint, and only for the incident
that set it.
"""

from __future__ import annotations

from typing import Any, ClassVar

from minerguard.actions.base import FAILED, SUCCEEDED, ActionContext, ActionResult
from minerguard.actions.nodes import NodeAction, acted_annotations, guarded, one_node_action_at_a_time
from minerguard.domain import guards
from minerguard.errors import NotFound
from minerguard.storage.kubernetes import retrying


def _taint_value(incident_ref: str) -> str:
    """Taint values are label values: at most 63 characters of [A-Za-z0-9_.-]."""
    value = "".join(c if c.isalnum() or c in "_.-" else "." for c in incident_ref)
    return value[-63:].strip("_.-") or "incident"


class Taint(NodeAction):
    name: ClassVar[str] = "taint"
    events: ClassVar[tuple[str, ...]] = ("NodeTainted", "NodeUntainted")
    description: ClassVar[str] = (
        "Add the taint minerguard.io/suspect=<incident>:NoSchedule to the node. Obeys the blast-radius guards."
    )

    def plan(self, ctx: ActionContext) -> str:
        return f"taint Node {ctx.node_name} {guards.TAINT_KEY}:NoSchedule"

    def apply(self, ctx: ActionContext) -> ActionResult:
        target = self.target(ctx)
        value = _taint_value(ctx.incident_ref)
        with one_node_action_at_a_time(ctx) as busy:
            try:
                node = ctx.storage.get_node(ctx.node_name)
            except NotFound:
                return ActionResult(self.name, target, FAILED, f"Node {ctx.node_name} does not exist")
            taints = list((node.get("spec") or {}).get("taints") or [])
            if any(t.get("key") == guards.TAINT_KEY for t in taints):
                return ActionResult(self.name, target, SUCCEEDED, f"Node {ctx.node_name} is tainted")
            held = guarded(ctx, self.name, busy)
            if held is not None:
                return held
            self._patch_taints(
                ctx,
                lambda ts: [*ts, {"key": guards.TAINT_KEY, "value": value, "effect": "NoSchedule"}],
                acted_annotations(ctx),
            )
        message = (
            f"Tainted Node {ctx.node_name} {guards.TAINT_KEY}:NoSchedule "
            f"(policy {ctx.policy}, incident {ctx.incident_ref})"
        )
        return ActionResult(self.name, target, SUCCEEDED, message, changed=True)

    def _patch_taints(self, ctx: ActionContext, change: Any, annotations: dict[str, str | None]) -> None:
        """Read-modify-write of the taint list with the resourceVersion, so a concurrent edit is never lost."""

        def attempt() -> None:
            node = ctx.storage.get_node(ctx.node_name)
            meta = node.get("metadata") or {}
            taints = list((node.get("spec") or {}).get("taints") or [])
            ctx.storage.patch_node(
                ctx.node_name,
                {
                    "metadata": {"resourceVersion": meta.get("resourceVersion"), "annotations": annotations},
                    "spec": {"taints": change(taints)},
                },
            )

        retrying(attempt, what=f"update taints of Node {ctx.node_name}")

    def applied_to(self, ctx: ActionContext) -> bool:
        try:
            node = ctx.storage.get_node(ctx.node_name)
        except NotFound:
            return False
        value = _taint_value(ctx.incident_ref)
        return any(
            t.get("key") == guards.TAINT_KEY and t.get("value") == value
            for t in (node.get("spec") or {}).get("taints") or []
        )

    def revert(self, ctx: ActionContext) -> ActionResult:
        target = self.target(ctx)
        if not self.applied_to(ctx):
            return ActionResult("release", target, SUCCEEDED, f"Node {ctx.node_name} was not tainted by this incident")
        self._patch_taints(ctx, lambda ts: [t for t in ts if t.get("key") != guards.TAINT_KEY], {})
        message = f"Removed taint {guards.TAINT_KEY} from Node {ctx.node_name} (incident {ctx.incident_ref} released)"
        return ActionResult("release", target, SUCCEEDED, message, changed=True)
