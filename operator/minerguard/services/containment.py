"""The containment worker: typed work items in, the policy's actions run, the outcome recorded.

For a :class:`~minerguard.services.work.ContainPod` item it reads the pod, evaluates it again
(the queue may be behind), opens or finds the workload's incident, runs the matched policy's
actions from the registry (:mod:`minerguard.actions`), and records everything through the
:class:`~minerguard.services.recorder.Recorder`. Every step is idempotent, so a repeated
event, a resync or a restart only confirms what is done and repairs what was undone.
"""

from __future__ import annotations

import datetime
import logging
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from minerguard import observability
from minerguard.actions import ACTIONS
from minerguard.actions.base import ActionContext, ActionResult, Outcome
from minerguard.actions.enforcement import Enforcement
from minerguard.actions.guard import NodeGuard
from minerguard.actions.quarantine import INCIDENT_ANNOTATION, POLICY_ANNOTATION
from minerguard.config import Settings
from minerguard.domain import binding
from minerguard.domain import incidents as inc
from minerguard.domain.detection import Evidence, Verdict, evaluate_node
from minerguard.domain.policy import Policy
from minerguard.domain.workload import OwnerRef, Workload
from minerguard.errors import KubeError, NotFound
from minerguard.services.detector import Evaluator, held
from minerguard.services.events import Subject
from minerguard.services.foothold import Footholds
from minerguard.services.recorder import Recorder
from minerguard.services.release import Releaser
from minerguard.services.state import ClusterState, WatchedNetworkPolicies
from minerguard.services.work import ContainPod, PodGone, ReleaseIncident, WorkItem
from minerguard.storage.kubernetes import KubeStorage, now_iso
from minerguard.workqueue import WorkQueue

log = logging.getLogger(__name__)

TOP_OWNER_KINDS = ("Deployment", "CronJob")
"""Controllers whose ReplicaSets/Jobs an incident is raised for, one level up."""


@dataclass(frozen=True)
class Detection:
    """One matched pod on its way into an incident: what matched, the workload, the incident name tried."""

    workload: Workload
    pod: dict[str, Any]
    matched: list[Verdict]
    primary: Verdict
    ref: inc.WorkloadRef
    name: str
    decide: Callable[[dict[str, Any] | None], binding.Decision]


