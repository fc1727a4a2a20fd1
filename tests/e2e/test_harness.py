"""Smoke tests that prove the harness is a real cluster: scheduling, API objects, cordon, metrics."""

from __future__ import annotations

from typing import Any

from kubernetes import client
from prometheus_api_client import PrometheusConnect

from tests.e2e.helpers import eventually, kubectl
from tests.e2e.objects import deployment


def test_deployment_gets_running_pods_on_kwok_nodes(
    apps: client.AppsV1Api, core: client.CoreV1Api, namespace: str
) -> None:
    web = client.V1PodSpec(containers=[client.V1Container(name="web", image="nginx:1.27")])
    apps.create_namespaced_deployment(namespace, deployment("web", 2, web))

    def running_pods() -> list[client.V1Pod]:
        pods = core.list_namespaced_pod(namespace, label_selector="app=web").items
        ready = [p for p in pods if p.status.phase == "Running" and p.spec.node_name]
        return ready if len(ready) == 2 else []

    pods = eventually(running_pods, 60, "2 Running pods of the Deployment")
    assert all(p.spec.node_name.startswith("kwok-node-") for p in pods)
    owners = {p.metadata.owner_references[0].kind for p in pods}
    assert owners == {"ReplicaSet"}
    rs = apps.list_namespaced_replica_set(namespace).items
    assert len(rs) == 1 and rs[0].status.ready_replicas == 2


def test_networkpolicy_and_crd_round_trip(
    networking: client.NetworkingV1Api, custom: client.CustomObjectsApi, namespace: str
) -> None:
    networking.create_namespaced_network_policy(
        namespace,
        client.V1NetworkPolicy(
            metadata=client.V1ObjectMeta(name="deny-all"),
            spec=client.V1NetworkPolicySpec(pod_selector=client.V1LabelSelector(), policy_types=["Ingress", "Egress"]),
        ),
    )
    got = networking.read_namespaced_network_policy("deny-all", namespace)
    assert got.spec.policy_types == ["Ingress", "Egress"]
    assert got.spec.pod_selector.match_labels is None

    body: dict[str, Any] = {
        "apiVersion": "minerguard.io/v1alpha1",
        "kind": "MinerPolicy",
        "metadata": {"name": f"smoke-{namespace}"},
        "spec": {"mode": "Audit", "signals": {"processes": [{"glob": "xmrig"}]}},
    }
    custom.create_cluster_custom_object("minerguard.io", "v1alpha1", "minerpolicies", body)
    try:
        read = custom.get_cluster_custom_object("minerguard.io", "v1alpha1", "minerpolicies", f"smoke-{namespace}")
        assert read["spec"]["signals"]["processes"] == [{"glob": "xmrig"}]
    finally:
        custom.delete_cluster_custom_object("minerguard.io", "v1alpha1", "minerpolicies", f"smoke-{namespace}")


def test_cordon_is_reflected_in_unschedulable(core: client.CoreV1Api, cluster: dict[str, Any]) -> None:
    node = "kwok-node-2"
    kubectl("cordon", node)
    try:
        assert core.read_node(node).spec.unschedulable is True
    finally:
        kubectl("uncordon", node)
    assert not core.read_node(node).spec.unschedulable


def test_cpu_usage_annotation_reaches_prometheus(core: client.CoreV1Api, namespace: str, prometheus_url: str) -> None:
    core.create_namespaced_pod(
        namespace,
        client.V1Pod(
            metadata=client.V1ObjectMeta(name="busy", annotations={"kwok.x-k8s.io/usage-cpu": "1500m"}),
            spec=client.V1PodSpec(containers=[client.V1Container(name="busy", image="busybox")]),
        ),
    )
    eventually(lambda: core.read_namespaced_pod("busy", namespace).status.phase == "Running", 60, "pod Running")
    prom = PrometheusConnect(url=prometheus_url, disable_ssl=True)
    query = f'sum(rate(container_cpu_usage_seconds_total{{namespace="{namespace}",pod="busy"}}[10s]))'

    def rate() -> float | None:
        result = prom.custom_query(query)
        if not result:
            return None
        value = float(result[0]["value"][1])
        return value if abs(value - 1.5) < 0.05 else None

    value = eventually(rate, 90, f"Prometheus to report ~1.5 cores for {query}", interval=1.0)
    assert abs(value - 1.5) < 0.05


def test_kubectl_explain_describes_every_policy_field(cluster: dict[str, Any]) -> None:
    """Every field of the served MinerPolicy and MinerIncident schemas has a description for kubectl explain."""
    import yaml

    from tests.e2e.helpers import ROOT

    undocumented: list[str] = []

    def walk(schema: dict[str, Any], path: str) -> None:
        for name, sub in (schema.get("properties") or {}).items():
            here = f"{path}.{name}"
            if name not in ("apiVersion", "kind", "metadata") and not sub.get("description"):
                undocumented.append(here)
            walk(sub, here)
            walk(sub.get("items") or {}, here)

    for crd in ("minerguard.io_minerpolicies.yaml", "minerguard.io_minerincidents.yaml"):
        doc = yaml.safe_load((ROOT / "crds" / crd).read_text())
        walk(doc["spec"]["versions"][0]["schema"]["openAPIV3Schema"], doc["spec"]["names"]["kind"])
    assert undocumented == []
    out = kubectl("explain", "minerpolicy.spec.signals.pools.ports").stdout
    assert "Weak signal" in out and "port" in out
    out = kubectl("explain", "minerincident.spec.release").stdout
    assert "release" in out.lower() and "contain" in out.lower()


def test_a_second_cluster_up_reuses_the_running_one(cluster: dict[str, Any]) -> None:
    import subprocess
    import sys

    from tests.e2e.helpers import ROOT

    res = subprocess.run(
        [sys.executable, str(ROOT / "hack" / "cluster.py"), "up"], capture_output=True, text=True, timeout=120
    )
    assert res.returncode == 0
    assert "already running" in res.stderr and "reusing it" in res.stderr


def test_a_taken_port_is_a_clear_error(cluster: dict[str, Any], tmp_path: Any) -> None:
    """A second cluster in another state folder whose etcd port is taken (by the running apiserver) says so."""
    import os
    import subprocess
    import sys

    from tests.e2e.helpers import ROOT

    env = {
        **os.environ,
        "MINERGUARD_CLUSTER_DIR": str(tmp_path / "other"),
        "MINERGUARD_PORT_ETCD": str(cluster["ports"]["apiserver"]),
    }
    res = subprocess.run(
        [sys.executable, str(ROOT / "hack" / "cluster.py"), "up"], capture_output=True, text=True, env=env, timeout=120
    )
    assert res.returncode == 1
    assert f"port {cluster['ports']['apiserver']} on 127.0.0.1 (needed by etcd) is already taken" in res.stderr
    assert "MINERGUARD_PORT_ETCD" in res.stderr


def test_tool_links_resolve_to_real_binaries_even_under_makes_path(cluster: dict[str, Any]) -> None:
    """make puts the tools folder first on PATH; rebuilding must not point a link at itself."""
    import os
    import subprocess

    from tests.e2e.cluster import bindir
    from tests.e2e.helpers import ROOT

    tools = bindir()
    env = {**os.environ, "PATH": f"{tools}:{os.environ['PATH']}"}
    for _ in range(2):
        subprocess.run([str(ROOT / "hack" / "tools.sh"), "build"], env=env, check=True, capture_output=True)
    for link in tools.iterdir():
        real = os.path.realpath(link)
        assert os.path.exists(real) and not real.startswith(str(tools) + os.sep), (link, real)
