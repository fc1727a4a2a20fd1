"""Unit tests for the Workload view: pods, pod templates, quantities, robustness and caps."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from minerguard.domain.patterns import MAX_VALUE_LEN
from minerguard.domain.workload import (
    MAX_CONTAINERS,
    MAX_ENV,
    ContainerView,
    OwnerRef,
    parse_quantity,
    workload_from_pod,
    workloads_from_manifest,
)

pytestmark = pytest.mark.unit

POD_SPEC: dict[str, Any] = {
    "nodeName": "node-1",
    "initContainers": [{"name": "init", "image": "busybox", "command": ["sh", "-c", "true"]}],
    "containers": [
        {
            "name": "app",
            "image": "nginx:1.27",
            "command": ["nginx"],
            "args": ["-g", "daemon off;"],
            "env": [
                {"name": "LITERAL", "value": "v1"},
                {"name": "SECRET", "valueFrom": {"secretKeyRef": {"name": "s", "key": "k"}}},
                {"name": "BOTH", "value": "ignored", "valueFrom": {"fieldRef": {"fieldPath": "x"}}},
                {"name": "EMPTY", "value": ""},
                {"name": "NUMBER", "value": 3333},
            ],
            "envFrom": [{"secretRef": {"name": "all"}}],
            "resources": {"limits": {"cpu": "500m"}, "requests": {"cpu": "250m"}},
        },
        {"name": "side", "image": "busybox", "resources": {"limits": {"cpu": 1}}},
    ],
    "ephemeralContainers": [{"name": "debug", "image": "busybox", "args": ["sleep", "1"]}],
}


def make_pod(**overrides: Any) -> dict[str, Any]:
    pod: dict[str, Any] = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": "p",
            "namespace": "team-a",
            "uid": "uid-1",
            "labels": {"app": "web", "bad": 3},
            "ownerReferences": [
                {"apiVersion": "v1", "kind": "Other", "name": "x", "uid": "u0"},
                {"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "web-1", "uid": "u1", "controller": True},
            ],
        },
        "spec": POD_SPEC,
        "status": {
            "phase": "Running",
            "containerStatuses": [
                {"name": "side", "imageID": "docker.io/library/busybox@sha256:" + "1" * 64},
                {"name": "app", "imageID": "docker.io/library/nginx@sha256:" + "2" * 64},
            ],
            "initContainerStatuses": [{"name": "init", "imageID": "init-id"}],
            "ephemeralContainerStatuses": [{"name": "debug", "imageID": "debug-id"}],
        },
    }
    pod.update(overrides)
    return pod


def test_pod_view() -> None:
    w = workload_from_pod(make_pod())
    assert (w.kind, w.namespace, w.name, w.uid) == ("Pod", "team-a", "p", "uid-1")
    assert dict(w.labels) == {"app": "web"}  # non-string values dropped
    assert w.node_name == "node-1"
    assert w.phase == "Running" and w.deleting is False
    assert w.owner == OwnerRef(api_version="apps/v1", kind="ReplicaSet", name="web-1", uid="u1")
    assert [(c.kind, c.name) for c in w.containers] == [
        ("container", "app"),
        ("container", "side"),
        ("initContainer", "init"),
        ("ephemeralContainer", "debug"),
    ]
    app = w.containers[0]
    assert app == ContainerView(
        kind="container",
        name="app",
        image="nginx:1.27",
        command=("nginx",),
        args=("-g", "daemon off;"),
        env=(("LITERAL", "v1"), ("EMPTY", "")),
        image_id="docker.io/library/nginx@sha256:" + "2" * 64,
    )
    assert w.containers[2].image_id == "init-id"
    assert w.containers[3].image_id == "debug-id"
    assert w.containers[3].args == ("sleep", "1")
    assert w.cpu_limit_cores == pytest.approx(1.5)
    assert w.cpu_request_cores == pytest.approx(1.25)  # a missing request defaults to the limit
    assert w.host_access is False


def test_env_never_reads_value_from() -> None:
    env = dict(workload_from_pod(make_pod()).containers[0].env)
    assert "SECRET" not in env and "BOTH" not in env and "NUMBER" not in env


def test_deleting_and_no_owner() -> None:
    pod = make_pod()
    pod["metadata"] = {"name": "p", "deletionTimestamp": "2024-01-01T00:00:00Z"}
    w = workload_from_pod(pod)
    assert w.deleting is True
    assert w.owner is None
    assert w.namespace == "default"


def test_cpu_is_none_when_a_regular_container_has_no_limit() -> None:
    spec = {"containers": [{"name": "a", "resources": {"limits": {"cpu": "1"}}}, {"name": "b"}]}
    w = workload_from_pod({"spec": spec})
    assert w.cpu_limit_cores is None and w.cpu_request_cores is None
    init_only = {"initContainers": [{"name": "i", "resources": {"limits": {"cpu": "1"}}}], "containers": []}
    assert workload_from_pod({"spec": init_only}).cpu_limit_cores is None


@pytest.mark.parametrize(
    ("key", "value"),
    [("hostNetwork", True), ("hostPID", True), ("hostIPC", True)],
)
def test_host_namespaces_give_host_access(key: str, value: bool) -> None:
    w = workload_from_pod({"spec": {"containers": [{"name": "c"}], key: value}})
    assert w.host_access is True


def test_privileged_and_host_path_give_host_access() -> None:
    privileged_init = {
        "initContainers": [{"name": "i", "securityContext": {"privileged": True}}],
        "containers": [{"name": "c", "securityContext": {"privileged": False}}],
    }
    w = workload_from_pod({"spec": privileged_init})
    assert w.privileged is True and w.host_access is True
    host_path = {
        "containers": [{"name": "c"}],
        "volumes": [{"name": "v", "emptyDir": {}}, {"name": "h", "hostPath": {"path": "/"}}],
    }
    w = workload_from_pod({"spec": host_path})
    assert w.host_path is True and w.host_access is True
    truthy_but_not_true = {"containers": [{"name": "c", "securityContext": {"privileged": "true"}}], "hostPID": "yes"}
    assert workload_from_pod({"spec": truthy_but_not_true}).host_access is False


TEMPLATE = {"metadata": {"labels": {"app": "miner"}}, "spec": {"containers": [{"name": "m", "image": "x/xmrig"}]}}


@pytest.mark.parametrize(
    ("kind", "spec"),
    [
        ("Deployment", {"template": TEMPLATE}),
        ("StatefulSet", {"template": TEMPLATE}),
        ("DaemonSet", {"template": TEMPLATE}),
        ("ReplicaSet", {"template": TEMPLATE}),
        ("Job", {"template": TEMPLATE}),
        ("ReplicationController", {"template": TEMPLATE}),
        ("CronJob", {"schedule": "* * * * *", "jobTemplate": {"spec": {"template": TEMPLATE}}}),
    ],
)
def test_pod_templates_of_every_workload_kind(kind: str, spec: dict[str, Any]) -> None:
    doc = {"apiVersion": "apps/v1", "kind": kind, "metadata": {"name": "w", "labels": {"owner": "label"}}, "spec": spec}
    [w] = workloads_from_manifest(doc)
    assert (w.kind, w.namespace, w.name, w.uid) == (kind, "default", "w", "")
    assert dict(w.labels) == {"app": "miner"}  # the template's labels, not the object's
    assert [c.image for c in w.containers] == ["x/xmrig"]
    assert w.owner is None and w.phase == ""


def test_manifest_pod_and_namespace() -> None:
    [w] = workloads_from_manifest({"kind": "Pod", "metadata": {"name": "p", "namespace": "ns"}, "spec": {}})
    assert (w.kind, w.namespace, w.name, w.containers) == ("Pod", "ns", "p", ())


@pytest.mark.parametrize(
    "doc",
    [
        {"kind": "Service", "metadata": {"name": "s"}, "spec": {"template": TEMPLATE}},
        {"kind": "ConfigMap", "data": {"x": "xmrig"}},
        {"kind": "MinerPolicy", "spec": {}},
        {"kind": "Deployment", "spec": {}},  # no template
        {"kind": "CronJob", "spec": {"jobTemplate": "x"}},
        {"kind": None},
        {},
    ],
)
def test_other_kinds_and_templateless_objects_give_nothing(doc: dict[str, Any]) -> None:
    assert workloads_from_manifest(doc) == []


@pytest.mark.parametrize(
    ("quantity", "cores"),
    [
        ("500m", 0.5),
        ("2", 2.0),
        ("1.5", 1.5),
        ("100u", 0.0001),
        ("250000n", 0.00025),
        ("1k", 1000.0),
        ("1e3", 1000.0),
        ("1E", 1e18),
        ("1Ki", 1024.0),
        (" 2 ", 2.0),
        (2, 2.0),
        (0.25, 0.25),
        ("0", 0.0),
    ],
)
def test_quantities(quantity: Any, cores: float) -> None:
    assert parse_quantity(quantity) == pytest.approx(cores)


@pytest.mark.parametrize(
    "bad", ["", "m", "abc", "-1", "1.2.3", "1x", "NaN", "Infinity", True, None, [], -1, "1e999999999", float("inf")]
)
def test_invalid_quantities_are_none(bad: Any) -> None:
    assert parse_quantity(bad) is None


def test_caps_bound_huge_specs() -> None:
    huge = "x" * (MAX_VALUE_LEN * 3)
    containers: list[dict[str, Any]] = [{"name": f"c{i}", "image": "busybox"} for i in range(MAX_CONTAINERS + 500)]
    containers[0] = {
        "name": "first",
        "image": huge,
        "args": [huge],
        "env": [{"name": f"E{i}", "value": "v"} for i in range(MAX_ENV + 1000)],
    }
    w = workload_from_pod({"spec": {"containers": containers, "initContainers": [{"name": "late"}]}})
    assert len(w.containers) == MAX_CONTAINERS
    assert all(c.kind == "container" for c in w.containers)
    first = w.containers[0]
    assert len(first.env) == MAX_ENV
    assert len(first.image) == MAX_VALUE_LEN and len(first.args[0]) == MAX_VALUE_LEN


WRONG_TYPES: list[Any] = [
    None,
    3,
    "x",
    [],
    {},
    {"metadata": "x", "spec": [], "status": 5},
    {"spec": {"containers": "c", "initContainers": 3, "volumes": "v"}},
    {"spec": {"containers": [None, 3, "c", {"name": 5, "image": ["x"], "command": "sh", "args": [1, None, "ok"]}]}},
    {"spec": {"containers": [{"env": "x"}, {"env": [None, 3, {"name": None, "value": "v"}]}]}},
    {
        "spec": {
            "containers": [{"resources": "x"}, {"resources": {"limits": "1"}}, {"resources": {"limits": {"cpu": {}}}}]
        }
    },
    {"metadata": {"labels": ["a"], "ownerReferences": "x"}, "status": {"containerStatuses": "x"}},
    {"metadata": {"ownerReferences": [None, {"controller": True, "name": 3}]}},
]


@pytest.mark.parametrize("obj", WRONG_TYPES)
def test_wrong_types_never_raise(obj: Any) -> None:
    w = workload_from_pod(obj)
    assert w.kind == "Pod"
    for kind in ("Pod", "Deployment", "CronJob"):
        doc = {"kind": kind, "spec": {"template": obj, "jobTemplate": {"spec": {"template": obj}}}}
        workloads_from_manifest(doc)


def test_wrong_typed_args_are_dropped_and_strings_kept() -> None:
    obj = WRONG_TYPES[7]
    w = workload_from_pod(obj)
    assert w.containers[-1].args == ("ok",)
    assert w.containers[-1].command == ()
    assert w.containers[-1].name == ""


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=True) | st.text(max_size=5),
    lambda children: (
        st.lists(children, max_size=3)
        | st.dictionaries(
            st.sampled_from(
                [
                    "kind",
                    "metadata",
                    "spec",
                    "status",
                    "containers",
                    "initContainers",
                    "ephemeralContainers",
                    "name",
                    "image",
                    "command",
                    "args",
                    "env",
                    "value",
                    "valueFrom",
                    "resources",
                    "limits",
                    "requests",
                    "cpu",
                    "template",
                    "jobTemplate",
                    "labels",
                    "volumes",
                    "hostPath",
                    "securityContext",
                    "privileged",
                    "containerStatuses",
                    "imageID",
                    "ownerReferences",
                    "controller",
                    "hostPID",
                    "deletionTimestamp",
                ]
            ),
            children,
            max_size=4,
        )
    ),
    max_leaves=25,
)


@given(json_values, st.sampled_from(["Pod", "Deployment", "CronJob", "Job", "List"]))
@settings(max_examples=300, deadline=None)
def test_arbitrary_documents_never_raise(body: Any, kind: str) -> None:
    doc = dict(body) if isinstance(body, dict) else {"spec": body}
    doc["kind"] = kind
    for w in workloads_from_manifest(doc):
        assert isinstance(w.host_access, bool)
        assert all(isinstance(c.name, str) for c in w.containers)
    workload_from_pod(doc)
