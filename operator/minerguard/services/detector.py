"""The watch side: evaluate each pod event in memory and queue only what matched.

Watch handlers call :meth:`Detector.observe_pod` for every pod event. It parses the pod and
evaluates it against every ready policy (the pure :mod:`minerguard.domain.detection`); a pod
that matches nothing costs no API call at all and is never written to. A matched pod goes on
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
from minerguard.domain import netpol
from minerguard.domain.detection import Evidence, Verdict, evaluate, in_scope, prepare
from minerguard.domain.policy import Policy
from minerguard.domain.workload import ConfigMapLookup, Workload, parse_quantity, workload_from_pod
from minerguard.services.images import ImageConfigs
from minerguard.services.policies import PolicyRegistry
from minerguard.services.state import ClusterState, NodeEntry, PodEntry, PodKey, resource_version, seen
from minerguard.services.work import ContainPod, PodGone, ReleaseIncident, WorkItem
from minerguard.workqueue import WorkQueue

MetricFindings = Callable[[Policy, Workload], Sequence[Evidence]]


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

    def __init__(self, evaluator: Evaluator, state: ClusterState, queue: WorkQueue) -> None:
        self.evaluator = evaluator
        self.state = state
        self.queue = queue

    def _add(self, item: WorkItem, low: bool = False) -> None:
        if low:
            self.queue.add_low(item)
        else:
            self.queue.add(item)

    def observe_pod(self, event_type: str | None, pod: dict[str, Any], again: bool = False) -> None:
        """Take in one pod watch event (``again``: a pod read anew because a ConfigMap it uses
        changed, to be evaluated even if the pod itself did not). Never writes unless the pod
        matches a policy."""
        meta = pod.get("metadata") or {}
        key: PodKey = (str(meta.get("namespace", "")), str(meta.get("name", "")))
        if event_type == "DELETED":
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
        wl = self.evaluator.workload(pod)
        matched = self.evaluator.matches(wl)
        kept = matched or held(wl)
        self.state.put_pod(key, PodEntry(wl, tuple(v.policy for v in matched), pod if kept else None, rv))
        if (matched and not wl.deleting) or held(wl):
            self._add(ContainPod(*key))

    def reevaluate(self, namespace: str | None = None) -> int:
        """Evaluate cached pods again (after a policy or namespace change); queue the matches."""
        queued = 0
        for key, entry in self.state.pod_items():
            if namespace is not None and key[0] != namespace:
                continue
            matched = self.evaluator.matches(entry.workload)
            names = tuple(v.policy for v in matched)
            if names != entry.matched:
                self.state.put_pod(key, replace(entry, matched=names))
            if (matched and not entry.workload.deleting) or held(entry.workload):
                self._add(ContainPod(*key))
                queued += 1
        return queued

    def reevaluate_keys(self, keys: set[PodKey]) -> None:
        """Evaluate these cached pods again (their metric findings changed)."""
        for key in keys:
            entry = self.state.pod(key)
            if entry is None:
                continue
            matched = self.evaluator.matches(entry.workload)
            self.state.put_pod(key, replace(entry, matched=tuple(v.policy for v in matched)))
            if (matched and not entry.workload.deleting) or held(entry.workload):
                self._add(ContainPod(*key))

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
