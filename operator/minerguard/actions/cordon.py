"""``cordon``: mark the node unschedulable so no new pod lands on a suspect node.

Taken for pods that can reach the host (with ``when: HostAccess``) and for nodes
burning CPU no pod accounts for. Guarded (see :mod:`minerguard.domain.guards`); release
uncordons only a node minerguard itself cordoned for the same incident.
"""

from __future__ import annotations

from typing import ClassVar

from minerguard.actions.base import FAILED, SUCCEEDED, ActionContext, ActionResult
from minerguard.actions.nodes import NodeAction, acted_annotations, guarded, one_node_action_at_a_time
from minerguard.domain import guards
from minerguard.errors import NotFound


class Cordon(NodeAction):
    name: ClassVar[str] = "cordon"
    events: ClassVar[tuple[str, ...]] = ("NodeCordoned", "NodeUncordoned")
    description: ClassVar[str] = (
        "Set spec.unschedulable on the node (kubectl cordon) and record the incident on it. "
        "Obeys the blast-radius guards; never claims a node that was already cordoned."
    )

    def plan(self, ctx: ActionContext) -> str:
        return f"cordon Node {ctx.node_name}"

    def apply(self, ctx: ActionContext) -> ActionResult:
        target = self.target(ctx)
        with one_node_action_at_a_time(ctx) as busy:
            try:
                node = ctx.storage.get_node(ctx.node_name)
            except NotFound:
                return ActionResult(self.name, target, FAILED, f"Node {ctx.node_name} does not exist")
            annotations = (node.get("metadata") or {}).get("annotations") or {}
            mine = annotations.get(guards.CORDONED_ANNOTATION)
            if (node.get("spec") or {}).get("unschedulable"):
                if mine:
                    return ActionResult(self.name, target, SUCCEEDED, f"Node {ctx.node_name} is cordoned ({mine})")
                return ActionResult(
                    self.name,
                    target,
                    SUCCEEDED,
                    f"Node {ctx.node_name} was already cordoned by someone else; left as is",
                )
            held = guarded(ctx, self.name, busy)
            if held is not None:
                return held
            ctx.storage.patch_node(
                ctx.node_name,
                {
                    "spec": {"unschedulable": True},
                    "metadata": {
                        "annotations": {**acted_annotations(ctx), guards.CORDONED_ANNOTATION: ctx.incident_ref}
                    },
                },
            )
        message = f"Cordoned Node {ctx.node_name} (policy {ctx.policy}, incident {ctx.incident_ref})"
        return ActionResult(self.name, target, SUCCEEDED, message, changed=True)

    def applied_to(self, ctx: ActionContext) -> bool:
        try:
            node = ctx.storage.get_node(ctx.node_name)
        except NotFound:
            return False
        annotations = (node.get("metadata") or {}).get("annotations") or {}
        return bool(annotations.get(guards.CORDONED_ANNOTATION) == ctx.incident_ref)

    def revert(self, ctx: ActionContext) -> ActionResult:
        target = self.target(ctx)
        if not self.applied_to(ctx):
            return ActionResult("release", target, SUCCEEDED, f"Node {ctx.node_name} was not cordoned by this incident")
        ctx.storage.patch_node(
            ctx.node_name,
            {
                "spec": {"unschedulable": None},
                "metadata": {"annotations": {guards.CORDONED_ANNOTATION: None, "minerguard.io/policy": None}},
            },
        )
        message = f"Uncordoned Node {ctx.node_name} (incident {ctx.incident_ref} released)"
        return ActionResult("release", target, SUCCEEDED, message, changed=True)
