"""The Grafana dashboard of the chart (files/dashboards/minerguard.json) against the real Prometheus.

The chart ships it as a ConfigMap with Grafana's sidecar label, off by default. Here every PromQL
expression of every panel goes to the local cluster's Prometheus, which scrapes KWOK's simulated
kubelets and the session's operator (registered as a file-discovery target, see hack/cluster.py),
after this test had a miner detected and contained: each expression must parse (Prometheus
answers 400 bad_data otherwise) and return at least one sample. Grafana's own variables are
replaced as Grafana would replace them ($__rate_interval: four scrape intervals).
"""

from __future__ import annotations

import json
import re
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from typing import Any

import pytest
from kubernetes import client

from tests.e2e.cluster import helm_template
from tests.e2e.helpers import CLUSTER_DIR, ROOT, eventually
from tests.e2e.objects import miner_pod, quarantined
from tests.e2e.operator_proc import OperatorProcess

CHART = ROOT / "helm" / "minerguard"
DASHBOARD = CHART / "files" / "dashboards" / "minerguard.json"
RATE_INTERVAL = "8s"  # 4 x the local Prometheus' 2 s scrape interval


def expressions(dashboard: dict[str, Any]) -> list[tuple[str, str]]:
    return [(p["title"], t["expr"]) for p in dashboard["panels"] for t in p.get("targets", [])]


def render(*args: str) -> list[dict[str, Any]]:
    return helm_template(CHART, *args)


def test_dashboard_is_a_configmap_for_grafanas_sidecar_only_when_asked() -> None:
    assert not [d for d in render() if d["kind"] == "ConfigMap" and "grafana_dashboard" in d["metadata"]["labels"]]
    docs = render(
        "--set",
        "metrics.grafanaDashboard.enabled=true",
        "--set-json",
        'metrics.grafanaDashboard.annotations={"grafana_folder":"Security"}',
    )
    maps = [d for d in docs if d["kind"] == "ConfigMap" and d["metadata"]["name"] == "minerguard-dashboard"]
    assert len(maps) == 1
    cm = maps[0]
    assert cm["metadata"]["labels"]["grafana_dashboard"] == "1"
    assert cm["metadata"]["annotations"] == {"grafana_folder": "Security"}
    assert json.loads(cm["data"]["minerguard.json"]) == json.loads(DASHBOARD.read_text())
    elsewhere = render(
        "--set", "metrics.grafanaDashboard.enabled=true", "--set", "metrics.grafanaDashboard.namespace=grafana"
    )
    assert [
        d["metadata"]["namespace"]
        for d in elsewhere
        if d["kind"] == "ConfigMap" and "dashboard" in d["metadata"]["name"]
    ] == ["grafana"]


def test_dashboard_json_covers_what_an_operator_watches() -> None:
    dashboard = json.loads(DASHBOARD.read_text())
    assert dashboard["uid"] == "minerguard"
    assert [v["name"] for v in dashboard["templating"]["list"]] == ["datasource"]
    exprs = " ".join(e for _, e in expressions(dashboard))
    for metric in (
        "minerguard_detections_total",
        "minerguard_open_incidents",
        "minerguard_build_info",
        "minerguard_containment_actions_total",
        "minerguard_actions_suppressed_total",
        "minerguard_api_errors_total",
        "minerguard_promql_errors_total",
        "minerguard_evaluation_seconds_bucket",
        "node_cpu_usage_seconds_total",
    ):
        assert metric in exprs, metric
    ids = [p["id"] for p in dashboard["panels"]]
    assert len(ids) == len(set(ids))
    for panel in dashboard["panels"]:
        assert panel["datasource"] == {"type": "prometheus", "uid": "${datasource}"}, panel["title"]


@pytest.fixture
def scraped_operator(operator: OperatorProcess) -> Iterator[OperatorProcess]:
    """The session's operator as a target of the local Prometheus (job minerguard)."""
    targets = CLUSTER_DIR / "prometheus-targets"
    targets.mkdir(parents=True, exist_ok=True)
    path = targets / "session-operator.json"
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps([{"targets": [f"127.0.0.1:{operator.metrics_port}"], "labels": {"instance": "session"}}]))
    tmp.rename(path)
    yield operator
    path.unlink(missing_ok=True)


def query(prometheus: str, expr: str) -> list[dict[str, Any]]:
    url = f"{prometheus}/api/v1/query?" + urllib.parse.urlencode({"query": expr})
    try:
        with urllib.request.urlopen(url, timeout=10) as r:  # noqa: S310 - the local http Prometheus
            body = json.loads(r.read())
    except urllib.error.HTTPError as exc:
        raise AssertionError(f"Prometheus refused {expr!r}: {exc.read().decode()}") from exc
    assert body["status"] == "success", body
    return list(body["data"]["result"])


def test_every_dashboard_query_parses_and_returns_data_from_the_real_prometheus(
    scraped_operator: OperatorProcess,
    prometheus_url: str,
    make_policy: Any,
    namespace: str,
    core: client.CoreV1Api,
) -> None:
    # Something to show: a miner detected and quarantined in this test's namespace.
    make_policy(namespace)
    core.create_namespaced_pod(namespace, miner_pod("dashboard-miner"))
    eventually(lambda: quarantined(core, namespace, "dashboard-miner"), 60, "the miner quarantined")
    eventually(lambda: query(prometheus_url, 'up{job="minerguard"} == 1'), 60, "Prometheus scraping the operator")

    dashboard = json.loads(DASHBOARD.read_text())
    exprs = expressions(dashboard)
    assert len(exprs) >= 10
    for title, expr in exprs:
        concrete = expr.replace("$__rate_interval", RATE_INTERVAL)
        assert not re.search(r"\$\w", concrete), f"{title}: a Grafana variable the test does not know: {expr}"
        eventually(lambda c=concrete: query(prometheus_url, c), 60, f"{title}: a result for {concrete}")
    # The new gauges say what happened: this test's incident is open and contained, the build is announced.
    eventually(
        lambda: [
            r
            for r in query(prometheus_url, 'minerguard_open_incidents{instance="session",state="Contained"} >= 1')
            if r
        ],
        60,
        "minerguard_open_incidents counts the contained incident",
    )
    build = query(prometheus_url, 'minerguard_build_info{instance="session"}')
    assert [r["metric"]["version"] for r in build] == ["0.1.0"] and build[0]["value"][1] == "1"
