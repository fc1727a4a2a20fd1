"""Unit tests for the canary's pure parts (#15): foothold records, the bill, related workloads, the usage query.

What these prove: the owner chain, field managers, creator stamp, host exposure and the access table are read
from the objects as recorded (hostile or missing fields count as absent); the meter adds usage x time, caps a
gap and never goes down; related workloads are found by each kind of indicator, never by a base image or the
default ServiceAccount, are capped and counted, and exclude the incident's own workload.
"""

from __future__ import annotations

from typing import Any

import pytest

from minerguard.config import PrometheusSettings
from minerguard.domain import cost, foothold, promql, related
from minerguard.domain.workload import workload_from_pod

pytestmark = pytest.mark.unit

WALLET = "4" + "A" * 94


def pod(name: str = "miner-7d9f-abcde", namespace: str = "tenant", **spec: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "metadata": {
            "name": name,
            "namespace": namespace,
            "uid": f"uid-{name}",
            "creationTimestamp": "2026-12-02T05:00:00Z",
            "labels": {"pod-template-hash": "7d9f"},
            "ownerReferences": [{"kind": "ReplicaSet", "name": "miner-7d9f", "controller": True, "uid": "rs"}],
            "managedFields": [{"manager": "kube-controller-manager"}, {"manager": "kube-controller-manager"}],
        },
        "spec": {
            "nodeName": "node-1",
            "serviceAccountName": "builder",
            "containers": [
                {
                    "name": "worker",
                    "image": "ghcr.io/evil/xmrig:6.21",
                    "args": ["-o", "stratum+tcp://pool.supportxmr.com:3333", "-u", WALLET],
                    "securityContext": {"privileged": True, "capabilities": {"add": ["SYS_ADMIN", "NET_RAW"]}},
                }
            ],
            "volumes": [
                {"name": "root", "hostPath": {"path": "/"}},
                {"name": "kube-api-access", "projected": {"sources": [{"serviceAccountToken": {"path": "token"}}]}},
            ],
            "hostPID": True,
            **spec,
        },
        "status": {"containerStatuses": [{"name": "worker", "imageID": "ghcr.io/evil/xmrig@sha256:" + "ab" * 32}]},
    }
    return body


def owners() -> list[dict[str, Any]]:
    rs = {
        "kind": "ReplicaSet",
        "metadata": {
            "name": "miner-7d9f",
            "uid": "rs",
            "creationTimestamp": "2026-12-02T04:59:59Z",
            "managedFields": [{"manager": "kube-controller-manager"}],
            "ownerReferences": [{"kind": "Deployment", "name": "miner", "controller": True}],
        },
    }
    deployment = {
        "kind": "Deployment",
        "metadata": {
            "name": "miner",
            "uid": "dep",
            "creationTimestamp": "2026-12-02T04:59:58Z",
            "annotations": {
                foothold.CREATED_BY_ANNOTATION: "tenant-admin",
                foothold.CREATED_BY_GROUPS_ANNOTATION: "system:authenticated,tenants",
            },
            "managedFields": [{"manager": "kubectl-create"}, {"manager": "kube-controller-manager"}],
        },
    }
    return [rs, deployment]


def answers(*yes: str) -> list[tuple[foothold.Access, bool | None]]:
    return [(a, a.can in yes) for a in foothold.DANGEROUS_ACCESS]


def test_foothold_names_the_chain_the_managers_the_creator_and_the_reach() -> None:
    record = foothold.build(pod(), owners(), answers("read Secrets"), "2026-12-02T05:00:03Z")
    chain = record["ownerChain"]
    assert [(c["kind"], c["name"]) for c in chain] == [
        ("Pod", "miner-7d9f-abcde"),
        ("ReplicaSet", "miner-7d9f"),
        ("Deployment", "miner"),
    ]
    assert chain[0]["managers"] == ["kube-controller-manager"]
    assert chain[2]["managers"] == ["kubectl-create", "kube-controller-manager"]
    assert chain[2]["created"] == "2026-12-02T04:59:58Z"
    assert foothold.link({"metadata": {"creationTimestamp": "2026-12-02T04:59:58+00:00"}})["created"].endswith(":58Z")
    assert foothold.with_node({"where": {"node": ""}, "x": 1}, "n1") == {"where": {"node": "n1"}, "x": 1}
    assert record["creator"] == {"username": "tenant-admin", "groups": ["system:authenticated", "tenants"]}
    account = record["serviceAccount"]
    assert account["name"] == "builder" and account["namespace"] == "tenant"
    table = {r["can"]: r["allowed"] for r in account["reach"]}
    assert table["read Secrets"] == "yes" and table["create DaemonSets cluster-wide"] == "no"
    assert len(table) == len(foothold.DANGEROUS_ACCESS)
    assert record["summary"].startswith("tenant-admin via Deployment/miner; sa builder can read Secrets")


