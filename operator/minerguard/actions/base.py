"""The common interface of containment actions.

Each action is one self-describing unit, in its own module: its name (what policies
reference), what it does, its parameters, the RBAC rules it needs (the Helm chart's
ClusterRole is checked against them), a precondition, a dry-run plan, and
``apply``/``verify``/``revert``. Every ``apply`` and ``revert`` is idempotent: running it
twice, or after an operator restart, changes nothing the first run did not.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar

if TYPE_CHECKING:
    from minerguard.actions.guard import NodeGuard
    from minerguard.config import Settings
    from minerguard.domain.workload import Workload
    from minerguard.storage.kubernetes import KubeStorage

SUCCEEDED = "Succeeded"
FAILED = "Failed"
SUPPRESSED = "Suppressed"
DRY_RUN = "DryRun"


@dataclass(frozen=True)
class RbacRule:
    """One ClusterRole rule an action needs."""

    api_groups: tuple[str, ...]
    resources: tuple[str, ...]
    verbs: tuple[str, ...]


@dataclass
class ActionContext:
    """What an action acts on and with."""

    storage: KubeStorage
    settings: Settings
    workload: Workload | None
    pod: dict[str, Any]
    incident: str
    policy: str
    guard: NodeGuard | None = None
    dry_run: bool = False
    node: str = ""
    incident_namespace: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def pod_ref(self) -> str:
        if self.workload is None:
            return ""
        return f"Pod {self.workload.namespace}/{self.workload.name}"

    @property
    def node_name(self) -> str:
        """The node a node action acts on: the one given, or the pod's."""
        return self.node or (self.workload.node_name if self.workload is not None else "")

    @property
    def incident_ref(self) -> str:
        namespace = self.incident_namespace or (self.workload.namespace if self.workload is not None else "")
        return f"{namespace}/{self.incident}"


@dataclass(frozen=True)
class ActionResult:
    """What happened: recorded in the incident, counted in metrics, told in Events."""

    action: str
    target: str
    result: str
    message: str
    changed: bool = False
    guard: str = ""
    tampered: str = ""  # what was found undone since minerguard applied it, if anything

    def to_record(self, time: str) -> dict[str, str]:
        return {
            "action": self.action,
            "target": self.target,
            "result": self.result,
            "message": self.message,
            "time": time,
        }


class Action:
    """Base class: subclasses set the class attributes and implement the methods."""

    name: ClassVar[str]
    description: ClassVar[str]
    parameters: ClassVar[dict[str, str]] = {}
    rbac: ClassVar[tuple[RbacRule, ...]] = ()

    def target(self, ctx: ActionContext) -> str:
        return ctx.pod_ref

    def precondition(self, ctx: ActionContext) -> str | None:
        """Why the action cannot apply to this pod, or None when it can."""
        return None

    def plan(self, ctx: ActionContext) -> str:
        """What apply would do, in one sentence (the dry-run output)."""
        raise NotImplementedError

    def apply(self, ctx: ActionContext) -> ActionResult:
        raise NotImplementedError

    def verify(self, ctx: ActionContext) -> list[str]:
        """Problems that mean the action's effect is not (or no longer) in force; empty when it is."""
        return []

    def revert(self, ctx: ActionContext) -> ActionResult:
        raise NotImplementedError

    def applied_to(self, ctx: ActionContext) -> bool:
        """Whether this action's effect, applied for ``ctx.incident``, is present (so release must revert it)."""
        return False

    def run(self, ctx: ActionContext) -> ActionResult:
        """Precondition, dry-run or apply: the one entry point the containment service calls."""
        blocked = self.precondition(ctx)
        if blocked:
            return ActionResult(self.name, self.target(ctx), FAILED, blocked)
        if ctx.dry_run:
            return ActionResult(self.name, self.target(ctx), DRY_RUN, f"would {self.plan(ctx)}")
        return self.apply(ctx)
