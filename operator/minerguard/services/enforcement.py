"""The quarantine backend: decided once at start, reported, and its cluster-wide policy kept in force.

At start the served policy resources are read from discovery and the backend is chosen
(:func:`minerguard.domain.admintier.choose`); it is logged, exported as ``minerguard_enforcement_backend``,
recorded in every incident's ``status.enforcement`` and told in a Normal Event on the operator's
ClusterKopfPeering object. Then, on the acting replica, :meth:`EnforcementService.maintain` runs every
resync: it restores the cluster-wide Deny when someone changed or deleted it (the admission policy refuses
that first; this is the second line), and, once it verifies, removes minerguard's policies of a backend
used before (migration between admin-tier backends). With the networkPolicy backend it removes a cluster-wide
policy a previous backend left once every quarantined pod verifies under networkPolicy (the way back).
"""

from __future__ import annotations

import logging
from typing import Any

from minerguard import observability
from minerguard.actions.enforcement import Enforcement
from minerguard.config import Settings
from minerguard.domain import admintier, netpol
from minerguard.services.events import Events
from minerguard.storage.kubernetes import KubeStorage

log = logging.getLogger(__name__)


class EnforcementService:
    """Owns the :class:`Enforcement` the quarantine action uses."""

    def __init__(self, storage: KubeStorage, settings: Settings, events: Events) -> None:
        self.storage = storage
        self.settings = settings
        self.events = events
        self.served: set[str] = set()
        self.enforcement: Enforcement | None = None
        self.announced = False
        self.migrated = False

    def decide(self) -> Enforcement:
        """Read discovery and choose the backend (a named backend that is not served is an error)."""
        self.served = self.storage.served_resources({k.api_version for k in admintier.KINDS})
        choice = admintier.choose(self.settings.enforcement, self.served)
        self.enforcement = Enforcement(
            choice, self.settings.enforcement_priority, allow=self.settings.enforcement_allow
        )
        for backend in admintier.BACKENDS:
            observability.ENFORCEMENT_BACKEND.labels(backend).set(int(backend == choice.backend))
        log.info("Quarantine enforcement backend: %s", self.enforcement.describe())
        return self.enforcement

    def maintain(self) -> None:
        """On the acting replica: tell the backend once, keep its policy in force, clean up a previous one."""
        enforcement = self.enforcement
        if enforcement is None:
            return
        if not self.announced:
            self.events.enforcement_chosen(self.settings.peering, enforcement.describe())
            self.announced = True
        if enforcement.kind is None:
            if not self.migrated:
                self._back_to_network_policy(enforcement)
            return
        restored = enforcement.restored
        change = enforcement.maintain(self.storage)
        what = f"{enforcement.kind.kind} {enforcement.kind.name}"
        if enforcement.restored > restored:
            observability.TAMPERING.labels("admin-policy").inc()
            log.warning("%s was %s by someone else; restored", what, "deleted" if change == "created" else "changed")
            self.events.enforcement_restored(self.settings.peering, what, change)
        if not self.migrated:
            problems = enforcement.problems(self.storage)
            if problems:
                log.warning("%s does not isolate quarantined pods yet: %s", what, "; ".join(problems))
                return
            for kind in enforcement.remove_others(self.storage, self.served):
                log.info("Removed minerguard's %s of a previous backend: %s verifies", kind, what)
            self.migrated = True

    def _back_to_network_policy(self, enforcement: Enforcement) -> None:
        """The networkPolicy backend now: a cluster-wide Deny a previous backend left is deleted only once every
        quarantined pod verifies under networkPolicy (its namespace's deny-all, no tenant policy reopening it);
        until then it keeps denying, and the resync moves the pods one by one."""
        if not enforcement.leftovers(self.storage, self.served):
            self.migrated = True
            return
        policies: dict[str, list[dict[str, Any]]] = {}
        pending = []
        for pod in self.storage.list_labelled_pods(f"{netpol.QUARANTINE_LABEL}=true"):
            meta = pod.get("metadata") or {}
            ns = str(meta.get("namespace", ""))
            if (pod.get("spec") or {}).get("hostNetwork"):
                continue  # never isolated by NetworkPolicy; not a quarantine of either backend
            if ns not in policies:
                policies[ns] = self.storage.list_network_policies(ns)
            if netpol.isolation_problems(policies[ns], meta.get("labels") or {}):
                pending.append(f"{ns}/{meta.get('name')}")
        if pending:
            log.info(
                "Keeping minerguard's cluster-wide policy until these quarantined pods verify under networkPolicy: %s",
                ", ".join(sorted(pending)[:10]),
            )
            return
        for kind in enforcement.remove_others(self.storage, self.served):
            log.info("Removed minerguard's %s of a previous backend: every quarantined pod verifies", kind)
        self.migrated = True
