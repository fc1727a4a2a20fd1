"""Release: lift every containment an incident applied, keep the record, marked Released.

A person sets ``spec.release: true`` on a MinerIncident; the worker then reverts, for each pod
still there, the pod and node actions that incident applied (each action knows whether it did:
``applied_to``), then the owner actions, and records the release. Reverting is idempotent, so a
release interrupted by a restart finishes on the next pass.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from minerguard.actions import Action, of_scope, quarantine
from minerguard.actions.base import ActionContext, ActionResult
from minerguard.actions.enforcement import Enforcement
from minerguard.actions.guard import NodeGuard
from minerguard.actions.quarantine import INCIDENT_ANNOTATION, INCIDENT_LABEL, incident_label
from minerguard.config import Settings
from minerguard.domain import binding
from minerguard.domain import incidents as inc
from minerguard.domain.kinds import ActionScope
from minerguard.domain.workload import workload_from_pod
from minerguard.errors import NotFound
from minerguard.services.events import Events
from minerguard.services.recorder import Recorder
from minerguard.storage.kubernetes import KubeStorage, now_iso

log = logging.getLogger(__name__)

RELEASE_WORKERS = 8
"""Pods of one incident freed at a time: a 120-replica release is bounded by this many calls in flight."""


class Releaser:
    """Reverts an incident's actions and records the release."""

    def __init__(
        self, storage: KubeStorage, settings: Settings, guard: NodeGuard | None, recorder: Recorder, events: Events
    ) -> None:
        self.storage = storage
        self.settings = settings
        self.guard = guard
        self.recorder = recorder
        self.events = events
        self._ignored_told: set[tuple[str, str, str]] = set()
        self.enforcement: Enforcement | None = None  # the backend decided at start (App.build); None: networkPolicy

    def release_if_asked(self, namespace: str, name: str) -> None:
        """Release the incident if it still asks for it and is not released yet (read fresh)."""
        try:
            incident = self.storage.get_incident(namespace, name)
        except NotFound:
            return
        spec, status = incident.get("spec") or {}, incident.get("status") or {}
        if not spec.get("release") or status.get("state") == inc.RELEASED:
            return
        if not binding.operator_made(incident):
            self._ignored(incident)
            return
        self.release(incident)

    def _ignored(self, incident: dict[str, Any]) -> None:
        """An incident minerguard did not make asks for a release: refuse it, once per incident and version."""
        meta = incident.get("metadata") or {}
        key = (str(meta.get("namespace")), str(meta.get("name")), str(meta.get("uid")))
        if key in self._ignored_told:
            return
        self._ignored_told.add(key)
        self.events.incident_ignored(*key, "its release frees nothing")

    def release(self, incident: dict[str, Any]) -> None:
        """Lift every containment this incident applied; keep the record, marked Released."""
        meta = incident["metadata"]
        namespace, name = meta["namespace"], meta["name"]
        spec = incident.get("spec") or {}
        policy = str(spec.get("policy", ""))
        workload = spec.get("workload") or {}
        node_incident = str(workload.get("kind")) == "Node"
        pods = [dict(p) for p in (incident.get("status") or {}).get("pods") or []]
        results: list[ActionResult] = []
        templates: set[str] = set()
        if node_incident:
            for p in pods:
                if p.get("state") not in (inc.POD_DELETED, inc.POD_RELEASED):
                    results += self._release_node(str(p.get("name")), name, namespace, policy)
                    p["state"], p["since"] = inc.POD_RELEASED, now_iso()
        else:
            results += self._release_pods(namespace, name, policy, pods, templates)
        owner = inc.WorkloadRef(
            str(workload.get("apiVersion", "")),
            str(workload.get("kind", "")),
            str(workload.get("name", "")),
            str(workload.get("uid", "")),
        )
        ctx = self._ctx(name, policy, incident_namespace=namespace, owner=owner)
        results += self._revert(of_scope(ActionScope.OWNER), ctx)
        self.recorder.released(namespace, name, pods, results, binding.released_for(incident, templates))
        log.info(
            "Released incident %s/%s", namespace, name, extra={"incident": f"{namespace}/{name}", "policy": policy}
        )

    def _release_node(self, node: str, incident: str, namespace: str, policy: str) -> list[ActionResult]:
        ctx = self._ctx(incident, policy, node=node, incident_namespace=namespace)
        return self._revert(of_scope(ActionScope.NODE), ctx)

    def _release_pods(
        self, namespace: str, incident: str, policy: str, pods: list[dict[str, Any]], templates: set[str]
    ) -> list[ActionResult]:
        """Free every pod of the incident, many at a time (bounded), and settle what they share once.

        The pods are the ones carrying the incident's label (listed once: ``status.pods`` holds at most a
        hundred) and the recorded ones not labelled any more (read each); their nodes' actions are reverted
        once per node, and the namespace's deny-all goes when no quarantined pod is left. ``pods`` (the
        incident's records) get their final state, Released or Deleted.
        """
        selector = f"{INCIDENT_LABEL}={incident_label(incident)}"
        bodies: dict[str, dict[str, Any] | None] = {
            str(pod["metadata"]["name"]): pod
            for pod in self.storage.list_pods(namespace, label_selector=selector)
            if ((pod.get("metadata") or {}).get("annotations") or {}).get(INCIDENT_ANNOTATION) == incident
        }
        for p in pods:
            pod_name = str(p.get("name"))
            if p.get("state") not in (inc.POD_DELETED, inc.POD_RELEASED) and pod_name not in bodies:
                try:
                    bodies[pod_name] = self.storage.get_pod(namespace, pod_name)
                except NotFound:
                    bodies[pod_name] = None
        live = [b for b in bodies.values() if b is not None]
        templates.update(binding.template_hash(b) for b in live)
        with ThreadPoolExecutor(max_workers=RELEASE_WORKERS, thread_name_prefix="release") as pool:
            per_pod = list(pool.map(lambda b: self._release_pod(b, incident, policy), live))
        results = [r for rs in per_pod for r in rs]
        for node in sorted({str((b.get("spec") or {}).get("nodeName") or "") for b in live} - {""}):
            results += self._release_node(node, incident, namespace, policy)
        if live:
            quarantine.settle_namespace(self._ctx(incident, policy, enforcement=self.enforcement), namespace)
        for p in pods:
            pod_name = str(p.get("name"))
            if p.get("state") in (inc.POD_DELETED, inc.POD_RELEASED) or pod_name not in bodies:
                continue
            p["state"], p["since"] = (inc.POD_RELEASED if bodies[pod_name] else inc.POD_DELETED), now_iso()
        return results

    def free_pod(self, pod: dict[str, Any], incident: str, policy: str) -> None:
        """Undo the pod actions just taken for a detection its incident turned out to exempt (released meanwhile)."""
        wl = workload_from_pod(pod)
        ctx = ActionContext(self.storage, self.settings, wl, pod, incident, policy, enforcement=self.enforcement)
        self._revert(of_scope(ActionScope.POD), ctx)

    def _release_pod(self, pod: dict[str, Any], incident: str, policy: str) -> list[ActionResult]:
        """Revert the pod's own actions (its node's are reverted once per node by the caller)."""
        wl = workload_from_pod(pod)
        ctx = ActionContext(
            self.storage, self.settings, wl, pod, incident, policy, guard=self.guard, enforcement=self.enforcement
        )
        ctx.batch = True
        results = self._revert(of_scope(ActionScope.POD), ctx)
        self.events.pod_released(wl, incident)
        return results

    def _ctx(self, incident: str, policy: str, **kw: Any) -> ActionContext:
        return ActionContext(self.storage, self.settings, None, {}, incident, policy, guard=self.guard, **kw)

    def _revert(self, actions: Iterable[Action], ctx: ActionContext) -> list[ActionResult]:
        results = []
        for action in actions:
            if action.applied_to(ctx):
                result = action.revert(ctx)
                self.events.reverted(action, result)
                results.append(result)
        return results