def test_host_exposure_and_where() -> None:
    record = foothold.build(pod(), [], answers(), "t")
    assert record["host"] == {
        "privileged": True,
        "hostPID": True,
        "hostIPC": False,
        "hostNetwork": False,
        "hostPaths": ["/"],
        "capabilities": ["SYS_ADMIN", "NET_RAW"],
        "automountServiceAccountToken": True,
    }
    where = record["where"]
    assert where["node"] == "node-1" and where["detected"] == "t" and where["created"] == "2026-12-02T05:00:00Z"
    assert where["images"] == [
        {
            "container": "worker",
            "image": "ghcr.io/evil/xmrig:6.21",
            "registry": "ghcr.io",
            "digest": "sha256:" + "ab" * 32,
        }
    ]
    assert "creator" not in record  # no stamp on the pod, which is its own top
    assert "hostPath:/" in record["summary"] and "(none of the dangerous verbs)" in record["summary"]


def test_a_plain_pod_without_token_and_hostile_fields() -> None:
    body = {"metadata": {"name": "p", "ownerReferences": "junk", "managedFields": [1, {"manager": 2}]}, "spec": []}
    record = foothold.build(body, [], [(foothold.DANGEROUS_ACCESS[0], None)], "t")
    assert record["ownerChain"] == [{"kind": "Pod", "name": "p", "managers": []}]
    assert record["serviceAccount"]["name"] == "default"
    assert record["serviceAccount"]["reach"][0]["allowed"] == "unknown"
    assert record["host"]["automountServiceAccountToken"] is False
    assert foothold.controller_of(body) is None


def test_access_attributes_are_namespaced_or_cluster_wide() -> None:
    by_can = {a.can: a for a in foothold.DANGEROUS_ACCESS}
    assert by_can["read Secrets"].attributes("ns") == {
        "verb": "get",
        "group": "",
        "resource": "secrets",
        "namespace": "ns",
    }
    assert "namespace" not in by_can["patch Nodes"].attributes("ns")
    assert by_can["exec into Pods"].attributes("ns")["subresource"] == "exec"
    assert foothold.service_account_user("ns", "sa") == "system:serviceaccount:ns:sa"


@pytest.mark.parametrize(
    ("image", "host", "repo"),
    [
        ("alpine", "docker.io", "docker.io/library/alpine"),
        ("alpine:3.20", "docker.io", "docker.io/library/alpine"),
        ("xmrig/xmrig@sha256:abc", "docker.io", "docker.io/xmrig/xmrig"),
        ("ghcr.io/evil/xmrig:6.21", "ghcr.io", "ghcr.io/evil/xmrig"),
        ("localhost:5000/m:1", "localhost:5000", "localhost:5000/m"),
    ],
)
def test_image_references(image: str, host: str, repo: str) -> None:
    assert foothold.registry_host(image) == host
    assert foothold.repository(image) == repo


def test_the_meter_adds_usage_times_time_and_caps_a_gap() -> None:
    m = cost.Meter(0.0, 100.0)
    m = m.accrue(2.0, 110.0, interval=5.0)  # 10 s at 2 cores
    assert m.core_seconds == pytest.approx(20.0)
    m = m.accrue(1.0, 1000.0, interval=5.0)  # an outage of 890 s counts 3 cycles
    assert m.core_seconds == pytest.approx(35.0) and m.sampled == 1000.0
    assert m.accrue(-1.0, 1010.0, 5.0).core_seconds == pytest.approx(35.0)
    assert m.accrue(1.0, 900.0, 5.0).core_seconds == pytest.approx(35.0)  # a clock going back adds nothing


