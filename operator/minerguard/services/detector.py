"""The watch side: evaluate each pod event in memory and queue only what matched.

Watch handlers call :meth:`Detector.observe_pod` for every pod event. It parses the pod, takes
its detection-input digest (:mod:`minerguard.domain.inputs`) and, only when that changed,
evaluates it against every ready policy (the pure :mod:`minerguard.domain.detection`): an
annotation or status change costs a parse and a hash, not an evaluation. A large pod is evaluated
off the event loop, fairly between namespaces (:mod:`minerguard.services.backlog`). A pod that matches
nothing costs no API call at all and is never written to; a large one is cached compact. A matched pod goes on
the containment queue as a :class:`~minerguard.services.work.ContainPod`. Policy, namespace,
NetworkPolicy and incident events decide which cached pods to evaluate or verify again.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import replace
from typing import Any

from minerguard import observability
from minerguard.actions.quarantine import INCIDENT_ANNOTATION
from minerguard.domain import incidents as inc
from minerguard.domain import inputs, netpol
from minerguard.domain.detection import Evidence, Verdict, evaluate, in_scope, prepare
from minerguard.domain.policy import Policy
from minerguard.domain.workload import ConfigMapLookup, Workload, parse_quantity, workload_from_pod
from minerguard.services.backlog import DEFER_ABOVE, Backlog
from minerguard.services.images import ImageConfigs
from minerguard.services.policies import PolicyRegistry
from minerguard.services.state import (
    COMPACT_ABOVE,
    ClusterState,
    NodeEntry,
    PodEntry,
    PodKey,
    compact,
    resource_version,
    seen,
)
from minerguard.services.work import ContainPod, PodGone, ReleaseIncident, WorkItem
from minerguard.workqueue import WorkQueue

MetricFindings = Callable[[Policy, Workload], Sequence[Evidence]]
ReadPod = Callable[[str, str], dict[str, Any] | None]
"""Reads a pod from the API (None when it is gone): how a compact cache entry is evaluated again."""


def _no_metrics(_: Policy, __: Workload) -> Sequence[Evidence]:
    return ()


class Evaluator:
    """Every ready policy's verdict on a workload, with its namespace's labels and its CPU findings."""

    def __init__(self, state: ClusterState, policies: PolicyRegistry, metric_findings: MetricFindings = _no_metrics):
        self.state = state
        self.policies = policies
        self.metric_findings = metric_findings
        self.config_maps: ConfigMapLookup | None = None
        """Where the ConfigMaps pods reference are read (the ConfigMap cache), if anywhere."""
        self.images: ImageConfigs | None = None
        """Where image configs are read (registry reading enabled), if anywhere."""

    def workload(self, pod: dict[str, Any]) -> Workload:
        """The detection view of a pod, with the ConfigMaps it references."""
        return workload_from_pod(pod, self.config_maps)

    def digest(self, wl: Workload) -> bytes:
        """The detection-input digest of the workload under its namespace's labels and the ready policies."""
        return inputs.digest(wl, self.state.namespace_labels(wl.namespace), self.policies.version())

    def matches(self, wl: Workload) -> list[Verdict]:
        """The verdicts that matched, in policy order."""
        labels = self.state.namespace_labels(wl.namespace)
        started = time.perf_counter()
        policies = self.policies.ready()
        if self.images is not None and any(p.signals.image_config and in_scope(p, wl, labels) for p in policies):
            wl = self.images.attach(wl)  # the configs known now; the others are read in the background
        prepared = prepare(wl)
        verdicts = [evaluate(p, wl, labels, self.metric_findings(p, wl), prepared) for p in policies]
        observability.EVALUATION_SECONDS.observe(time.perf_counter() - started)
        return [v for v in verdicts if v.matched]


def held(wl: Workload) -> bool:
    """Whether the pod carries the quarantine label: it is kept up until a release, whatever the verdict now."""
    return wl.labels.get(netpol.QUARANTINE_LABEL) == "true"


