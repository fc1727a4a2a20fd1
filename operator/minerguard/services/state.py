"""The operator's in-memory view of the cluster, fed by watch events.

Pods are kept as parsed :class:`~minerguard.domain.workload.Workload` views with the names of
the policies they match; namespaces as their labels; incidents as the few fields
the hot path needs (is it released?). Nothing here calls the API.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from minerguard import observability
from minerguard.domain.workload import Workload

PodKey = tuple[str, str]


@dataclass
class PodEntry:
    workload: Workload
    matched: tuple[str, ...] = ()


@dataclass
class IncidentEntry:
    release: bool
    state: str
    pod_uids: frozenset[str]
    policy: str


@dataclass(frozen=True)
class NodeEntry:
    labels: dict[str, str]
    allocatable_cpu: float
    uid: str


@dataclass
class ClusterState:
    pods: dict[PodKey, PodEntry] = field(default_factory=dict)
    namespaces: dict[str, dict[str, str]] = field(default_factory=dict)
    incidents: dict[tuple[str, str], IncidentEntry] = field(default_factory=dict)
    nodes: dict[str, NodeEntry] = field(default_factory=dict)
    lock: threading.RLock = field(default_factory=threading.RLock)

    def put_pod(self, key: PodKey, entry: PodEntry) -> None:
        with self.lock:
            self.pods[key] = entry
            observability.PODS_WATCHED.set(len(self.pods))

    def drop_pod(self, key: PodKey) -> PodEntry | None:
        with self.lock:
            entry = self.pods.pop(key, None)
            observability.PODS_WATCHED.set(len(self.pods))
            return entry

    def pod(self, key: PodKey) -> PodEntry | None:
        with self.lock:
            return self.pods.get(key)

    def pod_items(self) -> list[tuple[PodKey, PodEntry]]:
        with self.lock:
            return list(self.pods.items())

    def pods_in(self, namespace: str) -> Iterator[tuple[PodKey, PodEntry]]:
        for key, entry in self.pod_items():
            if key[0] == namespace:
                yield key, entry

    def namespace_labels(self, name: str) -> dict[str, str] | None:
        with self.lock:
            return self.namespaces.get(name)

    def put_incident(self, namespace: str, name: str, body: dict[str, Any]) -> None:
        spec = body.get("spec") or {}
        status = body.get("status") or {}
        entry = IncidentEntry(
            release=bool(spec.get("release")),
            state=str(status.get("state") or ""),
            pod_uids=frozenset(str(p.get("uid")) for p in status.get("pods") or [] if isinstance(p, dict)),
            policy=str(spec.get("policy") or ""),
        )
        with self.lock:
            self.incidents[(namespace, name)] = entry

    def drop_incident(self, namespace: str, name: str) -> None:
        with self.lock:
            self.incidents.pop((namespace, name), None)

    def incident(self, namespace: str, name: str) -> IncidentEntry | None:
        with self.lock:
            return self.incidents.get((namespace, name))

    def node_cpu(self, name: str) -> float:
        with self.lock:
            entry = self.nodes.get(name)
        return entry.allocatable_cpu if entry else 0.0

    def node(self, name: str) -> NodeEntry | None:
        with self.lock:
            return self.nodes.get(name)
