"""CPU-saturation signals through a real Prometheus scraping KWOK's simulated kubelets, and node containment.

KWOK turns the pod annotation ``kwok.x-k8s.io/usage-cpu`` into ``container_cpu_usage_seconds_total``
and the node annotations ``sim.minerguard.io/host-cpu{,-since}`` into CPU on the node that no pod
accounts for; Prometheus scrapes them every 2 seconds; the operator queries Prometheus every 2 seconds
(one test runs it with the default metric settings, which it sizes from the window and the scrape).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest
from kubernetes import client
from prometheus_api_client import PrometheusConnect

from tests.e2e.helpers import cluster_component, consistently, eventually, kubectl
from tests.e2e.objects import GROUP, VERSION, incident_in_state, miner_pod, quarantined, reasons
from tests.e2e.operator_proc import OperatorProcess

WINDOW = "20s"


def cpu_pod(name: str, usage: str, limit: str = "1") -> client.V1Pod:
    return client.V1Pod(
        metadata=client.V1ObjectMeta(name=name, labels={"app": name}, annotations={"kwok.x-k8s.io/usage-cpu": usage}),
        spec=client.V1PodSpec(
            containers=[
                client.V1Container(
                    name="main",
                    image="python:3.12",
                    command=["python", "train.py"],
                    resources=client.V1ResourceRequirements(limits={"cpu": limit}, requests={"cpu": "100m"}),
                )
            ]
        ),
    )


def pod_cpu_spec(namespace: str) -> dict[str, Any]:
    return {
        "mode": "Enforce",
        "scope": {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": namespace}}},
        "signals": {"cpu": {"pod": {"threshold": 0.9, "window": WINDOW, "relativeTo": "Limit", "strength": "Strong"}}},
        "actions": [{"name": "quarantine"}],
    }


def policy_conditions(custom: client.CustomObjectsApi, name: str) -> dict[str, dict[str, Any]]:
    obj = custom.get_cluster_custom_object(GROUP, VERSION, "minerpolicies", name)
    return {c["type"]: c for c in (obj.get("status") or {}).get("conditions") or []}


def test_pod_at_its_limit_for_the_window_is_contained_and_a_spike_is_not(
    operator: OperatorProcess,
    core: client.CoreV1Api,
    custom: client.CustomObjectsApi,
    namespace: str,
    make_policy: Any,
) -> None:
    policy = make_policy(namespace, spec=pod_cpu_spec(namespace))
    core.create_namespaced_pod(namespace, cpu_pod("saturated", "1"))
    core.create_namespaced_pod(namespace, cpu_pod("spiky", "1"))
    eventually(lambda: core.read_namespaced_pod("spiky", namespace).status.phase == "Running", 30, "spiky Running")
    # A brief spike: the usage falls back right away, well before the window has passed (waiting for the other
    # pod first could take longer than the window on a loaded machine, and the spike would then be sustained).
    kubectl("annotate", "--overwrite", "pod", "spiky", "-n", namespace, "kwok.x-k8s.io/usage-cpu=50m")
    eventually(lambda: core.read_namespaced_pod("saturated", namespace).status.phase == "Running", 30, "Running")

    eventually(lambda: quarantined(core, namespace, "saturated"), 90, "the saturated pod contained (window + cycle)")
    incident = eventually(lambda: incident_in_state(custom, namespace, "Contained"), 30, "its incident")
    evidence = next(e for e in incident["status"]["evidence"] if e["signal"] == "podCpu")
    assert evidence["window"] == WINDOW and float(evidence["value"]) >= 0.9
    assert "container_cpu_usage_seconds_total" in evidence["query"] and evidence["policy"] == policy
    assert "MinerDetected" in reasons(core, namespace, "saturated")
    consistently(lambda: not quarantined(core, namespace, "spiky"), 25, "the pod that spiked briefly stays free")
    assert policy_conditions(custom, policy)["MetricsAvailable"]["status"] == "True"


def test_with_the_default_metric_settings_a_saturated_pod_is_contained(
    operator: OperatorProcess,
    core: client.CoreV1Api,
    custom: client.CustomObjectsApi,
    namespace: str,
    make_policy: Any,
) -> None:
    """No MINERGUARD_METRICS_INTERVAL or MINERGUARD_RATE_WINDOW: the operator sizes its rate window and cycle
    from the policy's window and the scrape interval it reads from Prometheus' targets (2 s here)."""
    operator.stop()  # only this one acts meanwhile
    proc = OperatorProcess("metrics-defaults", {"MINERGUARD_METRICS_INTERVAL": "", "MINERGUARD_RATE_WINDOW": ""})
    proc.start()
    try:
        policy = make_policy(namespace, spec=pod_cpu_spec(namespace))
        core.create_namespaced_pod(namespace, cpu_pod("saturated", "1"))
        eventually(lambda: quarantined(core, namespace, "saturated"), 120, "the saturated pod contained")
        incident = eventually(lambda: incident_in_state(custom, namespace, "Contained"), 30, "its incident")
        evidence = next(e for e in incident["status"]["evidence"] if e["signal"] == "podCpu")
        assert evidence["window"] == WINDOW and evidence["policy"] == policy
        assert "[10s]" in evidence["query"]  # half the 20 s window (4 scrapes of 2 s fit), not the 1m default
        assert "scrape interval 2s (from Prometheus)" in proc.log_path.read_text()
    finally:
        proc.stop()
        operator.start()


@pytest.fixture
def host_miner_nodes(core: client.CoreV1Api, custom: client.CustomObjectsApi, prometheus_url: str) -> Iterator[Any]:
    """Sets simulated host-process CPU on nodes; before and after, every worker node is reset to plain.

    Reset means: no simulated host CPU, no minerguard cordon or records, no node incidents, and a whole
    window of clean samples in Prometheus (so no earlier run's CPU is still inside the sliding window).
    """
    workers = [n.metadata.name for n in core.list_node().items if n.metadata.name.startswith("kwok-node-")]
    prom = PrometheusConnect(url=prometheus_url, disable_ssl=True)
    unaccounted = (
        "max_over_time((sum by (node) (rate(node_cpu_usage_seconds_total[10s])) - (sum by (node) "
        '(rate(container_cpu_usage_seconds_total{container!=""}[10s])) or sum by (node) '
        f"(rate(node_cpu_usage_seconds_total[10s])) * 0))[{WINDOW}:1s])"
    )

    def reset(nodes: list[str]) -> None:
        for node in nodes:
            kubectl(
                "annotate",
                "node",
                node,
                "sim.minerguard.io/host-cpu-",
                "sim.minerguard.io/host-cpu-since-",
                "minerguard.io/cordoned-",
                "minerguard.io/node-action-at-",
                "minerguard.io/policy-",
                check=False,
            )
            kubectl("uncordon", node, check=False)
        kubectl("delete", "minerincidents", "-n", "minerguard-system", "--all", check=False)
        eventually(
            lambda: all(float(r["value"][1]) < 0.5 for r in prom.custom_query(unaccounted)),
            90,
            "a clean window of node CPU in Prometheus",
            interval=1.0,
        )

    reset(workers)
    touched: list[str] = []

    def burn(node: str, cores: str) -> None:
        touched.append(node)
        kubectl(
            "annotate",
            "--overwrite",
            "node",
            node,
            f"sim.minerguard.io/host-cpu={cores}",
            f"sim.minerguard.io/host-cpu-since={int(time.time())}",
        )

    yield burn
    reset(workers)


def test_unaccounted_node_cpu_cordons_one_node_and_the_guard_holds_back_the_next(
    operator: OperatorProcess,
    core: client.CoreV1Api,
    custom: client.CustomObjectsApi,
    make_policy: Any,
    host_miner_nodes: Any,
) -> None:
    spec = {
        "mode": "Enforce",
        "signals": {"cpu": {"unaccounted": {"cores": 1.5, "window": WINDOW, "strength": "Strong"}}},
        "actions": [{"name": "cordon"}],
    }
    policy = make_policy("nodes", spec=spec)
    host_miner_nodes("kwok-node-1", "3")

    def node_incident(node: str, state: str) -> dict[str, Any] | None:
        try:
            obj = custom.get_namespaced_custom_object(
                GROUP, VERSION, "minerguard-system", "minerincidents", f"node-{node}"
            )
        except client.ApiException:
            return None
        return obj if (obj.get("status") or {}).get("state") == state else None

    first = eventually(lambda: node_incident("kwok-node-1", "Contained"), 90, "kwok-node-1 cordoned")
    assert core.read_node("kwok-node-1").spec.unschedulable is True
    assert first["spec"]["workload"]["kind"] == "Node" and first["spec"]["policy"] == policy
    assert any(e["signal"] == "nodeUnaccountedCpu" for e in first["status"]["evidence"])
    node_events = core.list_namespaced_event("default", field_selector="involvedObject.name=kwok-node-1").items
    assert any(e.reason == "NodeCordoned" and policy in e.message for e in node_events)

    # With 3 worker nodes the default guards allow one node held at a time: the second is held back.
    host_miner_nodes("kwok-node-2", "3")
    second = eventually(lambda: node_incident("kwok-node-2", "PartiallyContained"), 90, "kwok-node-2 held back")
    held = [a for a in second["status"]["actions"] if a["action"] == "cordon"]
    assert held and held[-1]["result"] == "Suppressed" and "MaxNodes" in held[-1]["message"]
    assert not core.read_node("kwok-node-2").spec.unschedulable
    events = core.list_namespaced_event("default", field_selector="involvedObject.name=kwok-node-2").items
    mine = [e for e in events if e.reason == "ContainmentSuppressed" and policy in (e.message or "")]
    assert len(mine) == 1, [e.message for e in mine]

    # Release uncordons what minerguard cordoned; an administrator's cordon elsewhere stays.
    kubectl("cordon", "kwok-node-0")
    try:
        kubectl(
            "patch",
            "minerincident",
            "node-kwok-node-1",
            "-n",
            "minerguard-system",
            "--type",
            "merge",
            "-p",
            '{"spec": {"release": true}}',
        )
        eventually(lambda: node_incident("kwok-node-1", "Released"), 30, "the node incident released")
        eventually(lambda: not core.read_node("kwok-node-1").spec.unschedulable, 30, "kwok-node-1 uncordoned")
        assert core.read_node("kwok-node-0").spec.unschedulable is True
    finally:
        kubectl("uncordon", "kwok-node-0")
        for node in ("kwok-node-1", "kwok-node-2"):
            try:
                custom.delete_namespaced_custom_object(
                    GROUP, VERSION, "minerguard-system", "minerincidents", f"node-{node}"
                )
            except client.ApiException:
                pass


def test_prometheus_outage_keeps_spec_detection_and_sets_the_condition(
    operator: OperatorProcess,
    core: client.CoreV1Api,
    custom: client.CustomObjectsApi,
    namespace: str,
    make_policy: Any,
) -> None:
    cpu_policy = make_policy(namespace, spec=pod_cpu_spec(namespace))
    make_policy(namespace)  # spec signals: processes and stratum URLs
    eventually(
        lambda: policy_conditions(custom, cpu_policy).get("MetricsAvailable", {}).get("status") == "True",
        30,
        "MetricsAvailable=True before the outage",
    )
    cluster_component("stop", "prometheus")
    try:
        cond = eventually(
            lambda: (
                (c := policy_conditions(custom, cpu_policy).get("MetricsAvailable")) and c["status"] == "False" and c
            ),
            30,
            "MetricsAvailable=False during the outage",
        )
        assert cond["reason"] == "PrometheusUnavailable"
        core.create_namespaced_pod(namespace, miner_pod("miner"))
        eventually(lambda: quarantined(core, namespace, "miner"), 30, "spec detection during the outage")
    finally:
        cluster_component("start", "prometheus")
    eventually(
        lambda: policy_conditions(custom, cpu_policy)["MetricsAvailable"]["status"] == "True",
        60,
        "MetricsAvailable=True after Prometheus is back",
    )

    def reasons() -> list[str]:
        events = core.list_namespaced_event("default", field_selector=f"involvedObject.name={cpu_policy}").items
        return [e.reason for e in events]

    # The Event may land a moment after the condition (both are written by the same pass, the status first).
    eventually(lambda: "MetricsAvailable" in reasons(), 30, "a MetricsAvailable Event")
    assert reasons().count("MetricsUnavailable") == 1


def test_queries_per_cycle_do_not_grow_with_pods(
    operator: OperatorProcess,
    core: client.CoreV1Api,
    namespace: str,
    make_policy: Any,
) -> None:
    make_policy(namespace, spec=pod_cpu_spec(namespace))

    def settled_count(pods: int) -> float:
        for i in range(pods):
            core.create_namespaced_pod(namespace, cpu_pod(f"p{pods}-{i}", "10m"))
        eventually(lambda: len(core.list_namespaced_pod(namespace).items) >= pods, 60, f"{pods} pods exist")
        start = operator.metric("minerguard_promql_queries_total") or 0.0
        eventually(
            lambda: (operator.metric("minerguard_promql_queries_total") or 0) >= start + 3, 30, "a few more cycles"
        )
        value = operator.metric("minerguard_promql_cycle_queries")
        assert value is not None
        return value

    with_10 = settled_count(10)
    with_200 = settled_count(190) if with_10 else 0.0
    assert with_10 >= 1
    assert with_200 == with_10
