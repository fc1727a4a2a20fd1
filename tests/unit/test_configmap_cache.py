"""The ConfigMap cache and the re-evaluation of the pods that use a changed ConfigMap."""

from __future__ import annotations

from typing import Any

import pytest

from minerguard.domain.workload import MAX_CONFIG_MAP_CHARS, workload_from_pod
from minerguard.errors import NotFound
from minerguard.services.configmaps import ConfigMapCache, ConfigMapService
from minerguard.services.state import ClusterState, PodEntry

pytestmark = pytest.mark.unit


def cm(name: str, data: dict[str, Any], version: str = "1", namespace: str = "apps") -> dict[str, Any]:
    meta = {"name": name, "namespace": namespace, "resourceVersion": version}
    return {"kind": "ConfigMap", "metadata": meta, "data": data, "binaryData": {"b": "AAAA"}}


def test_cache_keys_by_namespace_name_and_version() -> None:
    cache = ConfigMapCache()
    assert cache.observe("ADDED", cm("a", {"K": "v"})) is True
    assert cache.get("apps", "a") == {"K": "v"}
    assert cache.get("other", "a") is None
    assert cache.observe("MODIFIED", cm("a", {"K": "changed"}, version="1")) is False  # same resourceVersion
    assert cache.get("apps", "a") == {"K": "v"}
    assert cache.observe("MODIFIED", cm("a", {"K": "v"}, version="2")) is False  # same data
    assert cache.observe("MODIFIED", cm("a", {"K": "w"}, version="3")) is True
    assert cache.get("apps", "a") == {"K": "w"}
    assert cache.observe("DELETED", cm("a", {}, version="4")) is True
    assert cache.get("apps", "a") is None and len(cache) == 0
    assert cache.observe("DELETED", cm("a", {}, version="5")) is False


def test_cache_bounds_what_it_keeps() -> None:
    cache = ConfigMapCache()
    cache.observe("ADDED", cm("big", {f"k{i}": "x" * 100_000 for i in range(40)} | {"n": 5}))
    data = cache.get("apps", "big")
    assert data is not None and "n" not in data  # non-strings are not data
    assert sum(len(k) + len(v) for k, v in data.items()) <= MAX_CONFIG_MAP_CHARS + 64


class FakePods:
    """The one storage call the service makes: read a pod."""

    def __init__(self, pods: dict[tuple[str, str], dict[str, Any]]) -> None:
        self.pods = pods
        self.reads: list[tuple[str, str]] = []

    def get_pod(self, namespace: str, name: str) -> dict[str, Any]:
        self.reads.append((namespace, name))
        if (namespace, name) not in self.pods:
            raise NotFound(f"pod {namespace}/{name} not found", 404)
        return self.pods[(namespace, name)]


def pod(name: str, config_map: str | None) -> dict[str, Any]:
    env_from = [{"configMapRef": {"name": config_map}}] if config_map else []
    spec = {"containers": [{"name": "c", "image": "a", "envFrom": env_from}]}
    return {"metadata": {"name": name, "namespace": "apps"}, "spec": spec}


def test_a_change_reads_again_only_the_pods_that_use_the_configmap() -> None:
    state = ClusterState()
    bodies = {("apps", n): pod(n, c) for n, c in [("user", "settings"), ("other", "else"), ("plain", None)]}
    for key, body in bodies.items():
        state.put_pod(key, PodEntry(workload_from_pod(body)))
    state.put_pod(
        ("gone", "x"),
        PodEntry(workload_from_pod({**pod("x", "settings"), "metadata": {"name": "x", "namespace": "gone"}})),
    )
    storage = FakePods(bodies)
    seen: list[tuple[str | None, str, bool]] = []

    def observe(event: str | None, body: dict[str, Any], again: bool) -> None:
        seen.append((event, body["metadata"]["name"], again))

    service = ConfigMapService(ConfigMapCache(), state, storage, observe)  # type: ignore[arg-type]

    assert service.refresh("apps", "settings") == [("apps", "user")]
    assert storage.reads == [("apps", "user")] and seen == [("MODIFIED", "user", True)]
    del storage.pods[("apps", "user")]
    assert service.refresh("apps", "settings") == [("apps", "user")]
    assert seen == [("MODIFIED", "user", True)]  # a pod deleted meanwhile is skipped
    assert service.refresh("apps", "unused") == []
