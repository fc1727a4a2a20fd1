"""Containment actions, by the name policies use for them. Each lives in its own module."""

from __future__ import annotations

from minerguard.actions.base import Action, ActionContext, ActionResult, RbacRule
from minerguard.actions.cordon import Cordon
from minerguard.actions.quarantine import Quarantine
from minerguard.actions.scale_owner import ScaleOwner
from minerguard.actions.taint import Taint

ACTIONS: dict[str, Action] = {a.name: a for a in (Quarantine(), Cordon(), Taint(), ScaleOwner())}
OWNER_ACTIONS = ("scaleOwner",)

__all__ = ["ACTIONS", "OWNER_ACTIONS", "Action", "ActionContext", "ActionResult", "RbacRule"]
