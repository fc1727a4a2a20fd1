"""MinerIncident records: open one per workload, record what was found and done, note pods gone.

The incident's status write is the commit point of a containment pass: the Events of a change
are told before the status that records it is written, so a crash in between repeats them after
a restart rather than losing them (at least once). Writes to one incident are serialised in this
process; across replicas the resourceVersion of the status replace guards them.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from minerguard import observability
from minerguard.actions.base import ActionResult, Outcome
from minerguard.domain import foothold as fh
from minerguard.domain import incidents as inc
from minerguard.domain.detection import Verdict
from minerguard.domain.text import shorten
from minerguard.errors import AlreadyExists, KubeError, NotFound
from minerguard.services.events import Events, Subject, Telling
from minerguard.services.state import ClusterState
from minerguard.storage.kubernetes import KubeStorage, now_iso, retrying

log = logging.getLogger(__name__)


class Recorder:
    """Creates and updates MinerIncidents and keeps the watch cache of them current."""

    def __init__(self, storage: KubeStorage, state: ClusterState, events: Events) -> None:
        self.storage = storage
        self.state = state
        self.enforcement = ""  # the quarantine backend decided at start, recorded in every incident's status
        self.events = events
        self._locks = [threading.Lock() for _ in range(64)]
        self._kept_told: set[str] = set()

    def lock(self, namespace: str, name: str) -> threading.Lock:
        """The lock serialising this process's writes to one incident."""
        return self._locks[hash((namespace, name)) % len(self._locks)]

    def ensure(
        self,
        namespace: str,
        ref: inc.WorkloadRef,
        verdict: Verdict,
        name: str = "",
        accept: Callable[[dict[str, Any]], bool] | None = None,
    ) -> dict[str, Any]:
        """The incident ``name`` (default: the workload's), created if missing; an Audit incident is raised to
        Enforce by an Enforce match, unless ``accept`` refuses the incident found (then it is returned as is)."""
        name = name or inc.incident_name(ref)
        cached = self.state.incident(namespace, name)

        def attempt() -> dict[str, Any]:
            if cached is not None:
                return cached.body
            body = inc.new_incident(namespace, ref, verdict.policy, verdict.mode, name)
            try:
                created = self.storage.create_incident(namespace, body)
            except AlreadyExists:  # created before the watch told this process (another replica, or a restart)
                return self.storage.get_incident(namespace, name)
            observability.DETECTIONS.labels(verdict.policy, verdict.mode).inc()
            return created

        incident = retrying(attempt, what=f"open MinerIncident {namespace}/{name}")
        if accept is not None and not accept(incident):
            self.state.put_incident(namespace, name, incident)
            return incident
        spec = incident.get("spec") or {}
        if verdict.mode == "Enforce" and spec.get("mode") != "Enforce" and not spec.get("release"):
            incident = self.storage.patch_incident_spec(namespace, name, {"mode": "Enforce", "policy": verdict.policy})
        self.state.put_incident(namespace, name, incident)
        return incident

    def record(
        self,
        subject: Subject,
        incident: dict[str, Any],
        matched: Sequence[Verdict],
        primary: Verdict,
        results: list[ActionResult],
        pod_state: str,
        foothold: dict[str, Any] | None = None,
    ) -> None:
        """Write the subject, evidence and actions into the incident status, telling each change in Events.

        ``foothold`` (gathered after the cut, once per incident) goes into the same status write."""
        name = incident["metadata"]["name"]
        now = now_iso()
        record = {"name": subject.name, "uid": subject.uid, "node": subject.node, "state": pod_state, "since": now}
        evidence = [e for v in matched for e in inc.evidence_records(v.evidence, v.policy)]
        telling = Telling(subject, primary, name)
        first = True

        def attempt() -> dict[str, Any]:
            nonlocal first
            live = incident if first else self.storage.get_incident(subject.namespace, name)
            first = False
            status = dict(live.get("status") or {})
            before = next((p for p in status.get("pods") or [] if p.get("uid") == subject.uid), None)
            previous_actions = list(status.get("actions") or [])
            pods, _ = inc.upsert_pod(status.get("pods") or [], record)
            status["pods"] = pods
            status["podCount"] = len(pods)
            status["evidence"] = inc.merge_evidence(status.get("evidence") or [], evidence)
            status["actions"] = inc.append_actions(previous_actions, [r.to_record(now) for r in results])
            status.setdefault("firstSeen", now)
            if self.enforcement:
                status["enforcement"] = self.enforcement
            if foothold and not status.get("foothold"):
                status["foothold"] = foothold
            elif subject.kind == "Pod" and subject.node and status.get("foothold"):
                if not (status["foothold"].get("where") or {}).get("node"):  # scheduled after it was contained
                    status["foothold"] = fh.with_node(status["foothold"], subject.node)
            spec = live.get("spec") or {}
            status["state"] = inc.overall_state(pods, str(spec.get("mode", primary.mode)), carried_out(live))
            status["message"] = _message(status["state"], subject, results)
            fresh = [r for r in results if not inc.is_repeat(previous_actions, r.to_record(now))]
            entered = before is None or before.get("state") != pod_state
            entered_contained = entered and pod_state in (inc.POD_CONTAINED, inc.POD_PARTIAL)
            self.events.containment(telling, results, fresh, before is None, entered_contained)
            if status != (live.get("status") or {}):
                status["lastUpdated"] = now
                live = self.storage.replace_incident_status(subject.namespace, inc.with_status(live, status))
            return live

        updated = retrying(attempt, what=f"record MinerIncident {subject.namespace}/{name}")
        self.state.put_incident(subject.namespace, name, updated)

    def annotate(self, namespace: str, name: str, fields: Mapping[str, Any]) -> None:
        """Write the canary's fields (``cost``, ``related``, ``relatedCount``) into an open incident's status.

        Nothing else changes; an incident released or ended meanwhile is left alone (its bill stops there).
        """
        first = True

        def attempt() -> dict[str, Any] | None:
            nonlocal first
            cached = self.state.incident(namespace, name) if first else None
            live = cached.body if cached is not None else self.storage.get_incident(namespace, name)
            first = False
            status = dict(live.get("status") or {})
            if (live.get("spec") or {}).get("release") or status.get("state") not in inc.OPEN_STATES:
                return None
            new = {**status, **fields}
            if new == status:
                return None
            return self.storage.replace_incident_status(namespace, inc.with_status(live, new, now_iso()))

        with self.lock(namespace, name):
            updated = retrying(attempt, what=f"bill of MinerIncident {namespace}/{name}")
        if updated is not None:
            self.state.put_incident(namespace, name, updated)

    def kept(self, subject: Subject, name: str, policy: str, result: ActionResult, unmatched: bool) -> None:
        """The upkeep of a quarantine that no verdict asks for any more: tell what was restored and, once per pod,
        that the pod stays contained although it matches no policy (an Event and the incident's message)."""
        if result.tampered:
            observability.TAMPERING.labels(result.action).inc()
            note = f"Containment of {subject.title} was undone and is restored: {result.tampered} (incident {name})"
            self.events.emit(subject.ref, "QuarantineRestored", note, action=result.action)
        if not unmatched or subject.uid in self._kept_told:
            return
        if len(self._kept_told) > 10000:
            self._kept_told.clear()
        self._kept_told.add(subject.uid)
        note = (
            f"{subject.title} no longer matches policy {policy or '(unknown)'} in Enforce mode but stays "
            f"quarantined: only a release of incident {subject.namespace}/{name} ends it"
        )
        self.events.emit(subject.ref, "ContainmentKept", note, action="upkeep")
        log.warning("%s", note, extra={"object": subject.title, "incident": f"{subject.namespace}/{name}"})

        def attempt() -> None:
            live = self.storage.get_incident(subject.namespace, name)
            status = dict(live.get("status") or {})
            if status.get("message") == note:
                return
            status["message"], status["lastUpdated"] = shorten(note, 300), now_iso()
            updated = self.storage.replace_incident_status(subject.namespace, inc.with_status(live, status))
            self.state.put_incident(subject.namespace, name, updated)

        try:
            with self.lock(subject.namespace, name):
                retrying(attempt, what=f"note in MinerIncident {subject.namespace}/{name}")
        except (NotFound, KubeError) as exc:
            log.info("Could not note in MinerIncident %s/%s: %s", subject.namespace, name, exc)

    def pod_gone(self, namespace: str, incident_name: str, pod: str, uid: str) -> None:
        """A matched pod was deleted: mark it Deleted in its incident, end the incident when none is left."""

        def attempt() -> dict[str, Any]:
            live = self.storage.get_incident(namespace, incident_name)
            status = dict(live.get("status") or {})
            pods = [dict(p) for p in status.get("pods") or []]
            for p in pods:
                if p.get("uid") == uid and p.get("state") != inc.POD_DELETED:
                    p["state"], p["since"] = inc.POD_DELETED, now_iso()
            status["pods"] = pods
            spec = live.get("spec") or {}
            status["state"] = inc.overall_state(pods, str(spec.get("mode")), carried_out(live))
            if status["state"] == inc.ENDED:
                status["message"] = "Every pod of this workload is gone"
            if status != (live.get("status") or {}):
                status["lastUpdated"] = now_iso()
                live = self.storage.replace_incident_status(namespace, inc.with_status(live, status))
            return live

        with self.lock(namespace, incident_name):
            try:
                updated = retrying(attempt, what=f"record deletion in MinerIncident {namespace}/{incident_name}")
            except NotFound:
                return
        self.state.put_incident(namespace, incident_name, updated)
        log.info(
            "Pod %s/%s was deleted; recorded in incident %s/%s",
            namespace,
            pod,
            namespace,
            incident_name,
            extra={"object": f"Pod {namespace}/{pod}", "incident": f"{namespace}/{incident_name}"},
        )

    def released(
        self,
        namespace: str,
        name: str,
        pods: list[dict[str, Any]],
        results: list[ActionResult],
        released_for: Mapping[str, Any] | None = None,
    ) -> None:
        """Record a finished release: the pods' final states, the reverts and what the release covers
        (``status.releasedFor``, see :mod:`minerguard.domain.binding`); the incident is Released."""
        now = now_iso()

        def attempt() -> dict[str, Any]:
            live = self.storage.get_incident(namespace, name)
            st = dict(live.get("status") or {})
            st["pods"] = pods
            st["podCount"] = len(pods)
            st["actions"] = inc.append_actions(st.get("actions") or [], [r.to_record(now) for r in results])
            st["state"] = inc.RELEASED
            if released_for is not None:
                st["releasedFor"] = dict(released_for)
            released_by = (live.get("spec") or {}).get("releasedBy")
            st["message"] = f"Released{' by ' + str(released_by) if released_by else ''}"
            st["lastUpdated"] = now
            return self.storage.replace_incident_status(namespace, inc.with_status(live, st))

        updated = retrying(attempt, what=f"record release of MinerIncident {namespace}/{name}")
        self.state.put_incident(namespace, name, updated)


def carried_out(incident: dict[str, Any]) -> bool:
    """Whether the incident's release was carried out (the Releaser marked it), not merely asked for.

    A write made between a person setting ``spec.release`` and the Releaser reverting must not mark the
    incident Released: that would hide the pending release from the Releaser (it acts on what is not Released
    yet) and leave the workload contained under a record that says otherwise.
    """
    return (
        bool((incident.get("spec") or {}).get("release"))
        and (incident.get("status") or {}).get("state") == inc.RELEASED
    )


def _message(state: str, subject: Subject, results: list[ActionResult]) -> str:
    failed = [r for r in results if r.result in (Outcome.FAILED, Outcome.SUPPRESSED)]
    if failed:
        return shorten(f"{state}: {failed[0].action} {failed[0].result}: {failed[0].message}", 300)
    return f"{state}: last seen {subject.title}"
