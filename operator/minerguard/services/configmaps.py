"""ConfigMaps for detection: a cache fed by watch events, and re-evaluation of the pods that use one.

Miners keep their pool, wallet or config in a ConfigMap the pod reads (envFrom,
configMapKeyRef, a configMap or projected volume), out of the pod spec. Policies with
``signals.configMaps`` read them through :class:`ConfigMapCache`, which workload parsing
takes as its :class:`~minerguard.domain.workload.ConfigMapLookup`.

* The cache holds each ConfigMap's ``data`` (bounded: see
  :func:`~minerguard.domain.workload.config_map_data`) keyed by namespace and name, with
  its resourceVersion: an event with the same resourceVersion, or the same data, is no
  change. ``binaryData`` is not kept. Secrets are never read (the operator has no access).
* When a ConfigMap's data changes (or it appears, or is deleted), the cached pods that
  reference it are read again and evaluated again, as if they had changed themselves: a
  miner whose ConfigMap becomes malicious is contained, and a pod whose ConfigMap becomes
  benign no longer matches. Pods that reference nothing cost nothing.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Mapping
from typing import Any

from minerguard.domain.workload import config_map_data
from minerguard.errors import KubeError, NotFound
from minerguard.services.state import ClusterState, PodKey
from minerguard.storage.kubernetes import KubeStorage

log = logging.getLogger(__name__)


class ConfigMapCache:
    """ConfigMaps by namespace/name, with their resourceVersion. Thread-safe."""

    def __init__(self) -> None:
        self._maps: dict[tuple[str, str], tuple[str, Mapping[str, str]]] = {}
        self._lock = threading.Lock()

    def get(self, namespace: str, name: str) -> Mapping[str, str] | None:
        """The data of a ConfigMap, or None when it is not (yet) known."""
        with self._lock:
            found = self._maps.get((namespace, name))
        return found[1] if found is not None else None

    def observe(self, event_type: str | None, body: Mapping[str, Any]) -> bool:
        """Take in one ConfigMap watch event; whether its data changed for detection."""
        meta = body.get("metadata") or {}
        key = (str(meta.get("namespace", "")), str(meta.get("name", "")))
        version = str(meta.get("resourceVersion", ""))
        with self._lock:
            old = self._maps.get(key)
            if event_type == "DELETED":
                return self._maps.pop(key, None) is not None
            if old is not None and version and old[0] == version:
                return False
        data = config_map_data(body)
        with self._lock:
            old = self._maps.get(key)
            self._maps[key] = (version, data)
        return old is None or old[1] != data

    def __len__(self) -> int:
        with self._lock:
            return len(self._maps)


class ConfigMapService:
    """Feeds the cache from watch events and has the pods that use a changed ConfigMap evaluated again."""

    def __init__(
        self,
        cache: ConfigMapCache,
        state: ClusterState,
        storage: KubeStorage,
        observe_pod: Callable[[str | None, dict[str, Any], bool], None],
    ) -> None:
        self.cache = cache
        self.state = state
        self.storage = storage
        self.observe_pod = observe_pod

    def observe(self, event_type: str | None, body: Mapping[str, Any]) -> list[PodKey]:
        """Take in one ConfigMap watch event; the pods evaluated again because its data changed."""
        if not self.cache.observe(event_type, body):
            return []
        meta = body.get("metadata") or {}
        return self.refresh(str(meta.get("namespace", "")), str(meta.get("name", "")))

    def users(self, namespace: str, name: str) -> list[PodKey]:
        """The cached pods that reference ConfigMap namespace/name."""
        return [key for key, entry in self.state.pods_in(namespace) if name in entry.workload.config_maps]

    def refresh(self, namespace: str, name: str) -> list[PodKey]:
        """Read again and evaluate again the pods that use ConfigMap namespace/name; their keys."""
        users = self.users(namespace, name)
        for key in users:
            try:
                pod = self.storage.get_pod(*key)
            except NotFound:
                continue
            except KubeError as exc:
                log.warning("Could not read pod %s/%s after ConfigMap %s changed: %s", key[0], key[1], name, exc)
                continue
            self.observe_pod("MODIFIED", pod, True)
        return users
