"""services/images.py: one read per digest, background reads, negative cache, the condition, and the evaluator hook."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

import pytest

from minerguard.config import RegistrySettings
from minerguard.domain.oci import ImageConfig, Reference
from minerguard.domain.policy import parse_policy
from minerguard.domain.workload import workload_from_pod
from minerguard.services.detector import Evaluator
from minerguard.services.images import CONDITION, ImageConfigs
from minerguard.services.policies import PolicyRegistry
from minerguard.services.state import ClusterState, NodeEntry
from minerguard.storage.registry import Platform, RegistryError
from tests.fakes import FakeStorage

pytestmark = pytest.mark.unit

DIGEST = "sha256:" + "a" * 64
MINER = ImageConfig(entrypoint=("/usr/bin/kthreadd", "-o", "stratum+tcp://pool.supportxmr.com:3333"))


class Reader:
    """Counts reads; blocks each until released, so tests see the watch path never waits."""

    def __init__(self, answer: ImageConfig | RegistryError) -> None:
        self.answer = answer
        self.reads: list[tuple[str, Platform]] = []
        self.release = threading.Event()

    def allowed(self, host: str) -> bool:
        return host != "not.allowed.example"

    def read_config(self, ref: Reference, platform: Platform) -> tuple[str, ImageConfig]:
        self.reads.append((str(ref), platform))
        self.release.wait(5)
        if isinstance(self.answer, RegistryError):
            raise self.answer
        return DIGEST, self.answer


def pod(name: str, image: str = "reg.example/x:1", image_id: str = "", node: str = "") -> dict[str, Any]:
    status = {"containerStatuses": [{"name": "c", "imageID": image_id}]} if image_id else {}
    return {
        "metadata": {"name": name, "namespace": "apps", "resourceVersion": "1"},
        "spec": {"containers": [{"name": "c", "image": image}], "nodeName": node},
        "status": status,
    }


def service(reader: Reader, state: ClusterState | None = None, **kw: Any) -> tuple[ImageConfigs, list[set[Any]]]:
    images = ImageConfigs(RegistrySettings(enabled=True, **kw), reader, state or ClusterState())  # type: ignore[arg-type]
    ready: list[set[Any]] = []
    done = threading.Event()

    def on_ready(keys: set[Any]) -> None:
        ready.append(keys)
        done.set()

    images.on_ready = on_ready
    images.done = done  # type: ignore[attr-defined]
    return images, ready


def settled(check: Callable[[], bool]) -> None:
    deadline = time.monotonic() + 5
    while not check():
        assert time.monotonic() < deadline
        time.sleep(0.01)


def test_a_thousand_pods_on_one_digest_cause_one_read() -> None:
    reader = Reader(MINER)
    images, ready = service(reader)
    pods = [workload_from_pod(pod(f"p{i}", image_id=f"reg.example/x@{DIGEST}")) for i in range(1000)]
    for wl in pods:
        assert images.attach(wl) is wl  # nothing known yet: the spec alone, at once
    reader.release.set()
    assert images.done.wait(5)  # type: ignore[attr-defined]
    assert len(reader.reads) == 1 and reader.reads[0][0] == f"reg.example/x@{DIGEST}"
    assert len(ready[0]) == 1000
    attached = images.attach(pods[0])
    assert attached.containers[0].image_config is not None
    assert len(reader.reads) == 1
    images.stop()


def test_a_failed_read_is_remembered_and_reported() -> None:
    reader = Reader(RegistryError("127.0.0.1:1: refused", "Unreachable"))
    reader.release.set()
    now = [0.0]
    images, ready = service(reader, negative_ttl=60.0)
    images.clock = lambda: now[0]
    wl = workload_from_pod(pod("p"))
    images.attach(wl)
    settled(lambda: images.health[0] == "False")
    assert images.health[:2] == ("False", "Unreachable")
    for _ in range(50):
        images.attach(wl)
    assert len(reader.reads) == 1  # no retry storm
    now[0] = 61.0
    images.attach(wl)
    settled(lambda: len(reader.reads) == 2)
    assert not ready  # a failure evaluates nothing again: the spec verdict stands
    images.stop()


def test_platform_of_the_node() -> None:
    reader = Reader(MINER)
    reader.release.set()
    state = ClusterState()
    state.nodes["n1"] = NodeEntry({"kubernetes.io/arch": "arm64", "kubernetes.io/os": "linux"}, 4.0, "u")
    images, _ = service(reader, state)
    images.attach(workload_from_pod(pod("p", node="n1")))
    assert images.done.wait(5)  # type: ignore[attr-defined]
    assert reader.reads[0][1] == Platform("linux", "arm64")
    images.stop()


def test_condition_is_written_on_change_only() -> None:
    storage = FakeStorage()
    body = {
        "metadata": {"name": "p", "generation": 1},
        "spec": {"mode": "Audit", "signals": {"imageConfig": True, "processes": [{"glob": "xmrig"}]}},
    }
    storage.put("MinerPolicy", body)
    policy = parse_policy(body)
    images, _ = service(Reader(MINER))
    reported: dict[str, tuple[str, str]] = {}
    images.health = ("False", "Unreachable", "reg: down")
    images.report(storage, (policy,), reported)  # type: ignore[arg-type]
    images.report(storage, (policy,), reported)  # type: ignore[arg-type]
    conditions = storage.get_policy("p")["status"]["conditions"]
    assert [(c["type"], c["status"], c["reason"]) for c in conditions] == [(CONDITION, "False", "Unreachable")]
    assert storage.calls[("patch", "MinerPolicy")] == 1
    images.stop()


def test_evaluator_matches_on_the_image_once_read() -> None:
    reader = Reader(MINER)
    state = ClusterState()
    policies = PolicyRegistry(FakeStorage(), None)  # type: ignore[arg-type]
    body = {
        "metadata": {"name": "p", "generation": 1},
        "spec": {"mode": "Audit", "signals": {"imageConfig": True, "pools": {"schemes": ["stratum+tcp"]}}},
    }
    policies.observe(body)
    evaluator = Evaluator(state, policies)
    images, _ = service(reader, state)
    evaluator.images = images
    wl = workload_from_pod(pod("p"))
    assert evaluator.matches(wl) == []
    reader.release.set()
    assert images.done.wait(5)  # type: ignore[attr-defined]
    [verdict] = evaluator.matches(wl)
    assert any("image config Entrypoint" in e.detail for e in verdict.evidence)
    images.stop()


def test_the_cache_is_bounded_in_characters() -> None:
    reader = Reader(ImageConfig(history=((1, "x" * 60_000),)))
    reader.release.set()
    images, _ = service(reader, cache_bytes=200_000)
    for i in range(10):
        images.attach(workload_from_pod(pod(f"p{i}", image=f"reg.example/x{i}:1")))
    settled(lambda: len(reader.reads) == 10 and not images._waiting)
    assert images._bytes <= 200_000 and len(images._configs) == 3
    images.stop()


def test_registries_left_out_are_never_asked() -> None:
    reader = Reader(MINER)
    images, _ = service(reader)
    images.attach(workload_from_pod(pod("p", image="not.allowed.example/x:1")))
    assert not reader.reads and not images._waiting and images.health[0] == "True"
    images.stop()


def test_a_spec_visible_miner_matches_while_its_image_is_still_being_read() -> None:
    """Inspection never delays a spec-visible containment: the verdict comes while the read still hangs."""
    reader = Reader(MINER)  # not released: the read hangs until the end of the test
    policies = PolicyRegistry(FakeStorage(), None)  # type: ignore[arg-type]
    body = {
        "metadata": {"name": "p", "generation": 1},
        "spec": {"mode": "Audit", "signals": {"imageConfig": True, "processes": [{"glob": "xmrig"}]}},
    }
    policies.observe(body)
    state = ClusterState()
    evaluator = Evaluator(state, policies)
    images, _ = service(reader, state)
    evaluator.images = images
    spec = pod("m")
    spec["spec"]["containers"][0]["command"] = ["xmrig"]
    started = time.monotonic()
    [verdict] = evaluator.matches(workload_from_pod(spec))
    assert time.monotonic() - started < 1.0 and not reader.release.is_set()
    settled(lambda: len(reader.reads) == 1)  # the read was asked for, in the background
    assert [e.signal for e in verdict.evidence] == ["process"]
    reader.release.set()
    images.stop()
