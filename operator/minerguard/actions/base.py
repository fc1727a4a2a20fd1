"""The common interface of containment actions.

Each action is one self-describing unit, in its own module: its name (what policies
reference), its scope (what it acts on: the pod, its node, or its owner), what it does,
its parameters, the RBAC rules it needs (the operator's ClusterRole is derived from them),
the Events it causes, a precondition, a dry-run plan, and ``apply``/``verify``/``revert``.
Every ``apply`` and ``revert`` is idempotent: running it twice, or after an operator
restart, changes nothing the first run did not. Outcomes are typed (:class:`Outcome`),
never told apart by message text.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar, Protocol

from minerguard.domain.kinds import ActionScope

if TYPE_CHECKING:
    from minerguard.actions.enforcement import Enforcement
    from minerguard.actions.guard import NodeGuard
    from minerguard.config import Settings
    from minerguard.domain.incidents import WorkloadRef
    from minerguard.domain.workload import Workload
    from minerguard.storage.kubernetes import KubeStorage


class Outcome(enum.StrEnum):
    """What became of one action; the value is what the incident records."""

    SUCCEEDED = "Succeeded"
    FAILED = "Failed"
    SUPPRESSED = "Suppressed"
    DRY_RUN = "DryRun"


SUCCEEDED = Outcome.SUCCEEDED
FAILED = Outcome.FAILED
SUPPRESSED = Outcome.SUPPRESSED
DRY_RUN = Outcome.DRY_RUN


@dataclass(frozen=True)
class Blocked:
    """Why an action cannot apply; ``not_containable`` when nothing of its kind can contain the subject."""

    message: str
    not_containable: bool = False


@dataclass(frozen=True)
class RbacRule:
    """One ClusterRole rule an action needs."""

    api_groups: tuple[str, ...]
    resources: tuple[str, ...]
    verbs: tuple[str, ...]


class NetworkPolicyView(Protocol):
    """Where an action reads a namespace's NetworkPolicies, and tells what it wrote."""

    def list(self, namespace: str) -> list[dict[str, Any]]: ...

    def wrote(self, body: dict[str, Any]) -> None: ...


class LiveNetworkPolicies:
    """The NetworkPolicies as the API lists them now (release and tools use it; the operator reads its watch)."""

    def __init__(self, storage: KubeStorage) -> None:
        self.storage = storage

    def list(self, namespace: str) -> list[dict[str, Any]]:
        return self.storage.list_network_policies(namespace)

    def wrote(self, body: dict[str, Any]) -> None:
        return None


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
    owner: WorkloadRef | None = None
    """The workload the incident is about (owner actions act on it)."""
    previously_contained: bool = False
    """Whether this pod was contained before, so a fix found necessary now is tampering."""
    network_policies: NetworkPolicyView | None = None
    """Where NetworkPolicies are read; the live API when not given."""
    batch: bool = False
    """Reverted as one of many pods: what they share (the namespace's deny-all) is settled once by the caller."""
    evictions_last_hour: int = 0
    """Pods evicted in the last hour, as the incidents record them (the evict guard reads it)."""
    enforcement: Enforcement | None = None
    """The quarantine backend decided at start; None is the networkPolicy backend."""

    @property
    def policies(self) -> NetworkPolicyView:
        return self.network_policies if self.network_policies is not None else LiveNetworkPolicies(self.storage)

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
    result: Outcome
    message: str
    changed: bool = False
    guard: str = ""
    tampered: str = ""  # what was found undone since minerguard applied it, if anything
    not_containable: bool = False  # the precondition says nothing of this kind can contain the subject

    def to_record(self, time: str) -> dict[str, str]:
        return {
            "action": self.action,
            "target": self.target,
            "result": str(self.result),
            "message": self.message,
            "time": time,
        }


class Action:
    """Base class: subclasses set the class attributes and implement the methods."""

    name: ClassVar[str]
    scope: ClassVar[ActionScope]
    description: ClassVar[str]
    parameters: ClassVar[dict[str, str]] = {}
    rbac: ClassVar[tuple[RbacRule, ...]] = ()
    events: ClassVar[tuple[str, ...]] = ()
    """The reasons of the Events its outcomes are told with (apply, then revert)."""
    optional: ClassVar[bool] = False
    """Whether the installation must turn the action on (``Settings.enabled_actions``; the chart's value
    ``<name>.enabled``): only then is its RBAC rendered, and a policy listing it otherwise gets Failed."""

    def target(self, ctx: ActionContext) -> str:
        return ctx.pod_ref

    def precondition(self, ctx: ActionContext) -> Blocked | None:
        """Why the action cannot apply to this subject, or None when it can."""
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
        if self.optional and self.name not in ctx.settings.enabled_actions:
            return ActionResult(
                self.name,
                self.target(ctx),
                FAILED,
                f"NotEnabled: {self.name} is not enabled in this installation (chart value {self.name}.enabled; "
                "the operator has no RBAC for it)",
            )
        blocked = self.precondition(ctx)
        if blocked is not None:
            return ActionResult(
                self.name, self.target(ctx), FAILED, blocked.message, not_containable=blocked.not_containable
            )
        if ctx.dry_run:
            return ActionResult(self.name, self.target(ctx), DRY_RUN, f"would {self.plan(ctx)}")
        return self.apply(ctx)
