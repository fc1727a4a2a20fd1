"""Detection and containment of pods: the operator's main service.

Watch handlers call :meth:`Containment.observe_pod` for every pod event. It parses
the pod and evaluates it against every ready policy in memory (the pure
:mod:`minerguard.domain.detection`); a pod that matches nothing costs no API call at all,
and is never written to. A matched pod's key goes on a work queue; a worker then
reads the pod, opens or finds its incident, runs the policy's actions, verifies
them, records everything in the incident and tells it in Events. Every step is
idempotent, so a repeated event, a resync or a restart only confirms what is done.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass
from typing import Any

from minerguard import observability
from minerguard.actions import ACTIONS, OWNER_ACTIONS
from minerguard.actions.base import DRY_RUN, FAILED, SUCCEEDED, SUPPRESSED, ActionContext, ActionResult
from minerguard.actions.guard import NodeGuard
from minerguard.actions.quarantine import INCIDENT_ANNOTATION
from minerguard.config import Settings
from minerguard.domain import incidents as inc
from minerguard.domain import netpol
from minerguard.domain.detection import Evidence, Verdict, evaluate, evaluate_node, prepare
from minerguard.domain.policy import Policy
from minerguard.domain.text import shorten
from minerguard.domain.workload import Workload, workload_from_pod
from minerguard.errors import AlreadyExists, KubeError, NotFound
from minerguard.services.policies import PolicyRegistry
from minerguard.services.state import ClusterState, PodEntry, PodKey
from minerguard.storage.kubernetes import KubeStorage, now_iso, retrying
from minerguard.workqueue import WorkQueue

log = logging.getLogger(__name__)

MetricFindings = Callable[[Policy, Workload], Sequence[Evidence]]


def _no_metrics(_: Policy, __: Workload) -> Sequence[Evidence]:
    return ()


def pod_ref(wl: Workload) -> dict[str, str]:
    return {"apiVersion": "v1", "kind": "Pod", "name": wl.name, "namespace": wl.namespace, "uid": wl.uid}


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

    @property
    def title(self) -> str:
        return f"Pod {self.namespace}/{self.name}" if self.kind == "Pod" else f"{self.kind} {self.name}"


class Containment:
    def __init__(
        self,
        storage: KubeStorage,
        settings: Settings,
        state: ClusterState,
        policies: PolicyRegistry,
        guard: NodeGuard | None = None,
        metric_findings: MetricFindings = _no_metrics,
        workers: int = 4,
    ) -> None:
        self.storage = storage
        self.settings = settings
        self.state = state
        self.policies = policies
        self.guard = guard
        self.metric_findings = metric_findings
        self.queue = WorkQueue(self._process, workers=workers, name="contain")
        self._owners: dict[str, inc.WorkloadRef] = {}
        self._gone: dict[str, Workload] = {}
        self._incident_locks = [threading.Lock() for _ in range(64)]

    def start(self) -> None:
        self.queue.start()

    def stop(self) -> None:
        self.queue.stop()

    # ------------------------------------------------------------------ the hot path (watch events)

    def evaluate(self, wl: Workload) -> list[Verdict]:
        labels = self.state.namespace_labels(wl.namespace)
        started = time.perf_counter()
        prepared = prepare(wl)
        verdicts = [evaluate(p, wl, labels, self.metric_findings(p, wl), prepared) for p in self.policies.ready()]
        observability.EVALUATION_SECONDS.observe(time.perf_counter() - started)
        return [v for v in verdicts if v.matched]

    def observe_pod(self, event_type: str | None, pod: dict[str, Any]) -> None:
        """Take in one pod watch event. Never writes unless the pod matches a policy."""
        meta = pod.get("metadata") or {}
        key: PodKey = (str(meta.get("namespace", "")), str(meta.get("name", "")))
        if event_type == "DELETED":
            old = self.state.drop_pod(key)
            if old is not None and old.matched:
                with self.state.lock:
                    self._gone[old.workload.uid] = old.workload
                self.queue.add(("deleted", key[0], key[1], old.workload.uid))
            return
        wl = workload_from_pod(pod)
        matched = self.evaluate(wl)
        self.state.put_pod(key, PodEntry(wl, tuple(v.policy for v in matched)))
        if matched and not wl.deleting:
            self.queue.add(key)

    def reevaluate(self, namespace: str | None = None) -> int:
        """Evaluate cached pods again (after a policy or namespace change); queue the matches."""
        queued = 0
        for key, entry in self.state.pod_items():
            if namespace is not None and key[0] != namespace:
                continue
            matched = self.evaluate(entry.workload)
            names = tuple(v.policy for v in matched)
            if names != entry.matched:
                self.state.put_pod(key, PodEntry(entry.workload, names))
            if matched and not entry.workload.deleting:
                self.queue.add(key)
                queued += 1
        return queued

    def reevaluate_keys(self, keys: set[PodKey]) -> None:
        """Evaluate these cached pods again (their metric findings changed)."""
        for key in keys:
            entry = self.state.pod(key)
            if entry is None:
                continue
            matched = self.evaluate(entry.workload)
            self.state.put_pod(key, PodEntry(entry.workload, tuple(v.policy for v in matched)))
            if matched and not entry.workload.deleting:
                self.queue.add(key)

    def resync(self) -> None:
        """Queue every matched pod again, behind new events: verifies containment and repairs what was undone."""
        for key, entry in self.state.pod_items():
            if entry.matched and not entry.workload.deleting:
                self.queue.add_low(key)

    def quarantined_in(self, namespace: str) -> list[PodKey]:
        return [
            key
            for key, entry in self.state.pods_in(namespace)
            if entry.matched and entry.workload.labels.get(netpol.QUARANTINE_LABEL) == "true"
        ]

    # ------------------------------------------------------------------ the worker

    def _process(self, item: Hashable) -> None:
        if isinstance(item, tuple) and len(item) == 4 and item[0] == "deleted":
            self._pod_gone(str(item[1]), str(item[2]), str(item[3]))
            return
        if isinstance(item, tuple) and len(item) == 3 and item[0] == "release":
            try:
                incident = self.storage.get_incident(str(item[1]), str(item[2]))
            except NotFound:
                return
            spec, status = incident.get("spec") or {}, incident.get("status") or {}
            if spec.get("release") and status.get("state") != inc.RELEASED:
                self.release(incident)
            return
        if not (isinstance(item, tuple) and len(item) == 2):
            return
        namespace, name = str(item[0]), str(item[1])
        try:
            pod = self.storage.get_pod(namespace, name)
        except NotFound:
            return
        wl = workload_from_pod(pod)
        matched = self.evaluate(wl)
        if not matched or wl.deleting:
            return
        self.contain(wl, pod, matched)

    def contain(self, wl: Workload, pod: dict[str, Any], matched: list[Verdict]) -> None:
        enforce = [v for v in matched if v.mode == "Enforce"]
        primary = enforce[0] if enforce else matched[0]
        ref = self.owner_of(wl)
        name = inc.incident_name(ref)
        cached = self.state.incident(wl.namespace, name)
        if cached is not None and cached.release:
            return
        with self._incident_locks[hash((wl.namespace, name)) % len(self._incident_locks)]:
            incident = self._ensure_incident(wl.namespace, ref, primary)
            if (incident.get("spec") or {}).get("release"):
                self.state.put_incident(wl.namespace, name, incident)
                return
            results: list[ActionResult] = []
            pod_state = inc.POD_DETECTED
            # Was this pod contained before? Its record says so, or the incident annotation it got when it was.
            annotations = (pod.get("metadata") or {}).get("annotations") or {}
            previously = annotations.get(INCIDENT_ANNOTATION) == name or any(
                p.get("uid") == wl.uid and p.get("state") in (inc.POD_CONTAINED, inc.POD_PARTIAL)
                for p in (incident.get("status") or {}).get("pods") or []
            )
            if enforce:
                try:
                    results = self._run_actions(
                        wl, pod, name, primary, extra={"previously_contained": previously, "owner": ref}
                    )
                    pod_state = _pod_state(results)
                except NotFound:
                    results = [
                        ActionResult(
                            "quarantine",
                            f"Pod {wl.namespace}/{wl.name}",
                            FAILED,
                            "the pod was deleted during containment",
                        )
                    ]
                    pod_state = inc.POD_DELETED
            try:
                self._record(Subject.of_pod(wl), incident, matched, primary, results, pod_state)
            except NotFound:
                return

    def _run_actions(
        self,
        wl: Workload | None,
        pod: dict[str, Any],
        incident: str,
        verdict: Verdict,
        node: str = "",
        incident_namespace: str = "",
        extra: dict[str, Any] | None = None,
    ) -> list[ActionResult]:
        results = []
        for action_name in verdict.actions:
            action = ACTIONS.get(action_name)
            if action is None:
                results.append(ActionResult(action_name, incident, FAILED, "unknown action"))
                continue
            ctx = ActionContext(
                storage=self.storage,
                settings=self.settings,
                workload=wl,
                pod=pod,
                incident=incident,
                policy=verdict.policy,
                guard=self.guard,
                dry_run=self.settings.dry_run,
                node=node,
                incident_namespace=incident_namespace,
                extra=dict(extra or {}),
            )
            try:
                result = action.run(ctx)
            except NotFound:
                raise
            except KubeError as exc:
                result = ActionResult(action_name, action.target(ctx), FAILED, str(exc))
            observability.CONTAINMENTS.labels(verdict.policy, action_name, result.result).inc()
            if result.result == SUPPRESSED:
                observability.SUPPRESSED.labels(verdict.policy, action_name, result.guard or "guard").inc()
            results.append(result)
        return results

    # ------------------------------------------------------------------ incidents

    def owner_of(self, wl: Workload) -> inc.WorkloadRef:
        """The workload an incident is about: the top controller of the pod (Deployment, CronJob, ...) or the pod."""
        owner = wl.owner
        if owner is None or owner.kind not in ("ReplicaSet", "Job", "StatefulSet", "DaemonSet"):
            return inc.WorkloadRef("v1", "Pod", wl.name, wl.uid)
        if owner.kind in ("StatefulSet", "DaemonSet"):
            return inc.WorkloadRef(owner.api_version, owner.kind, owner.name, owner.uid)
        cached = self._owners.get(owner.uid)
        if cached is not None:
            return cached
        ref = inc.WorkloadRef(owner.api_version, owner.kind, owner.name, owner.uid)
        try:
            parent = self.storage.get_owner(wl.namespace, owner.kind, owner.name)
            for o in (parent.get("metadata") or {}).get("ownerReferences") or []:
                if o.get("controller") and o.get("kind") in ("Deployment", "CronJob"):
                    ref = inc.WorkloadRef(str(o.get("apiVersion")), str(o["kind"]), str(o["name"]), str(o.get("uid")))
        except NotFound:
            pass
        if len(self._owners) > 10000:
            self._owners.clear()
        self._owners[owner.uid] = ref
        return ref

    def _ensure_incident(self, namespace: str, ref: inc.WorkloadRef, verdict: Verdict) -> dict[str, Any]:
        name = inc.incident_name(ref)

        def attempt() -> dict[str, Any]:
            try:
                return self.storage.get_incident(namespace, name)
            except NotFound:
                pass
            body = inc.new_incident(namespace, ref, verdict.policy, verdict.mode)
            try:
                created = self.storage.create_incident(namespace, body)
            except AlreadyExists:
                return self.storage.get_incident(namespace, name)
            observability.DETECTIONS.labels(verdict.policy, verdict.mode).inc()
            return created

        incident = retrying(attempt, what=f"open MinerIncident {namespace}/{name}")
        spec = incident.get("spec") or {}
        if verdict.mode == "Enforce" and spec.get("mode") != "Enforce" and not spec.get("release"):
            incident = self.storage.patch_incident_spec(namespace, name, {"mode": "Enforce", "policy": verdict.policy})
        return incident

    def _record(
        self,
        subject: Subject,
        incident: dict[str, Any],
        matched: list[Verdict],
        primary: Verdict,
        results: list[ActionResult],
        pod_state: str,
    ) -> None:
        """Write the subject, evidence and actions into the incident status, telling each change in Events.

        The Events of a change are emitted before the status that records it is written, so a crash
        in between repeats them after a restart rather than losing them (at least once); the status
        write is the commit point.
        """
        name = incident["metadata"]["name"]
        now = now_iso()
        record = {"name": subject.name, "uid": subject.uid, "node": subject.node, "state": pod_state, "since": now}
        evidence = [e for v in matched for e in inc.evidence_records(v.evidence, v.policy)]
        told: set[str] = set()
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
            spec = live.get("spec") or {}
            status["state"] = inc.overall_state(pods, str(spec.get("mode", primary.mode)), bool(spec.get("release")))
            status["message"] = _message(status["state"], subject, results)
            fresh = [r for r in results if not inc.is_repeat(previous_actions, r.to_record(now))]
            entered = pod_state if before is None or before.get("state") != pod_state else ""
            self._tell(subject, primary, results, fresh, before is None, entered, name, told)
            if status != (live.get("status") or {}):
                status["lastUpdated"] = now
                live = self.storage.replace_incident_status(subject.namespace, inc.with_status(live, status))
            return live

        updated = retrying(attempt, what=f"record MinerIncident {subject.namespace}/{name}")
        self.state.put_incident(subject.namespace, name, updated)

    def _tell(
        self,
        subject: Subject,
        verdict: Verdict,
        results: list[ActionResult],
        fresh: list[ActionResult],
        newly_detected: bool,
        entered: str,
        incident: str,
        told: set[str],
    ) -> None:
        """Events for what changed: a new detection, a pod entering Contained, tampering, new action outcomes."""
        where = f"(policy {verdict.policy}, incident {subject.namespace}/{incident})"
        fields = {"object": subject.title, "policy": verdict.policy, "incident": f"{subject.namespace}/{incident}"}

        def emit(key: str, ref: dict[str, str], reason: str, note: str, warning: bool = True, action: str = "") -> None:
            if key in told:
                return
            told.add(key)
            try:
                self.storage.emit_event(ref, reason, note, warning=warning, action=action or reason)
            except KubeError as exc:
                log.warning("Could not emit Event %s for %s: %s", reason, subject.title, exc)

        if newly_detected:
            containers = sorted({e.container for e in verdict.evidence if e.container})
            signals = "; ".join(shorten(f"{e.signal}: {e.detail}", 160) for e in verdict.evidence[:4])
            note = (
                f"MinerPolicy {verdict.policy} ({verdict.mode}) matched {subject.title}"
                f"{' container ' + ','.join(containers) if containers else ''}: {signals}. "
                f"Incident {subject.namespace}/{incident}."
            )
            emit("detected", subject.ref, "MinerDetected", note, action="Detect")
            policy_ref = {"apiVersion": "minerguard.io/v1alpha1", "kind": "MinerPolicy", "name": verdict.policy}
            emit("detected-policy", policy_ref, "MinerDetected", note, action="Detect")
            log.warning("Detected miner in %s by policy %s: %s", subject.title, verdict.policy, signals, extra=fields)
        for r in results:
            if r.action == "quarantine" and r.result == SUCCEEDED and entered in (inc.POD_CONTAINED, inc.POD_PARTIAL):
                emit("quarantined", subject.ref, "PodQuarantined", r.message, action=r.action)
                log.warning("%s %s", r.message, where, extra=fields)
            if r.tampered:
                observability.TAMPERING.labels(r.action).inc()
                note = f"Containment of {subject.title} was undone and is restored: {r.tampered} {where}"
                emit(f"tampered-{r.action}", subject.ref, "QuarantineRestored", note, action=r.action)
                log.warning("%s", note, extra=fields)
        for r in fresh:
            node_action = r.action in ("cordon", "taint")
            if r.result == SUCCEEDED and r.changed and node_action and subject.kind == "Pod":
                reason = "NodeCordoned" if r.action == "cordon" else "NodeTainted"
                emit(f"ok-{r.action}", subject.ref, reason, r.message, action=r.action)
                log.warning("%s", r.message, extra=fields)
            elif r.result == SUPPRESSED:
                note = f"{r.message} {where}"
                if node_action:
                    node = {"apiVersion": "v1", "kind": "Node", "name": r.target.split(" ", 1)[-1]}
                    emit(f"held-node-{r.action}", node, "ContainmentSuppressed", note, action=r.action)
                if subject.kind == "Pod":
                    emit(f"held-{r.action}", subject.ref, "ContainmentSuppressed", note, action=r.action)
                log.warning("Held back: %s", note, extra=fields)
            elif r.result == FAILED:
                note = f"{r.action} on {r.target} failed: {r.message} {where}"
                emit(f"failed-{r.action}", subject.ref, "ContainmentFailed", note, action=r.action)
                log.error("%s", note, extra=fields)
            elif r.result == DRY_RUN:
                emit(f"dry-{r.action}", subject.ref, "DryRun", f"{r.action}: {r.message} {where}", action=r.action)

    # ------------------------------------------------------------------ nodes (CPU no pod accounts for)

    def contain_node(self, policy: Policy, node: str, evidence: list[Evidence]) -> None:
        """A node-level finding (node CPU saturation, unaccounted CPU): open a Node incident, take node actions."""
        entry = self.state.node(node)
        verdict = evaluate_node(policy, node, entry.labels if entry else None, evidence)
        if not verdict.matched:
            return
        ref = inc.WorkloadRef("v1", "Node", node, entry.uid if entry else "")
        name = inc.incident_name(ref)
        namespace = self.settings.namespace
        cached = self.state.incident(namespace, name)
        if cached is not None and cached.release:
            return
        subject = Subject("Node", node, ref.uid, namespace, node, {"apiVersion": "v1", "kind": "Node", "name": node})
        with self._incident_locks[hash((namespace, name)) % len(self._incident_locks)]:
            incident = self._ensure_incident(namespace, ref, verdict)
            if (incident.get("spec") or {}).get("release"):
                self.state.put_incident(namespace, name, incident)
                return
            results: list[ActionResult] = []
            state = inc.POD_DETECTED
            if verdict.mode == "Enforce":
                results = self._run_actions(None, {}, name, verdict, node=node, incident_namespace=namespace)
                state = _pod_state(results)
            self._record(subject, incident, [verdict], verdict, results, state)

    def _pod_gone(self, namespace: str, name: str, uid: str) -> None:
        """A matched pod was deleted: mark it Deleted in its incident, end the incident when none is left."""
        with self.state.lock:
            wl = self._gone.pop(uid, None)
        if wl is None:
            return
        incident_name = inc.incident_name(self.owner_of(wl))

        def attempt() -> dict[str, Any]:
            live = self.storage.get_incident(namespace, incident_name)
            status = dict(live.get("status") or {})
            pods = [dict(p) for p in status.get("pods") or []]
            for p in pods:
                if p.get("uid") == uid and p.get("state") != inc.POD_DELETED:
                    p["state"], p["since"] = inc.POD_DELETED, now_iso()
            status["pods"] = pods
            spec = live.get("spec") or {}
            status["state"] = inc.overall_state(pods, str(spec.get("mode")), bool(spec.get("release")))
            if status["state"] == inc.ENDED:
                status["message"] = "Every pod of this workload is gone"
            if status != (live.get("status") or {}):
                status["lastUpdated"] = now_iso()
                live = self.storage.replace_incident_status(namespace, inc.with_status(live, status))
            return live

        with self._incident_locks[hash((namespace, incident_name)) % len(self._incident_locks)]:
            try:
                updated = retrying(attempt, what=f"record deletion in MinerIncident {namespace}/{incident_name}")
            except NotFound:
                return
        self.state.put_incident(namespace, incident_name, updated)
        log.info(
            "Pod %s/%s was deleted; recorded in incident %s/%s",
            namespace,
            name,
            namespace,
            incident_name,
            extra={"object": f"Pod {namespace}/{name}", "incident": f"{namespace}/{incident_name}"},
        )

    # ------------------------------------------------------------------ release

    def release(self, incident: dict[str, Any]) -> None:
        """Lift every containment this incident applied; keep the record, marked Released."""
        meta = incident["metadata"]
        namespace, name = meta["namespace"], meta["name"]
        results: list[ActionResult] = []
        status = dict(incident.get("status") or {})
        pods = [dict(p) for p in status.get("pods") or []]
        policy = str((incident.get("spec") or {}).get("policy", ""))
        node_incident = str(((incident.get("spec") or {}).get("workload") or {}).get("kind")) == "Node"
        for p in pods:
            if p.get("state") in (inc.POD_DELETED, inc.POD_RELEASED):
                continue
            if node_incident:
                ctx = ActionContext(
                    self.storage,
                    self.settings,
                    None,
                    {},
                    name,
                    policy,
                    guard=self.guard,
                    node=str(p.get("name")),
                    incident_namespace=namespace,
                )
                results += [a.revert(ctx) for a in ACTIONS.values() if a.name != "quarantine" and a.applied_to(ctx)]
                p["state"], p["since"] = inc.POD_RELEASED, now_iso()
                continue
            try:
                pod = self.storage.get_pod(namespace, str(p.get("name")))
            except NotFound:
                p["state"], p["since"] = inc.POD_DELETED, now_iso()
                continue
            wl = workload_from_pod(pod)
            ctx = ActionContext(self.storage, self.settings, wl, pod, name, policy, guard=self.guard)
            results += [a.revert(ctx) for a in ACTIONS.values() if a.name not in OWNER_ACTIONS and a.applied_to(ctx)]
            p["state"], p["since"] = inc.POD_RELEASED, now_iso()
            self.storage.emit_event(
                pod_ref(wl),
                "Released",
                f"Released Pod {namespace}/{wl.name} from containment (incident {name})",
                warning=False,
                action="Release",
            )
        workload = (incident.get("spec") or {}).get("workload") or {}
        owner = inc.WorkloadRef(
            str(workload.get("apiVersion", "")),
            str(workload.get("kind", "")),
            str(workload.get("name", "")),
            str(workload.get("uid", "")),
        )
        owner_ctx = ActionContext(
            self.storage,
            self.settings,
            None,
            {},
            name,
            policy,
            guard=self.guard,
            incident_namespace=namespace,
            extra={"owner": owner},
        )
        results += [ACTIONS[a].revert(owner_ctx) for a in OWNER_ACTIONS if ACTIONS[a].applied_to(owner_ctx)]
        now = now_iso()

        def attempt() -> dict[str, Any]:
            live = self.storage.get_incident(namespace, name)
            st = dict(live.get("status") or {})
            st["pods"] = pods
            st["podCount"] = len(pods)
            st["actions"] = inc.append_actions(st.get("actions") or [], [r.to_record(now) for r in results])
            st["state"] = inc.RELEASED
            st["message"] = (
                f"Released{' by ' + str(live['spec'].get('releasedBy')) if live['spec'].get('releasedBy') else ''}"
            )
            st["lastUpdated"] = now
            return self.storage.replace_incident_status(namespace, inc.with_status(live, st))

        updated = retrying(attempt, what=f"record release of MinerIncident {namespace}/{name}")
        self.state.put_incident(namespace, name, updated)
        log.info(
            "Released incident %s/%s", namespace, name, extra={"incident": f"{namespace}/{name}", "policy": policy}
        )

    def observe_incident(self, event_type: str | None, body: dict[str, Any]) -> None:
        meta = body.get("metadata") or {}
        namespace, name = str(meta.get("namespace")), str(meta.get("name"))
        if event_type == "DELETED":
            with self.state.lock:
                self.state.incidents.pop((namespace, name), None)
            return
        previous = self.state.incident(namespace, name)
        self.state.put_incident(namespace, name, body)
        spec, status = body.get("spec") or {}, body.get("status") or {}
        if spec.get("release") and status.get("state") != inc.RELEASED:
            self.queue.add(("release", namespace, name))
        elif not spec.get("release") and status.get("state") == inc.RELEASED and previous is not None:
            # Re-armed by a person: contain the workload's pods again.
            self.reevaluate(namespace)


def _pod_state(results: list[ActionResult]) -> str:
    """A pod's state from its actions: quarantine decides Contained; a held-back node action makes it partial."""
    if not results:
        return inc.POD_DETECTED
    if any(r.result == DRY_RUN for r in results):
        return inc.POD_DETECTED
    quarantine = next((r for r in results if r.action == "quarantine"), None)
    others_ok = all(r.result == SUCCEEDED for r in results if r is not quarantine)
    if quarantine is not None:
        if quarantine.result == SUCCEEDED:
            return inc.POD_CONTAINED if others_ok else inc.POD_PARTIAL
        if quarantine.message.startswith("NotContainable"):
            return inc.POD_NOT_CONTAINABLE
        return inc.POD_FAILED
    if others_ok:
        return inc.POD_CONTAINED
    if any(r.result == SUCCEEDED for r in results):
        return inc.POD_PARTIAL
    return inc.POD_FAILED if any(r.result == FAILED for r in results) else inc.POD_PARTIAL


def _message(state: str, subject: Subject, results: list[ActionResult]) -> str:
    failed = [r for r in results if r.result in (FAILED, SUPPRESSED)]
    if failed:
        return shorten(f"{state}: {failed[0].action} {failed[0].result}: {failed[0].message}", 300)
    return f"{state}: last seen {subject.title}"
