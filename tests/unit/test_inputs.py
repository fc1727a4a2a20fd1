"""The detection-input digest: it moves with every input detection reads, and with nothing else."""

from __future__ import annotations

import copy
import dataclasses
from typing import Any

import pytest

from minerguard.domain import inputs
from minerguard.domain.workload import ConfigMapIndex, ContainerView, OwnerRef, Workload, workload_from_pod

pytestmark = pytest.mark.unit


def pod() -> dict[str, Any]:
    return {
        "metadata": {"name": "p", "namespace": "apps", "uid": "u", "labels": {"app": "a"}, "resourceVersion": "1"},
        "spec": {
            "nodeName": "n1",
            "containers": [
                {
                    "name": "c",
                    "image": "app:1",
                    "command": ["run"],
                    "args": ["--a", "b"],
                    "env": [{"name": "K", "value": "v"}],
                    "envFrom": [{"configMapRef": {"name": "settings"}}],
                }
            ],
        },
        "status": {"phase": "Pending"},
    }


MAPS = ConfigMapIndex({("apps", "settings"): {"POOL": "example.org"}})


def digest_of(body: dict[str, Any], maps: ConfigMapIndex = MAPS, ns: dict[str, str] | None = None, v: int = 1) -> bytes:
    return inputs.digest(workload_from_pod(body, maps), ns if ns is not None else {"team": "t"}, v)


def changed(change: Any) -> dict[str, Any]:
    body = copy.deepcopy(pod())
    change(body)
    return body


@pytest.mark.parametrize(
    "change",
    [
        lambda b: b["metadata"].update({"annotations": {"x": "y"}, "resourceVersion": "2"}),
        lambda b: b["metadata"].update({"managedFields": [{"manager": "m"}], "generation": 4}),
        lambda b: b["status"].update({"conditions": [{"type": "PodScheduled", "status": "False"}]}),
        lambda b: b["metadata"]["labels"].update({}),
    ],
    ids=["annotation", "managed-fields", "status-condition", "same-labels"],
)
def test_what_detection_ignores_leaves_the_digest(change: Any) -> None:
    assert digest_of(changed(change)) == digest_of(pod())


def _container(b: dict[str, Any]) -> dict[str, Any]:
    return b["spec"]["containers"][0]  # type: ignore[no-any-return]


@pytest.mark.parametrize(
    "change",
    [
        lambda b: _container(b).update({"image": "app:2"}),
        lambda b: _container(b).update({"command": ["run", "x"]}),
        lambda b: _container(b).update({"args": ["--a b"]}),  # the same characters, other items
        lambda b: _container(b).update({"env": [{"name": "K", "value": "w"}]}),
        lambda b: _container(b).update({"env": [{"name": "KV", "value": ""}]}),  # the same characters, other split
        lambda b: b["metadata"]["labels"].update({"app": "b"}),
        lambda b: b["metadata"].update({"annotations": {"minerguard.io/created-by": "mallory"}}),
        lambda b: b["spec"].update({"hostNetwork": True}),
        lambda b: b["metadata"].update({"deletionTimestamp": "2026-01-01T00:00:00Z"}),
        lambda b: b["status"].update({"phase": "Running"}),
    ],
    ids=["image", "command", "args-split", "env", "env-split", "labels", "creator", "host", "deleting", "phase"],
)
def test_what_detection_reads_moves_the_digest(change: Any) -> None:
    assert digest_of(changed(change)) != digest_of(pod())


def test_configmap_data_namespace_labels_and_policies_move_the_digest() -> None:
    base = digest_of(pod())
    assert digest_of(pod(), ConfigMapIndex({("apps", "settings"): {"POOL": "pool.example:3333"}})) != base
    assert digest_of(pod(), ConfigMapIndex()) != base
    assert digest_of(pod(), ns={"team": "u"}) != base
    assert digest_of(pod(), v=2) != base
    assert digest_of(pod()) == base


def test_the_digest_covers_every_field_detection_reads() -> None:
    """A field added to the views must be added to the digest (and here) or it would be ignored."""
    assert {f.name for f in dataclasses.fields(Workload)} == {
        "kind", "namespace", "name", "uid", "labels", "node_name", "containers", "host_network", "host_pid",
        "host_ipc", "privileged", "host_path", "owner", "cpu_limit_cores", "cpu_request_cores", "phase", "deleting",
        "config_maps", "service_account", "created_by",
    }  # fmt: skip
    assert {f.name for f in dataclasses.fields(ContainerView)} == {
        "kind", "name", "image", "command", "args", "env", "image_id", "config_env", "files", "oversized",
        "image_config", "command_from", "args_from", "image_env", "image_texts",
    }  # fmt: skip
    wl = workload_from_pod(pod(), MAPS)
    for field, value in [
        ("owner", OwnerRef("apps/v1", "ReplicaSet", "r", "u")),
        ("cpu_limit_cores", 2.0),
        ("config_maps", frozenset({"x"})),
    ]:
        assert inputs.digest(dataclasses.replace(wl, **{field: value}), {}, 1) != inputs.digest(wl, {}, 1)
    c = wl.containers[0]
    for field, value in [("image_id", "sha256:1"), ("files", (("/f", "x"),)), ("image_texts", (("w", "t"),))]:
        other = dataclasses.replace(wl, containers=(dataclasses.replace(c, **{field: value}),))
        assert inputs.digest(other, {}, 1) != inputs.digest(wl, {}, 1)


def test_the_raw_size_counts_what_the_parsed_size_counts_without_configmaps() -> None:
    body = pod()
    body["spec"]["containers"][0]["env"] = [{"name": f"V{i}", "value": "x" * 100} for i in range(50)]
    body["spec"].setdefault("initContainers", []).append({"name": "i", "image": "a", "args": ["--y=" + "z" * 300]})
    parsed = workload_from_pod(body, None)
    assert inputs.raw_text_size(body) == inputs.text_size(parsed) > 5_000


@pytest.mark.parametrize(
    "spec",
    [None, "x", {"containers": "x"}, {"containers": [None, {"env": "x", "args": [1, None]}]}],
)
def test_the_raw_size_of_a_malformed_body_is_what_it_can_count(spec: Any) -> None:
    assert inputs.raw_text_size({"spec": spec}) == 0
