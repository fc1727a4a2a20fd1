"""The operator's in-memory view of the cluster, fed by watch events and by its own writes.

Pods are kept as parsed :class:`~minerguard.domain.workload.Workload` views with the names of
the policies they match and their detection-input digest (:mod:`minerguard.domain.inputs`), and,
for matched pods only, their last known body (so the worker does not read them again). An
unmatched pod with more container text than :data:`COMPACT_ABOVE` is kept compact: its digest and
a view without that text (:func:`compact`), so a tenant's megabyte pods cost no megabyte each.
Namespaces are kept as their labels; incidents and NetworkPolicies as their bodies. The
operator's own writes are put in as soon as the API answers them, so the watch event that
echoes a write carries a resourceVersion already known and is recognised as nothing new. Nothing here calls the API.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from minerguard import observability
from minerguard.domain.workload import ContainerView, Workload

PodKey = tuple[str, str]

COMPACT_ABOVE = 16 << 10
"""Characters of container text (command, args, env, ConfigMap data) above which an unmatched pod is kept compact."""


def compact(wl: Workload) -> Workload:
    """The workload without its containers' text: what the services other than detection read of an unmatched pod
    (names, images, image IDs, labels, owner, node, CPU...). Detecting on it again needs the pod read again."""
    views = tuple(ContainerView(c.kind, c.name, c.image, image_id=c.image_id) for c in wl.containers)
    return replace(wl, containers=views)


def resource_version(body: Mapping[str, Any]) -> str:
    return str((body.get("metadata") or {}).get("resourceVersion") or "")


def seen(incoming: str, known: str) -> bool:
    """Whether a body at resourceVersion ``incoming`` is one already known: the same version, or an older one.

    resourceVersions are opaque, but every apiserver backed by etcd gives integers that grow; when either is
    not one, only equality counts as seen.
    """
    if not incoming or not known:
        return False
    if incoming.isdigit() and known.isdigit():
        return int(incoming) <= int(known)
    return incoming == known


@dataclass
class PodEntry:
    workload: Workload
    matched: tuple[str, ...] = ()
    body: dict[str, Any] | None = None
    """The pod as last seen, kept for matched pods only."""
    resource_version: str = ""
    digest: bytes = b""
    """The detection-input digest the verdict ``matched`` was reached on (empty: evaluate at the next event)."""
    compact: bool = False
    """``workload`` is :func:`compact`: its container text is not here (the pod is read again to evaluate it)."""


@dataclass(frozen=True)
class IncidentEntry:
    body: dict[str, Any]

    @property
    def release(self) -> bool:
        return bool((self.body.get("spec") or {}).get("release"))

    @property
    def resource_version(self) -> str:
        return resource_version(self.body)


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
    network_policies: dict[str, dict[str, dict[str, Any]]] = field(default_factory=dict)
    lock: threading.RLock = field(default_factory=threading.RLock)
    compact_pods: int = 0
    incidents_listed: bool = False
    """Whether ``incidents`` holds every incident (a first listing is in; the watch keeps it current)."""

    # ------------------------------------------------------------------ pods

    def put_pod(self, key: PodKey, entry: PodEntry) -> None:
        with self.lock:
            old = self.pods.get(key)
            self.pods[key] = entry
            self._count(old, entry)

    def drop_pod(self, key: PodKey) -> PodEntry | None:
        with self.lock:
            entry = self.pods.pop(key, None)
            self._count(entry, None)
            return entry

    def _count(self, old: PodEntry | None, new: PodEntry | None) -> None:
        self.compact_pods += int(new is not None and new.compact) - int(old is not None and old.compact)
        observability.PODS_WATCHED.set(len(self.pods))
        observability.PODS_COMPACT.set(self.compact_pods)

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

    def wrote_pod(self, key: PodKey, body: dict[str, Any], workload: Workload) -> None:
        """The operator wrote this pod and the API answered ``body``: its echo is nothing new."""
        with self.lock:
            entry = self.pods.get(key)
            if entry is not None and not seen(resource_version(body), entry.resource_version):
                # The write changed what detection reads (a label): no digest, so the next event is evaluated.
                rv = resource_version(body)
                self.pods[key] = replace(
                    entry, workload=workload, body=body, resource_version=rv, digest=b"", compact=False
                )
                self._count(entry, self.pods[key])

    # ------------------------------------------------------------------ namespaces and nodes

    def namespace_labels(self, name: str) -> dict[str, str] | None:
        with self.lock:
            return self.namespaces.get(name)

    def node_cpu(self, name: str) -> float:
        with self.lock:
            entry = self.nodes.get(name)
        return entry.allocatable_cpu if entry else 0.0

    def node(self, name: str) -> NodeEntry | None:
        with self.lock:
            return self.nodes.get(name)

    # ------------------------------------------------------------------ incidents

    def put_incident(self, namespace: str, name: str, body: dict[str, Any]) -> bool:
        """Keep the incident's body; False when this version (or a newer one) was known already."""
        with self.lock:
            known = self.incidents.get((namespace, name))
            if known is not None and seen(resource_version(body), known.resource_version):
                return False
            self.incidents[(namespace, name)] = IncidentEntry(body)
            return True

    def drop_incident(self, namespace: str, name: str) -> None:
        with self.lock:
            self.incidents.pop((namespace, name), None)

    def incident_bodies(self) -> list[dict[str, Any]]:
        with self.lock:
            return [entry.body for entry in self.incidents.values()]

    def incident(self, namespace: str, name: str) -> IncidentEntry | None:
        with self.lock:
            return self.incidents.get((namespace, name))

    # ------------------------------------------------------------------ NetworkPolicies

    def put_network_policy(self, body: dict[str, Any]) -> bool:
        """Keep the policy's body; False when this version (or a newer one) was known already."""
        meta = body.get("metadata") or {}
        namespace, name = str(meta.get("namespace", "")), str(meta.get("name", ""))
        with self.lock:
            known = self.network_policies.setdefault(namespace, {}).get(name)
            if known is not None and seen(resource_version(body), resource_version(known)):
                return False
            self.network_policies[namespace][name] = body
            return True

    def drop_network_policy(self, namespace: str, name: str) -> None:
        with self.lock:
            self.network_policies.get(namespace, {}).pop(name, None)

    def network_policies_in(self, namespace: str) -> list[dict[str, Any]]:
        with self.lock:
            return list(self.network_policies.get(namespace, {}).values())


class WatchedNetworkPolicies:
    """The NetworkPolicy view the worker's actions read: the watch cache, plus the operator's own writes."""

    def __init__(self, state: ClusterState) -> None:
        self.state = state

    def list(self, namespace: str) -> list[dict[str, Any]]:
        return self.state.network_policies_in(namespace)

    def wrote(self, body: dict[str, Any]) -> None:
        self.state.put_network_policy(body)