class Detector:
    """Turns watch events into containment work."""

    def __init__(
        self,
        evaluator: Evaluator,
        state: ClusterState,
        queue: WorkQueue,
        read_pod: ReadPod | None = None,
        backlog: Backlog | None = None,
    ):
        self.evaluator = evaluator
        self.state = state
        self.queue = queue
        self.read_pod = read_pod
        self.backlog = backlog
        """Where large pods are evaluated (None: every pod inline)."""

    def _add(self, item: WorkItem, low: bool = False) -> None:
        if low:
            self.queue.add_low(item)
        else:
            self.queue.add(item)

    def observe_pod(
        self, event_type: str | None, pod: dict[str, Any], again: bool = False, inline: bool = False
    ) -> None:
        """Take in one pod watch event (``again``: a pod read anew because a ConfigMap it uses
        changed, to be evaluated even if the pod itself did not; ``inline``: evaluate it here even
        if it is large, the backlog's own call). Never writes unless the pod matches a policy."""
        meta = pod.get("metadata") or {}
        key: PodKey = (str(meta.get("namespace", "")), str(meta.get("name", "")))
        if event_type == "DELETED":
            if self.backlog is not None:
                self.backlog.deleted(key)
            old = self.state.drop_pod(key)
            if old is not None and old.matched:
                wl = old.workload
                annotations = ((old.body or {}).get("metadata") or {}).get("annotations") or {}
                incident = str(annotations.get(INCIDENT_ANNOTATION) or "")
                self._add(PodGone(key[0], key[1], wl.uid, wl.owner, incident))
            return
        rv = resource_version(pod)
        known = self.state.pod(key)
        if known is not None and seen(rv, known.resource_version) and not again:
            return  # nothing new: the echo of the operator's own write, a repeated or an older event
        if not inline and self._deferred(key, known, pod, inputs.raw_text_size(pod), again):
            return  # large: even its parse and digest are the backlog's
        wl = self.evaluator.workload(pod)
        digest = self.evaluator.digest(wl)
        if known is not None and not again and known.digest == digest:
            # What detection reads is unchanged (an annotation, a status condition...): so is the verdict.
            observability.EVALUATIONS_SKIPPED.inc()
            self.state.put_pod(key, replace(known, body=pod if known.body is not None else None, resource_version=rv))
            if (known.matched and not wl.deleting) or held(wl):
                self._add(ContainPod(*key))
            return
        if not inline and self._deferred(key, known, pod, inputs.text_size(wl), again):
            return  # large once its ConfigMaps are read
        self._evaluated(key, wl, pod, rv, digest)

    def _deferred(self, key: PodKey, known: PodEntry | None, pod: dict[str, Any], size: int, again: bool) -> bool:
        """Hand a large pod (``size``: its container text), or one whose earlier event still waits, to the backlog;
        whether it was. A pod matched or quarantined before stays on the watch: its upkeep (a label taken off,
        say) must not wait behind its namespace's other large pods."""
        backlog = self.backlog
        if backlog is None or not backlog.enabled:
            return False
        if known is not None and (known.matched or held(known.workload)):
            return False
        if ((pod.get("metadata") or {}).get("labels") or {}).get(netpol.QUARANTINE_LABEL) == "true":
            return False
        if size <= DEFER_ABOVE and not backlog.holds(key):
            return False
        backlog.defer(key, pod, size, again)
        return True

    def evaluate_deferred(self, pod: dict[str, Any], again: bool) -> None:
        """The backlog's turn for a large pod: evaluate it here (a worker thread), on its latest body."""
        self.observe_pod("MODIFIED", pod, again=again, inline=True)

    def _evaluated(self, key: PodKey, wl: Workload, pod: dict[str, Any], rv: str, digest: bytes) -> None:
        """Evaluate the pod, cache what it needs (its body only when matched or held; compact when large and
        unmatched), and queue it when matched or held."""
        matched = self.evaluator.matches(wl)
        names = tuple(v.policy for v in matched)
        if matched or held(wl):
            self.state.put_pod(key, PodEntry(wl, names, pod, rv, digest))
            if (matched and not wl.deleting) or held(wl):
                self._add(ContainPod(*key))
            return
        small = inputs.text_size(wl) <= COMPACT_ABOVE
        self.state.put_pod(key, PodEntry(wl if small else compact(wl), names, None, rv, digest, compact=not small))

    def _read_again(self, key: PodKey) -> None:
        """Evaluate a compact entry again: its text is not cached, so the pod is read from the API."""
        if self.read_pod is None:
            return
        pod = self.read_pod(*key)
        if pod is None:
            return  # gone: its DELETED event drops it
        self.observe_pod("MODIFIED", pod, again=True)

    def reevaluate(self, namespace: str | None = None) -> int:
        """Evaluate cached pods again (after a policy or namespace change); queue the matches."""
        queued = 0
        for key, entry in self.state.pod_items():
            if namespace is not None and key[0] != namespace:
                continue
            queued += self._again(key, entry)
        return queued

    def reevaluate_keys(self, keys: set[PodKey]) -> None:
        """Evaluate these cached pods again (their metric findings changed)."""
        for key in keys:
            entry = self.state.pod(key)
            if entry is not None:
                self._again(key, entry)

    def _again(self, key: PodKey, entry: PodEntry) -> int:
        """Evaluate one cached pod again (a compact one is read again first); 1 when it was queued."""
        if entry.compact:
            self._read_again(key)
            return 0
        matched = self.evaluator.matches(entry.workload)
        names = tuple(v.policy for v in matched)
        digest = self.evaluator.digest(entry.workload)
        if names != entry.matched or digest != entry.digest:
            self.state.put_pod(key, replace(entry, matched=names, digest=digest))
        if (matched and not entry.workload.deleting) or held(entry.workload):
            self._add(ContainPod(*key))
            return 1
        return 0

    def resync(self) -> None:
        """Queue every matched or quarantined pod again, behind new events: verifies containment and repairs what
        was undone. A quarantined pod is kept up until its release, matched or not, terminating or not."""
        for key, entry in self.state.pod_items():
            if (entry.matched and not entry.workload.deleting) or held(entry.workload):
                self._add(ContainPod(*key), low=True)

    def observe_network_policy(self, event_type: str | None, body: dict[str, Any]) -> None:
        """Keep the NetworkPolicy cache current; a change the operator did not write re-checks its quarantined pods."""
        meta = body.get("metadata") or {}
        namespace, name = str(meta.get("namespace", "")), str(meta.get("name", ""))
        if event_type == "DELETED":
            self.state.drop_network_policy(namespace, name)
        elif not self.state.put_network_policy(body):
            return  # nothing new: the echo of the operator's own write, or a repeated event
        for key, entry in self.state.pods_in(namespace):
            if held(entry.workload):
                self._add(ContainPod(*key))

    def observe_incident(self, event_type: str | None, body: dict[str, Any]) -> None:
        """Keep the incident cache current; queue a release a person asked for; contain again when re-armed."""
        observability.observe_incident(event_type, body)  # minerguard_open_incidents
        meta = body.get("metadata") or {}
        namespace, name = str(meta.get("namespace")), str(meta.get("name"))
        if event_type == "DELETED":
            self.state.drop_incident(namespace, name)
            return
        previous = self.state.incident(namespace, name)
        fresh = self.state.put_incident(namespace, name, body)
        spec, status = body.get("spec") or {}, body.get("status") or {}
        if spec.get("release") and status.get("state") != inc.RELEASED:
            # Even when this version is known: an operator write right after a person set release (a pod of the
            # workload gone, say) puts the newer body in the cache first, and the person's event then looks old.
            self._add(ReleaseIncident(namespace, name))
        elif not fresh:
            return  # nothing new: the echo of the operator's own write, or a repeated event
        elif not spec.get("release") and status.get("state") == inc.RELEASED and previous is not None:
            self.reevaluate(namespace)  # re-armed by a person: contain the workload's pods again

    def observe_namespace(self, event_type: str | None, body: dict[str, Any]) -> None:
        """Keep the namespace's labels; a change evaluates its pods again (namespaceSelectors)."""
        meta = body.get("metadata") or {}
        name = str(meta.get("name", ""))
        with self.state.lock:
            if event_type == "DELETED":
                self.state.namespaces.pop(name, None)
                return
            labels = dict(meta.get("labels") or {})
            if self.state.namespaces.get(name) == labels:
                return
            self.state.namespaces[name] = labels
        self.reevaluate(name)

    def observe_node(self, event_type: str | None, body: dict[str, Any]) -> None:
        """Keep the node's labels, allocatable CPU and uid (node findings and incidents read them)."""
        meta = body.get("metadata") or {}
        name = str(meta.get("name", ""))
        with self.state.lock:
            if event_type == "DELETED":
                self.state.nodes.pop(name, None)
                return
            cpu = parse_quantity(((body.get("status") or {}).get("allocatable") or {}).get("cpu")) or 0.0
            self.state.nodes[name] = NodeEntry(dict(meta.get("labels") or {}), cpu, str(meta.get("uid", "")))

    def observe_policy(self, event_type: str | None, body: dict[str, Any]) -> None:
        """Take in a MinerPolicy (parsed, its status reported); a change evaluates every cached pod again."""
        policies = self.evaluator.policies
        if event_type == "DELETED":
            policies.forget(str((body.get("metadata") or {}).get("name", "")))
            self.reevaluate()
            return
        _, changed = policies.observe(body)
        if changed:
            self.reevaluate()
