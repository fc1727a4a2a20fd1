"""How the quarantine action enforces isolation: the backend decided at start, behind one interface.

``networkPolicy`` is the portable method of :mod:`minerguard.actions.quarantine` (a deny-all per namespace
plus exclusions in tenants' policies). Every other backend (:mod:`minerguard.domain.admintier`) keeps one
cluster-scoped deny policy owned by the operator, whose Deny outranks every namespace NetworkPolicy, so
quarantine is only the pod's label and no tenant object is touched. :class:`Enforcement` creates that
policy, restores it when it was edited or deleted (tampering), verifies it (exists, selects the label,
denies everything, nothing outranks it), and removes it when the operator has moved to another backend.

The RBAC of each backend is declared here (:data:`BACKEND_RBAC`) and rendered by the chart only for the
backends it may use (``enforcement.backend``).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from minerguard.actions.base import RbacRule
from minerguard.domain import admintier
from minerguard.domain.admintier import NO_ALLOW, AllowList, Choice, PolicyKind
from minerguard.errors import AlreadyExists, Conflict, Forbidden, Invalid, NotFound
from minerguard.storage.kubernetes import retrying

if TYPE_CHECKING:
    from minerguard.storage.kubernetes import KubeStorage

log = logging.getLogger(__name__)

_POLICY_VERBS = ("get", "list", "create", "patch", "delete")


def _rules_of(backend: str) -> tuple[RbacRule, ...]:
    kinds = [k for k in admintier.KINDS if k.backend == backend]
    return tuple(RbacRule((k.group,), (k.plural,), _POLICY_VERBS) for k in kinds)


# What each backend adds to the quarantine action's own rules (labelling pods). The networkPolicy backend
# writes tenants' NetworkPolicies and marks namespaces; the others write only their cluster-wide policy.
BACKEND_RBAC: dict[str, tuple[RbacRule, ...]] = {
    admintier.NETWORK_POLICY: (
        RbacRule(("networking.k8s.io",), ("networkpolicies",), ("get", "list", "watch", "create", "patch", "delete")),
        # The namespace label minerguard.io/quarantined-pods, which the admission policy reads.
        RbacRule(("",), ("namespaces",), ("patch",)),
    ),
    **{b: _rules_of(b) for b in admintier.BACKENDS if b != admintier.NETWORK_POLICY},
}


# Moving back from a cluster-wide backend to networkPolicy: minerguard's old policy is read and deleted once every
# quarantined pod verifies under networkPolicy (never created or changed: the bound-operator policy allows only
# minerguard-quarantine anyway).
CLEANUP_RBAC: dict[str, tuple[RbacRule, ...]] = {
    b: tuple(RbacRule(r.api_groups, r.resources, ("get", "delete")) for r in _rules_of(b))
    for b in admintier.BACKENDS
    if b != admintier.NETWORK_POLICY
}


def cleanup_for(setting: str, migrate_from_admin_tier: bool = True) -> tuple[str, ...]:
    """The cluster-wide backends whose leftover policy the operator needs to remove with ``setting``: every one
    when ``networkPolicy`` is set and ``migrate_from_admin_tier`` (the chart's enforcement.migrateFromAdminTier);
    the other settings already hold what they need (auto: everything; a named backend: see ``remove_others``)."""
    if setting == admintier.NETWORK_POLICY and migrate_from_admin_tier:
        return tuple(CLEANUP_RBAC)
    return ()


def backends_for(setting: str, migrate_from_network_policy: bool = True) -> tuple[str, ...]:
    """The backends whose RBAC the operator needs when configured with ``setting`` (the chart's value).

    ``auto`` may pick any of them. A named admin-tier backend needs the networkPolicy backend's rules only to
    move quarantines made with it (``migrate_from_network_policy``).
    """
    if setting == admintier.AUTO:
        return admintier.BACKENDS
    if setting != admintier.NETWORK_POLICY and migrate_from_network_policy:
        return (setting, admintier.NETWORK_POLICY)
    return (setting,)


@dataclass
class Enforcement:
    """The cluster-wide deny policy of the backend chosen at start (``kind`` None: the networkPolicy backend)."""

    choice: Choice
    priority: int = 0
    external: bool = True
    """Whether the policy also denies egress outside the cluster (False where the CRD has no ``networks``)."""
    allow: AllowList = NO_ALLOW
    """What the Deny still lets through (the chart's enforcement.allow: DNS, a forensics namespace)."""
    restored: int = field(default=0)
    """How many times the policy was found changed or deleted after minerguard had it in force."""
    ensured: bool = field(default=False)

    @property
    def backend(self) -> str:
        return self.choice.backend

    @property
    def kind(self) -> PolicyKind | None:
        return self.choice.kind

    @property
    def cluster_wide(self) -> bool:
        return self.choice.kind is not None

    def describe(self) -> str:
        if self.kind is None:
            return f"{self.backend} (a deny-all NetworkPolicy per namespace; {self.choice.reason})"
        return f"{self.backend} ({self.kind.kind} {self.kind.api_version} {self.kind.name}; {self.choice.reason})"

    def ensure(self, storage: KubeStorage) -> str:
        """Create the policy, or make it minerguard's again: "created", "restored", "taken over" or ""."""
        kind = self.kind
        if kind is None:
            return ""

        def attempt() -> str:
            try:
                live = storage.get_cluster_policy(kind, kind.name)
            except NotFound:
                self._create(storage, kind)
                return "created"
            intact = not admintier.problems(kind, live, [], self.priority, self.external, self.allow)
            if intact and admintier.owned(live):
                return ""
            try:
                storage.patch_cluster_policy(
                    kind, kind.name, admintier.repair(kind, live, self.priority, self.external, self.allow)
                )
            except Invalid:
                if not self._without_networks(kind):
                    raise
                raise Conflict(f"{kind.kind} {kind.name}: retried without the networks peer") from None
            return "restored" if not intact else "taken over"

        change = retrying(attempt, what=f"ensure {kind.kind} {kind.name}")
        self.ensured = True
        return change

    def _create(self, storage: KubeStorage, kind: PolicyKind) -> None:
        try:
            storage.create_cluster_policy(kind, admintier.desired(kind, self.priority, self.external, self.allow))
        except AlreadyExists:
            raise Conflict(f"{kind.kind} {kind.name} was created meanwhile") from None
        except Invalid:
            if not self._without_networks(kind):
                raise
            storage.create_cluster_policy(kind, admintier.desired(kind, self.priority, self.external, self.allow))

    def _without_networks(self, kind: PolicyKind) -> bool:
        """After a refusal: the standard channel of AdminNetworkPolicy v1alpha1 has no ``networks`` peer, so deny
        what it can (all traffic between pods) and say so. False when that was not the reason."""
        if kind.backend != admintier.ADMIN_NETWORK_POLICY or not self.external:
            return False
        log.warning(
            "%s %s cannot deny egress outside the cluster here (no `networks` peer in this CRD: install the "
            "experimental channel of network-policy-api); it denies all traffic between pods",
            kind.kind,
            kind.name,
        )
        self.external = False
        return True

    def problems(self, storage: KubeStorage) -> list[str]:
        """Why quarantined pods are not isolated by the policy as the API has it now; empty when they are."""
        kind = self.kind
        if kind is None:
            return []
        items = storage.list_cluster_policies(kind)
        live = next((i for i in items if (i.get("metadata") or {}).get("name") == kind.name), None)
        return admintier.problems(kind, live, items, self.priority, self.external, self.allow)

    def maintain(self, storage: KubeStorage) -> str:
        """Restore the policy if it was changed or deleted; what was done ("" when nothing)."""
        ensured = self.ensured
        change = self.ensure(storage)
        if change and ensured:
            self.restored += 1
        return change

    def leftovers(self, storage: KubeStorage, served: set[str]) -> list[PolicyKind]:
        """The other served kinds holding a policy of minerguard's (left by a previous backend)."""
        found = []
        for kind in admintier.KINDS:
            if kind == self.kind or kind.served_key not in served:
                continue
            try:
                if admintier.owned(storage.get_cluster_policy(kind, kind.name)):
                    found.append(kind)
            except (NotFound, Forbidden):
                continue
        return found

    def remove_others(self, storage: KubeStorage, served: set[str]) -> list[str]:
        """Delete minerguard's policies of every other served kind (left by a previous backend); their kinds."""
        removed = []
        for kind in admintier.KINDS:
            if kind == self.kind or kind.served_key not in served:
                continue
            try:
                live = storage.get_cluster_policy(kind, kind.name)
                if admintier.owned(live):
                    storage.delete_cluster_policy(kind, kind.name)
                    removed.append(kind.kind)
            except (NotFound, Forbidden):
                continue
        return removed


NETWORK_POLICY_ENFORCEMENT = Enforcement(Choice(admintier.NETWORK_POLICY, None, "the default"))
