"""Real CPU: the real kubelet's /metrics/resource, scraped by Prometheus, caught by the CPU policy.

KWOK's kubelets report CPU from pod annotations; real-0's kubelet measures it (cgroup v1
``cpuacct``). Prometheus scrapes it through the apiserver's node proxy with the same ``job`` and
``metrics_path`` labels as the KWOK targets (hack/cluster.py), so the operator runs the very same
PromQL: a pod burning its whole 250m limit is contained, a pod that sleeps is not. (The threshold is
half the limit, not the pack's 90%: on a shared, loaded machine the burner does not always get its
whole limit, and a sustained signal is the minimum over the window.)
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from kubernetes import client
from prometheus_api_client import PrometheusConnect

from tests.e2e.helpers import consistently, eventually, kubectl, record
from tests.e2e.objects import incident_in_state, quarantined
from tests.e2e.operator_proc import OperatorProcess
from tests.e2e.realnode import RealNode
from tests.e2e.test_metrics import WINDOW, pod_cpu_spec

pytestmark = pytest.mark.realnode

THRESHOLD = 0.5
BURN = "while True: pass"
IDLE = "import time\nwhile True: time.sleep(1)"


def cpu_pod(node: RealNode, namespace: str, name: str, program: str) -> dict[str, Any]:
    container = {
        "name": "main",
        "command": ["python3", "-c", program],
        "resources": {"limits": {"cpu": "250m", "memory": "64Mi"}, "requests": {"cpu": "50m"}},
    }
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "namespace": namespace, "labels": {"app": name}},
        "spec": node.pod_spec([container]),
    }


def test_a_pod_burning_its_cpu_limit_on_the_real_node_is_contained_by_the_same_promql(
    operator: OperatorProcess,
    real_node: RealNode,
    core: client.CoreV1Api,
    custom: client.CustomObjectsApi,
    namespace: str,
    make_policy: Any,
    prometheus_url: str,
) -> None:
    # The KWOK test's policy, with a lower threshold: on this shared 2-core machine a pod at its limit
    # does not always get all of its 250m (load 8-10 during a full make test), and "sustained" means
    # the minimum over the window. The query and its reading are the same.
    spec = pod_cpu_spec(namespace)
    spec["signals"]["cpu"]["pod"]["threshold"] = THRESHOLD
    make_policy(namespace, spec=spec)
    docs = [cpu_pod(real_node, namespace, "burner", BURN), cpu_pod(real_node, namespace, "idler", IDLE)]
    kubectl("apply", "-f", "-", stdin="\n---\n".join(json.dumps(d) for d in docs))
    prom = PrometheusConnect(url=prometheus_url, disable_ssl=True)
    selector = (
        f'container_cpu_usage_seconds_total{{job="kubelet",metrics_path="/metrics/resource",namespace="{namespace}"}}'
    )

    def measured() -> dict[str, float] | None:
        rows = prom.custom_query(f"sum by (pod, node) (rate({selector}[10s]))")
        got = {r["metric"]["pod"]: float(r["value"][1]) for r in rows if r["metric"].get("node") == real_node.name}
        return got if {"burner", "idler"} <= set(got) else None

    rates = eventually(measured, 120, "the real kubelet's CPU series in Prometheus", interval=1.0)
    eventually(lambda: quarantined(core, namespace, "burner"), 150, "the burning pod contained (window + cycle)")
    incident = eventually(lambda: incident_in_state(custom, namespace, "Contained"), 30, "its incident")
    evidence = next(e for e in incident["status"]["evidence"] if e["signal"] == "podCpu")
    # The evidence is the usage in cores: at least the threshold's share of the 250m limit.
    assert evidence["window"] == WINDOW and float(evidence["value"]) >= THRESHOLD * 0.25
    assert 'job="kubelet"' in evidence["query"] and 'metrics_path="/metrics/resource"' in evidence["query"]
    rates = measured() or rates
    record(
        "test_a_pod_burning_its_cpu_limit_on_the_real_node_is_contained_by_the_same_promql",
        burner_cores=round(rates["burner"], 3),
        idler_cores=round(rates["idler"], 3),
        evidence_value=evidence["value"],
    )
    assert rates["burner"] > THRESHOLD * 0.25 and rates["idler"] < 0.05
    consistently(lambda: not quarantined(core, namespace, "idler"), 10, "the idle pod stays free")
