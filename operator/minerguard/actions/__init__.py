"""The action registry: every containment action, by the name policies use for it.

Each action lives in its own module and declares its scope, parameters, RBAC and Events.
This registry is the one list of them: the operator's RBAC (:mod:`minerguard.rbac`), which
actions act on nodes or owners, and the dry-run and release flows all read it. The names
and scopes a MinerPolicy may use are part of its contract (:data:`minerguard.domain.kinds.ACTION_SCOPES`,
the CRD enum); the registry must implement exactly those, and says so at import otherwise.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType

from minerguard.actions.base import Action, ActionContext, ActionResult, Blocked, Outcome, RbacRule
from minerguard.actions.cordon import Cordon
from minerguard.actions.evict import Evict
from minerguard.actions.quarantine import Quarantine
from minerguard.actions.scale_owner import ScaleOwner
from minerguard.actions.taint import Taint
from minerguard.domain.kinds import ACTION_SCOPES, ActionScope

ACTIONS: Mapping[str, Action] = MappingProxyType(
    {a.name: a for a in (Quarantine(), Cordon(), Taint(), ScaleOwner(), Evict())}
)

_declared = {name: action.scope for name, action in ACTIONS.items()}
if _declared != dict(ACTION_SCOPES):
    raise RuntimeError(f"the action registry {_declared} differs from the MinerPolicy contract {dict(ACTION_SCOPES)}")


def of_scope(scope: ActionScope) -> tuple[Action, ...]:
    """The registered actions that act on ``scope``, in registry order."""
    return tuple(a for a in ACTIONS.values() if a.scope is scope)


__all__ = ["ACTIONS", "Action", "ActionContext", "ActionResult", "Blocked", "Outcome", "RbacRule", "of_scope"]