class Containment:
    """Runs the work queue: containment of pods and nodes, pods gone, releases."""

    def __init__(
        self,
        storage: KubeStorage,
        settings: Settings,
        state: ClusterState,
        evaluator: Evaluator,
        recorder: Recorder,
        releaser: Releaser,
        guard: NodeGuard | None = None,
        workers: int = 4,
        footholds: Footholds | None = None,
    ) -> None:
        self.storage = storage
        self.settings = settings
        self.state = state
        self.evaluator = evaluator
        self.recorder = recorder
        self.releaser = releaser
        self.guard = guard
        self.enforcement: Enforcement | None = None  # the backend decided at start (App.build); None: networkPolicy
        self.footholds = footholds
        self.queue = WorkQueue(self._process, workers=workers, name="contain")
        self._owners: dict[str, inc.WorkloadRef] = {}
        self._ignored_told: set[tuple[str, str, str]] = set()

    def start(self) -> None:
        self.queue.start()

    def stop(self) -> None:
        self.queue.stop()

    def _process(self, item: Any) -> None:
        work: WorkItem = item
        match work:
            case ContainPod(namespace, name):
                self._contain_pod(namespace, name)
            case PodGone(namespace, name, uid, owner, incident):
                if not incident:
                    incident = inc.incident_name(self.owner_of(namespace, name, uid, owner))
                self.recorder.pod_gone(namespace, incident, name, uid)
            case ReleaseIncident(namespace, name):
                self.releaser.release_if_asked(namespace, name)

    def _contain_pod(self, namespace: str, name: str) -> None:
        """Contain (or verify) a matched pod as the watch last delivered it; read it only when not cached."""
        entry = self.state.pod((namespace, name))
        if entry is not None and entry.body is not None:
            wl, pod = entry.workload, entry.body
        else:
            try:
                pod = self.storage.get_pod(namespace, name)
            except NotFound:
                return
            wl = self.evaluator.workload(pod)
        matched = self.evaluator.matches(wl)
        if matched and not wl.deleting:
            self.contain(wl, pod, matched)
        elif held(wl):
            self.upkeep(wl, pod, matched)

    def upkeep(self, wl: Workload, pod: dict[str, Any], matched: list[Verdict]) -> None:
        """Keep a pod minerguard quarantined quarantined, matched or not, terminating or not, until a release.

        The quarantine follows the pod's label and its open incident, never a fresh verdict: a pod that
        stops matching (labels an excludedPodSelector skips, a policy switched to Audit, edited or deleted)
        or that lingers Terminating would otherwise be re-opened by the next allow policy. A contained pod
        that no longer matches is reported (Event and incident message), never released.
        """
        annotations = (pod.get("metadata") or {}).get("annotations") or {}
        name = str(annotations.get(INCIDENT_ANNOTATION) or "")
        if not name:
            return  # the label without minerguard's record: not a quarantine minerguard made
        cached = self.state.incident(wl.namespace, name)
        if cached is not None and cached.release:
            return  # released: the release takes the label off
        policy = str(annotations.get(POLICY_ANNOTATION) or "")
        ctx = self._context(wl, pod, name, policy)
        ctx.previously_contained = True
        try:
            result = ACTIONS["quarantine"].run(ctx)
        except NotFound:
            return
        except KubeError as exc:
            log.warning("Upkeep of the quarantine of Pod %s/%s failed: %s", wl.namespace, wl.name, exc)
            return
        if ctx.pod is not pod:  # written: its watch echo is nothing new
            self.state.wrote_pod((wl.namespace, wl.name), ctx.pod, self.evaluator.workload(ctx.pod))
        self.recorder.kept(Subject.of_pod(wl), name, policy, result, unmatched=not matched and not wl.deleting)

    def contain(self, wl: Workload, pod: dict[str, Any], matched: list[Verdict]) -> None:
        """Find the incident this detection belongs in, run the actions of the first Enforce match, record it all.

        A released incident exempts only what its release covers (the workload's UID, pod template and
        policies, :mod:`minerguard.domain.binding`); anything else is recorded in an incident of its own.
        """
        enforce = [v for v in matched if v.mode == "Enforce"]
        primary = enforce[0] if enforce else matched[0]
        ref = self.owner_of(wl.namespace, wl.name, wl.uid, wl.owner)
        template = binding.template_hash(pod)
        policies = [v.policy for v in enforce or matched]

        def decide(body: dict[str, Any] | None) -> binding.Decision:
            return binding.decide(body, ref.uid, template, policies)

        for name in binding.candidate_names(ref, template, primary.policy):
            cached = self.state.incident(wl.namespace, name)
            decision = decide(cached.body if cached else None)
            if decision == "use":
                with self.recorder.lock(wl.namespace, name):
                    cached = self.state.incident(wl.namespace, name)
                    found = cached.body if cached else None
                    decision = self._contain_in(Detection(wl, pod, matched, primary, ref, name, decide), found)
            if decision in ("use", "exempt"):
                return
            self._ignored(wl.namespace, name, ref.uid)
        log.error("No incident name left for Pod %s/%s: every candidate is taken", wl.namespace, wl.name)

    def _contain_in(self, d: Detection, incident: dict[str, Any] | None) -> binding.Decision:
        """Contain the pod under incident ``d.name`` and record it there; what the incident found says.

        Cut first: when the incident does not exist yet (the incident cache is complete once its first
        listing is in) the pod's actions run before the incident is created, so the cut waits for no write
        of the record's. A restart between the two finds the pod still matched and creates the incident then
        (the actions, idempotent, write nothing again). An incident found meanwhile that is not this
        detection's ("exempt": released for it; "next": someone else's) is answered by freeing the pod of
        the cut just made, or by moving on to the next name. Otherwise, and before an action that deletes
        the pod, the incident is opened first.
        """
        wl = d.workload
        enforce = d.primary.mode == "Enforce"
        cut_first = incident is None and self.state.incidents_listed and "evict" not in self._actions_for(d.primary, wl)
        if not cut_first or not enforce:
            incident = self.recorder.ensure(wl.namespace, d.ref, d.primary, d.name, lambda b: d.decide(b) == "use")
            decision = d.decide(incident)
            if decision != "use":
                return decision
        results: list[ActionResult] = []
        pod_state = inc.POD_DETECTED
        if enforce:
            results, pod_state, incident = self._act(d, incident)
        if incident is None:
            incident = self.recorder.ensure(wl.namespace, d.ref, d.primary, d.name, lambda b: d.decide(b) == "use")
            decision = d.decide(incident)
            if decision != "use":
                entry = self.state.pod((wl.namespace, wl.name))
                if decision == "exempt" and entry is not None and entry.body is not None:
                    self.releaser.free_pod(entry.body, d.name, d.primary.policy)  # released meanwhile
                return decision
        foothold = self._foothold(d.pod, incident)
        try:
            self.recorder.record(Subject.of_pod(wl), incident, d.matched, d.primary, results, pod_state, foothold)
        except NotFound:
            pass
        return "use"

    def _act(
        self, d: Detection, incident: dict[str, Any] | None
    ) -> tuple[list[ActionResult], str, dict[str, Any] | None]:
        """Run the primary verdict's actions for the pod: results, the pod's state, the incident as now known."""
        wl, pod = d.workload, d.pod
        ctx = self._context(wl, pod, d.name, d.primary.policy)
        ctx.owner = d.ref
        ctx.previously_contained = _previously_contained(pod, incident or {}, d.name, wl.uid)
        if incident is not None and "evict" in self._actions_for(d.primary, wl) and not wl.deleting:
            if not ctx.dry_run:
                incident = self._evidence_first(wl, incident, d.matched, d.primary)
                ctx.evictions_last_hour = evictions_since(self.state.incident_bodies(), time.time() - 3600)
        try:
            results = self._run_actions(d.primary, ctx)
            pod_state = pod_state_of(results)
            if ctx.pod is not pod:  # written: its watch echo is nothing new
                self.state.wrote_pod((wl.namespace, wl.name), ctx.pod, self.evaluator.workload(ctx.pod))
        except NotFound:
            gone = ActionResult(
                "quarantine", f"Pod {wl.namespace}/{wl.name}", Outcome.FAILED, "the pod was deleted during containment"
            )
            results, pod_state = [gone], inc.POD_DELETED
        return results, pod_state, incident

    def list_incidents(self) -> bool:
        """Fill the incident cache from one listing: from then on an incident not in it does not exist, and a
        containment cuts first (the watch keeps the cache current). False when the API could not be read."""
        try:
            bodies = self.storage.list_incidents()
        except KubeError as exc:
            log.warning("Could not list MinerIncidents (each containment opens its incident first meanwhile): %s", exc)
            return False
        for body in bodies:
            meta = body.get("metadata") or {}
            self.state.put_incident(str(meta.get("namespace")), str(meta.get("name")), body)
        self.state.incidents_listed = True
        return True

    def _ignored(self, namespace: str, name: str, workload_uid: str) -> None:
        """Tell (once) about an incident minerguard did not make, found where it would record a detection."""
        cached = self.state.incident(namespace, name)
        if cached is None or binding.operator_made(cached.body, workload_uid):
            return  # released for something else: a new detection, nothing to report
        uid = str((cached.body.get("metadata") or {}).get("uid") or "")
        if (namespace, name, uid) in self._ignored_told:
            return
        self._ignored_told.add((namespace, name, uid))
        self.recorder.events.incident_ignored(namespace, name, uid, "it does not exempt or release this workload")

    def _foothold(self, pod: dict[str, Any], incident: dict[str, Any]) -> dict[str, Any] | None:
        """The incident's foothold evidence, gathered once (after the actions: never before the cut)."""
        if self.footholds is None or (incident.get("status") or {}).get("foothold") or not pod:
            return None
        return self.footholds.gather(pod, (incident.get("status") or {}).get("firstSeen") or now_iso())

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
        with self.recorder.lock(namespace, name):
            incident = self.recorder.ensure(namespace, ref, verdict)
            if (incident.get("spec") or {}).get("release"):
                self.state.put_incident(namespace, name, incident)
                return
            results: list[ActionResult] = []
            state = inc.POD_DETECTED
            if verdict.mode == "Enforce":
                ctx = self._context(None, {}, name, verdict.policy)
                ctx.node, ctx.incident_namespace = node, namespace
                results = self._run_actions(verdict, ctx)
                state = pod_state_of(results)
            subject = Subject.of_node(node, ref.uid, namespace)
            self.recorder.record(subject, incident, [verdict], verdict, results, state)

    def _context(self, wl: Workload | None, pod: dict[str, Any], incident: str, policy: str) -> ActionContext:
        return ActionContext(
            storage=self.storage,
            settings=self.settings,
            workload=wl,
            pod=pod,
            incident=incident,
            policy=policy,
            guard=self.guard,
            dry_run=self.settings.dry_run,
            network_policies=WatchedNetworkPolicies(self.state),
            enforcement=self.enforcement,
        )

    def _actions_for(self, verdict: Verdict, wl: Workload | None) -> tuple[str, ...]:
        """The verdict's actions; for a hostNetwork pod, which quarantine cannot cut off, evict instead of quarantine
        (``hostNetworkFallback``, by default)."""
        names = verdict.actions
        if wl is not None and wl.host_network and self.settings.host_network_fallback == "evict":
            names = tuple(dict.fromkeys("evict" if n == "quarantine" else n for n in names))
        return names

    def _evidence_first(
        self, wl: Workload, incident: dict[str, Any], matched: list[Verdict], primary: Verdict
    ) -> dict[str, Any]:
        """Record the detection (evidence, Events) before a pod is deleted, so a crash cannot lose it with the pod."""
        namespace, name = wl.namespace, incident["metadata"]["name"]
        self.recorder.record(Subject.of_pod(wl), incident, matched, primary, [], inc.POD_DETECTED)
        cached = self.state.incident(namespace, name)
        return cached.body if cached is not None else incident

    def _run_actions(self, verdict: Verdict, ctx: ActionContext) -> list[ActionResult]:
        """The verdict's actions from the registry, in order; a pod deleted meanwhile (NotFound) ends the pass."""
        results = []
        for action_name in self._actions_for(verdict, ctx.workload):
            action = ACTIONS.get(action_name)
            if action is None:
                results.append(ActionResult(action_name, ctx.incident, Outcome.FAILED, "unknown action"))
                continue
            try:
                result = action.run(ctx)
            except NotFound:
                raise
            except KubeError as exc:
                result = ActionResult(action_name, action.target(ctx), Outcome.FAILED, str(exc))
            observability.CONTAINMENTS.labels(verdict.policy, action_name, result.result).inc()
            if result.result == Outcome.SUPPRESSED:
                observability.SUPPRESSED.labels(verdict.policy, action_name, result.guard or "guard").inc()
            results.append(result)
        return results

    def owner_of(self, namespace: str, pod: str, uid: str, owner: OwnerRef | None) -> inc.WorkloadRef:
        """The workload an incident is about: the top controller of the pod (Deployment, CronJob, ...) or the pod."""
        if owner is None or owner.kind not in ("ReplicaSet", "Job", "StatefulSet", "DaemonSet"):
            return inc.WorkloadRef("v1", "Pod", pod, uid)
        if owner.kind in ("StatefulSet", "DaemonSet"):
            return inc.WorkloadRef(owner.api_version, owner.kind, owner.name, owner.uid)
        cached = self._owners.get(owner.uid)
        if cached is not None:
            return cached
        ref = inc.WorkloadRef(owner.api_version, owner.kind, owner.name, owner.uid)
        try:
            parent = self.storage.get_owner(namespace, owner.kind, owner.name)
            for o in (parent.get("metadata") or {}).get("ownerReferences") or []:
                if o.get("controller") and o.get("kind") in TOP_OWNER_KINDS:
                    ref = inc.WorkloadRef(str(o.get("apiVersion")), str(o["kind"]), str(o["name"]), str(o.get("uid")))
        except NotFound:
            pass
        if len(self._owners) > 10000:
            self._owners.clear()
        self._owners[owner.uid] = ref
        return ref