def test_the_bill_in_money() -> None:
    assert cost.DEFAULT_PRICE_PER_CORE_HOUR == pytest.approx(130 / 730 / 4, abs=1e-4)
    rec = cost.record(cost.Meter(7200.0, 0), 0.05, "USD", "s", "l", 1.5)
    assert rec["estimate"] == "0.1000 USD" and rec["cpuCoreSeconds"] == 7200.0 and rec["currentCores"] == 1.5
    assert cost.worth_writing(None, rec)
    assert not cost.worth_writing(rec, {**rec, "cpuCoreSeconds": 7200.4})
    assert cost.worth_writing(rec, {**rec, "cpuCoreSeconds": 7201.0})
    assert cost.worth_writing(rec, {**rec, "currentCores": 0})


def test_counted_pods_and_usage() -> None:
    incident = {"status": {"pods": [{"name": "a", "state": "Contained"}, {"name": "b", "state": "Deleted"}]}}
    assert cost.counted_pods(incident) == ["a"]
    assert cost.usage_of("ns", ["a", "c"], {("ns", "a"): 1.5, ("other", "c"): 9}) == 1.5


def test_one_usage_query_for_every_open_namespace() -> None:
    q = promql.pod_usage_query(PrometheusSettings(rate_window="10s"), ["b", "a", "a"])
    assert q.promql.startswith("sum by (namespace, pod) (rate(container_cpu_usage_seconds_total{")
    assert 'job="kubelet"' in q.promql and 'namespace=~"a|b"' in q.promql and q.promql.endswith("[10s]))")
    assert q.keys == ("namespace", "pod")


EVIDENCE = [
    {"signal": "wallet", "value": "4AAAAAAA…AAAAAA"},
    {"signal": "poolEndpoint", "value": "stratum+tcp://pool.supportxmr.com:3333"},
    {"signal": "image", "value": "ghcr.io/evil/xmrig:6.21"},
]


def view(name: str, namespace: str, image: str = "alpine:3.20", args: list[str] | None = None, **meta: Any):  # type: ignore[no-untyped-def]
    body = {
        "metadata": {"name": name, "namespace": namespace, **meta},
        "spec": {"containers": [{"name": "c", "image": image, "args": args or []}], "serviceAccountName": "builder"},
    }
    return workload_from_pod(body)


def test_related_by_wallet_pool_image_account_and_creator_capped_and_counted() -> None:
    own = workload_from_pod(pod())
    ind = related.indicators(own, EVIDENCE, "builder", ["tenant-admin"])
    assert ind.wallets == {WALLET} and ind.pool_hosts == {"pool.supportxmr.com"}
    assert ind.repositories == {"ghcr.io/evil/xmrig"} and ind.digests == {"sha256:" + "ab" * 32}
    assert ind.service_account == "tenant/builder"
    candidates = [
        own,  # its own workload: never related to itself
        view("other-wallet", "second", args=["--user", WALLET]),
        view("other-pool", "third", args=["pool.supportxmr.com:443"]),
        view("same-image", "fourth", image="ghcr.io/evil/xmrig:latest"),
        view("same-account", "tenant"),
        view("stamped", "fifth", annotations={foothold.CREATED_BY_ANNOTATION: "tenant-admin"}),
        view("benign", "sixth", args=["nginx"]),  # alpine base image and its own namespace's account: nothing shared
    ]
    items, count = related.find(ind, ("tenant", "Deployment", "miner"), candidates)
    found = {(i["namespace"], i["name"]): i["shares"] for i in items}
    assert count == 5 and len(items) == 5
    assert found[("second", "other-wallet")] == ["wallet 4AAAAAAA…AAAAAA"]
    assert found[("third", "other-pool")] == ["pool host pool.supportxmr.com"]
    assert found[("fourth", "same-image")] == ["image ghcr.io/evil/xmrig"]
    assert found[("tenant", "same-account")] == ["ServiceAccount tenant/builder"]
    assert found[("fifth", "stamped")] == ["creator tenant-admin"]
    capped, total = related.find(ind, ("tenant", "Deployment", "miner"), candidates, cap=2)
    assert len(capped) == 2 and total == 5
    assert related.names(capped)[0].startswith("Pod ")


def test_the_default_account_and_an_empty_indicator_set_relate_nothing() -> None:
    own = view("lonely", "ns")
    ind = related.indicators(own, [], "default", [])
    assert not ind
    assert related.find(ind, ("ns", "Pod", "lonely"), [view("x", "ns")]) == ([], 0)


def test_a_deployments_pods_group_under_it() -> None:
    wl = workload_from_pod(pod())
    assert related.workload_of(wl) == ("Deployment", "miner")
    assert related.workload_of(view("bare", "ns")) == ("Pod", "bare")
