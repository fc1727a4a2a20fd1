"""What the node actions share: the guard check and the records minerguard leaves on a node.

A node minerguard acted on carries ``minerguard.io/node-action-at`` (when) and
``minerguard.io/cordoned`` or the taint ``minerguard.io/suspect`` (which incident).
Those records are what the guards count and what release reverts, so both survive
restarts, and a node an administrator cordoned is never claimed or uncordoned.
"""

from __future__ import annotations

from minerguard import guards
from minerguard.actions.base import SUPPRESSED, ActionContext, ActionResult
from minerguard.storage import now_iso


def node_ref(ctx: ActionContext) -> dict[str, str]:
    return {"apiVersion": "v1", "kind": "Node", "name": ctx.node_name}


def guarded(ctx: ActionContext, action: str) -> ActionResult | None:
    """Ask the blast-radius guard; a refusal becomes a Suppressed result (told once as ContainmentSuppressed)."""
    if ctx.guard is None:
        return None
    decision = ctx.guard.check(ctx.node_name)
    if decision.allowed:
        return None
    message = f"{action} of Node {ctx.node_name} held back by guard {decision.guard}: {decision.reason}"
    return ActionResult(action, f"Node {ctx.node_name}", SUPPRESSED, message, guard=decision.guard)


def acted_annotations(ctx: ActionContext) -> dict[str, str | None]:
    return {guards.ACTED_ANNOTATION: now_iso(), "minerguard.io/policy": ctx.policy}
