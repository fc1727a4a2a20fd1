"""Every Kubernetes Event the operator emits, in one place.

Events are how people review what minerguard did (``kubectl get events``), so their reasons
and texts are part of the product: they are written here and nowhere else. An Event that
cannot be posted is logged and never fails the work that caused it.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from minerguard import observability
from minerguard.actions import ACTIONS, Action
from minerguard.actions.base import ActionResult, Outcome
from minerguard.domain.detection import Verdict
from minerguard.domain.kinds import ActionScope
from minerguard.domain.text import shorten
from minerguard.domain.workload import Workload
from minerguard.errors import KubeError
from minerguard.storage.kubernetes import KubeStorage

log = logging.getLogger(__name__)

POLICY_API_VERSION = "minerguard.io/v1alpha1"


def pod_ref(wl: Workload) -> dict[str, str]:
    return {"apiVersion": "v1", "kind": "Pod", "name": wl.name, "namespace": wl.namespace, "uid": wl.uid}


def node_ref(name: str) -> dict[str, str]:
    return {"apiVersion": "v1", "kind": "Node", "name": name}


def peering_ref(name: str) -> dict[str, str]:
    return {"apiVersion": "kopf.dev/v1", "kind": "ClusterKopfPeering", "name": name}


def policy_ref(name: str, uid: str = "") -> dict[str, str]:
    ref = {"apiVersion": POLICY_API_VERSION, "kind": "MinerPolicy", "name": name}
    if uid:
        ref["uid"] = uid
    return ref


@dataclass(frozen=True)
class Subject:
    """What an incident records and Events are about: a pod, or a node."""

    kind: str
    name: str
    uid: str
    namespace: str  # the incident's namespace
    node: str
    ref: dict[str, str]

    @classmethod
    def of_pod(cls, wl: Workload) -> Subject:
        return cls("Pod", wl.name, wl.uid, wl.namespace, wl.node_name, pod_ref(wl))

    @classmethod
    def of_node(cls, node: str, uid: str, namespace: str) -> Subject:
        return cls("Node", node, uid, namespace, node, node_ref(node))

    @property
    def title(self) -> str:
        return f"Pod {self.namespace}/{self.name}" if self.kind == "Pod" else f"{self.kind} {self.name}"


@dataclass
class Telling:
    """The Events of one recording pass: each key is told at most once, however often the pass is retried."""

    subject: Subject
    verdict: Verdict
    incident: str
    told: set[str] = field(default_factory=set)

    @property
    def where(self) -> str:
        return f"(policy {self.verdict.policy}, incident {self.subject.namespace}/{self.incident})"

    @property
    def fields(self) -> dict[str, str]:
        return {
            "object": self.subject.title,
            "policy": self.verdict.policy,
            "incident": f"{self.subject.namespace}/{self.incident}",
        }


class Events:
    """Posts the operator's Events through storage."""

    def __init__(self, storage: KubeStorage) -> None:
        self.storage = storage

    def emit(self, ref: Mapping[str, str], reason: str, note: str, warning: bool = True, action: str = "") -> None:
        try:
            self.storage.emit_event(ref, reason, note, warning=warning, action=action or reason)
        except KubeError as exc:
            log.warning("Could not emit Event %s for %s %s: %s", reason, ref.get("kind"), ref.get("name"), exc)

    # ------------------------------------------------------------------ containment

    def _once(self, t: Telling, key: str, ref: Mapping[str, str], reason: str, note: str, **kw: Any) -> None:
        if key in t.told:
            return
        t.told.add(key)
        self.emit(ref, reason, note, **kw)

    def containment(
        self,
        t: Telling,
        results: list[ActionResult],
        fresh: list[ActionResult],
        newly_detected: bool,
        entered_contained: bool,
    ) -> None:
        """Events for what changed: a new detection, a pod entering Contained, tampering, new action outcomes."""
        if newly_detected:
            self._detected(t)
        for r in results:
            if r.action == "quarantine" and r.result == Outcome.SUCCEEDED and entered_contained:
                self._once(t, "quarantined", t.subject.ref, "PodQuarantined", r.message, action=r.action)
                log.warning("%s %s", r.message, t.where, extra=t.fields)
            if r.action == "evict" and r.result == Outcome.SUCCEEDED and r.changed:
                self._once(t, "evicted", t.subject.ref, "PodEvicted", r.message, action=r.action)
                log.warning("%s", r.message, extra=t.fields)
            if r.result == Outcome.SUCCEEDED and r.changed and _is_node_action(r.action):
                node = node_ref(r.target.split(" ", 1)[-1])
                self._once(t, f"node-{r.action}", node, _action_events(r.action)[0], r.message, action=r.action)
            if r.tampered:
                observability.TAMPERING.labels(r.action).inc()
                note = f"Containment of {t.subject.title} was undone and is restored: {r.tampered} {t.where}"
                self._once(t, f"tampered-{r.action}", t.subject.ref, "QuarantineRestored", note, action=r.action)
                log.warning("%s", note, extra=t.fields)
        for r in fresh:
            self._outcome(t, r)

    def _detected(self, t: Telling) -> None:
        verdict, subject = t.verdict, t.subject
        containers = sorted({e.container for e in verdict.evidence if e.container})
        signals = "; ".join(shorten(f"{e.signal}: {e.detail}", 160) for e in verdict.evidence[:4])
        note = (
            f"MinerPolicy {verdict.policy} ({verdict.mode}) matched {subject.title}"
            f"{' container ' + ','.join(containers) if containers else ''}: {signals}. "
            f"Incident {subject.namespace}/{t.incident}."
        )
        self._once(t, "detected", subject.ref, "MinerDetected", note, action="Detect")
        self._once(t, "detected-policy", policy_ref(verdict.policy), "MinerDetected", note, action="Detect")
        log.warning("Detected miner in %s by policy %s: %s", subject.title, verdict.policy, signals, extra=t.fields)

    def _outcome(self, t: Telling, r: ActionResult) -> None:
        node_action = _is_node_action(r.action)
        if r.result == Outcome.SUCCEEDED and r.changed and node_action:
            if t.subject.kind == "Pod":
                reason = _action_events(r.action)[0]
                self._once(t, f"ok-{r.action}", t.subject.ref, reason, r.message, action=r.action)
            log.warning("%s", r.message, extra=t.fields)
        elif r.result == Outcome.SUPPRESSED:
            note = f"{r.message} {t.where}"
            if node_action:
                node = node_ref(r.target.split(" ", 1)[-1])
                self._once(t, f"held-node-{r.action}", node, "ContainmentSuppressed", note, action=r.action)
            if t.subject.kind == "Pod":
                self._once(t, f"held-{r.action}", t.subject.ref, "ContainmentSuppressed", note, action=r.action)
            log.warning("Held back: %s", note, extra=t.fields)
        elif r.result == Outcome.FAILED:
            note = f"{r.action} on {r.target} failed: {r.message} {t.where}"
            self._once(t, f"failed-{r.action}", t.subject.ref, "ContainmentFailed", note, action=r.action)
            log.error("%s", note, extra=t.fields)
        elif r.result == Outcome.DRY_RUN:
            note = f"{r.action}: {r.message} {t.where}"
            self._once(t, f"dry-{r.action}", t.subject.ref, "DryRun", note, action=r.action)

    # ------------------------------------------------------------------ release

    def pod_released(self, wl: Workload, incident: str) -> None:
        note = f"Released Pod {wl.namespace}/{wl.name} from containment (incident {incident})"
        self.emit(pod_ref(wl), "Released", note, warning=False, action="Release")

    def reverted(self, action: Action, result: ActionResult) -> None:
        """A node action undone by a release: told on the node."""
        if action.scope is ActionScope.NODE and result.changed and len(action.events) > 1:
            node = result.target.split(" ", 1)[-1]
            self.emit(node_ref(node), action.events[1], result.message, warning=False, action="release")

    def incident_ignored(self, namespace: str, name: str, uid: str, why: str) -> None:
        """A MinerIncident minerguard did not make: it neither exempts nor releases anything."""
        ref = {"apiVersion": POLICY_API_VERSION, "kind": "MinerIncident", "name": name, "namespace": namespace}
        note = f"MinerIncident {namespace}/{name} was not made by minerguard and is ignored: {why}"
        self.emit({**ref, "uid": uid}, "IncidentIgnored", note, action="Verify")
        log.warning("%s", note, extra={"incident": f"{namespace}/{name}"})

    # ------------------------------------------------------------------ enforcement

    def enforcement_chosen(self, peering: str, described: str) -> None:
        """A Normal Event on the ClusterKopfPeering object (the operator's own cluster object): the backend."""
        if peering:
            note = f"Quarantine is enforced with {described}"
            self.emit(peering_ref(peering), "EnforcementBackend", note, warning=False, action="Start")

    def enforcement_restored(self, peering: str, what: str, change: str) -> None:
        if peering:
            note = f"{what} was {'deleted' if change == 'created' else 'changed'}; minerguard restored it"
            self.emit(peering_ref(peering), "QuarantineRestored", note, action="Restore")

    # ------------------------------------------------------------------ policies

    def policy_invalid(self, name: str, uid: str, message: str) -> None:
        note = f"MinerPolicy {name} is invalid and ignored: {message}"
        self.storage.emit_event(policy_ref(name, uid), "InvalidPolicy", note, action="Validate")

    def metrics_availability(self, name: str, uid: str, available: bool, message: str) -> None:
        note = (
            f"CPU signals of MinerPolicy {name} are evaluated again"
            if available
            else f"CPU signals of MinerPolicy {name} cannot be evaluated: {message}; spec signals keep working"
        )
        reason = "MetricsAvailable" if available else "MetricsUnavailable"
        self.storage.emit_event(policy_ref(name, uid), reason, note, warning=not available, action="Evaluate")


def _is_node_action(name: str) -> bool:
    action = ACTIONS.get(name)
    return action is not None and action.scope is ActionScope.NODE


def _action_events(name: str) -> tuple[str, ...]:
    action = ACTIONS.get(name)
    return action.events if action is not None and action.events else (name,)
