"""What the node actions share: the guard check and the records minerguard leaves on a node.

A node minerguard acted on carries ``minerguard.io/node-action-at`` (when) and
``minerguard.io/cordoned`` or the taint ``minerguard.io/suspect`` (which incident).
Those records are what the guards count and what release reverts, so both survive
restarts, and a node an administrator cordoned is never claimed or uncordoned.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import ClassVar

from minerguard.actions.base import SUPPRESSED, Action, ActionContext, ActionResult, Blocked, RbacRule
from minerguard.domain import guards
from minerguard.domain.guards import GuardDecision
from minerguard.domain.kinds import ActionScope
from minerguard.storage.kubernetes import now_iso


class NodeAction(Action):
    """What cordon and taint share: they act on the pod's node (or the node given), one at a time, guarded."""

    rbac: ClassVar[tuple[RbacRule, ...]] = (
        RbacRule(("",), ("nodes",), ("get", "list", "patch")),
        # The node-action lock every replica shares: an annotation on the operator's namespace.
        RbacRule(("",), ("namespaces",), ("get", "patch")),
    )

    def target(self, ctx: ActionContext) -> str:
        return f"Node {ctx.node_name}"

    scope: ClassVar[ActionScope] = ActionScope.NODE

    def precondition(self, ctx: ActionContext) -> Blocked | None:
        return None if ctx.node_name else Blocked("the pod is not scheduled on a node yet")


@contextlib.contextmanager
def one_node_action_at_a_time(ctx: ActionContext) -> Iterator[GuardDecision | None]:
    """Node actions decide against a fresh read of the nodes; one at a time across every replica, so two never
    both pass a guard. Yields a refusal when the shared lock stayed busy (the action is then held back)."""
    if ctx.guard is None:
        yield None
        return
    with ctx.guard.exclusive() as busy:
        yield busy


def guarded(ctx: ActionContext, action: str, busy: GuardDecision | None = None) -> ActionResult | None:
    """Ask the blast-radius guard; a refusal becomes a Suppressed result (told once as ContainmentSuppressed)."""
    if ctx.guard is None:
        return None
    decision = busy or ctx.guard.check(ctx.node_name)
    if decision.allowed:
        return None
    message = f"{action} of Node {ctx.node_name} held back by guard {decision.guard}: {decision.reason}"
    return ActionResult(action, f"Node {ctx.node_name}", SUPPRESSED, message, guard=decision.guard)


def acted_annotations(ctx: ActionContext) -> dict[str, str | None]:
    return {guards.ACTED_ANNOTATION: now_iso(), "minerguard.io/policy": ctx.policy}