def _previously_contained(pod: dict[str, Any], incident: dict[str, Any], name: str, uid: str) -> bool:
    """Was this pod contained before? Its record says so, or the incident annotation it got when it was."""
    annotations = (pod.get("metadata") or {}).get("annotations") or {}
    return annotations.get(INCIDENT_ANNOTATION) == name or any(
        p.get("uid") == uid and p.get("state") in (inc.POD_CONTAINED, inc.POD_PARTIAL)
        for p in (incident.get("status") or {}).get("pods") or []
    )


def evictions_since(incidents: Iterable[dict[str, Any]], since: float) -> int:
    """Pods evicted since ``since`` (epoch seconds), as the incidents' action records say."""
    count = 0
    for body in incidents:
        for a in (body.get("status") or {}).get("actions") or []:
            if a.get("action") != "evict" or a.get("result") != Outcome.SUCCEEDED:
                continue
            try:
                when = datetime.datetime.fromisoformat(str(a.get("time")).replace("Z", "+00:00")).timestamp()
            except ValueError:
                continue
            count += when >= since
    return count


def pod_state_of(results: list[ActionResult]) -> str:
    """A pod's state from its actions: quarantine decides Contained; a held-back node action makes it partial;
    an evicted pod is Deleted (its evidence stays in the incident)."""
    if not results:
        return inc.POD_DETECTED
    if any(r.result == Outcome.DRY_RUN for r in results):
        return inc.POD_DETECTED
    if any(r.action == "evict" and r.result == Outcome.SUCCEEDED for r in results):
        return inc.POD_DELETED
    quarantine = next((r for r in results if r.action == "quarantine"), None)
    others_ok = all(r.result == Outcome.SUCCEEDED for r in results if r is not quarantine)
    if quarantine is not None:
        if quarantine.result == Outcome.SUCCEEDED:
            return inc.POD_CONTAINED if others_ok else inc.POD_PARTIAL
        return inc.POD_NOT_CONTAINABLE if quarantine.not_containable else inc.POD_FAILED
    if others_ok:
        return inc.POD_CONTAINED
    if any(r.result == Outcome.SUCCEEDED for r in results):
        return inc.POD_PARTIAL
    return inc.POD_FAILED if any(r.result == Outcome.FAILED for r in results) else inc.POD_PARTIAL
