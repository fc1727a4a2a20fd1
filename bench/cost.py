"""What the operator costs the cluster at steady state (issue #16, item 6).

* **API requests per second**, counted by the kube-apiserver itself. ``apiserver_request_total`` has
  no user-agent or client label (the ``client`` label went with ``apiserver_request_count``), so the
  benchmark gives the operator an identity of its own: a ServiceAccount bound to ``cluster-admin``
  (what the bench's admin certificate could do) and a FlowSchema that names it, in API Priority and
  Fairness' ``exempt`` priority level (no queuing, as for the admin certificate it replaces). The
  apiserver then counts the operator's requests apart in
  ``apiserver_flowcontrol_dispatched_requests_total{flow_schema="mgbench-operator"}``; the
  operator's own ``minerguard_api_calls_total`` over the same window splits them by verb and
  resource, and ``apiserver_request_total`` gives every client's rate for scale.
* **Prometheus query load per cycle**: queries per cycle and query time from the operator's own
  metrics; samples read, by replaying the cycle's queries (the podCpu query from the metric
  incident's evidence, the canary's bill query rebuilt for the open incidents' namespaces) with
  Prometheus' ``stats=all``, which reports ``totalQueryableSamples`` per query.
"""

from __future__ import annotations

import json
import time
import urllib.parse
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml
from kubernetes import client
from kubernetes.client.rest import ApiException
from prometheus_client.parser import text_string_to_metric_families

NAMESPACE = "minerguard-system"
IDENTITY = "mgbench-operator"
USER = f"system:serviceaccount:{NAMESPACE}:{IDENTITY}"


def _exists_ok(call: Any, *args: Any) -> None:
    try:
        call(*args)
    except ApiException as exc:
        if exc.status != 409:
            raise


def operator_kubeconfig(api: client.ApiClient, admin_kubeconfig: Path, out: Path) -> Path:
    """A kubeconfig for the operator as ServiceAccount ``mgbench-operator`` (cluster-admin), counted apart by
    the apiserver through a FlowSchema of its own in the ``exempt`` priority level."""
    core, rbac = client.CoreV1Api(api), client.RbacAuthorizationV1Api(api)
    _exists_ok(core.create_namespace, {"metadata": {"name": NAMESPACE}})
    _exists_ok(core.create_namespaced_service_account, NAMESPACE, {"metadata": {"name": IDENTITY}})
    binding = {
        "metadata": {"name": IDENTITY},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "cluster-admin"},
        "subjects": [{"kind": "ServiceAccount", "name": IDENTITY, "namespace": NAMESPACE}],
    }
    _exists_ok(rbac.create_cluster_role_binding, binding)
    flow = {
        "apiVersion": "flowcontrol.apiserver.k8s.io/v1",
        "kind": "FlowSchema",
        "metadata": {"name": IDENTITY},
        "spec": {
            "matchingPrecedence": 100,
            "priorityLevelConfiguration": {"name": "exempt"},
            "rules": [
                {
                    "subjects": [
                        {"kind": "ServiceAccount", "serviceAccount": {"name": IDENTITY, "namespace": NAMESPACE}}
                    ],
                    "resourceRules": [
                        {
                            "verbs": ["*"],
                            "apiGroups": ["*"],
                            "resources": ["*"],
                            "namespaces": ["*"],
                            "clusterScope": True,
                        }
                    ],
                    "nonResourceRules": [{"verbs": ["*"], "nonResourceURLs": ["*"]}],
                }
            ],
        },
    }
    _exists_ok(
        client.CustomObjectsApi(api).create_cluster_custom_object,
        "flowcontrol.apiserver.k8s.io",
        "v1",
        "flowschemas",
        flow,
    )
    request = {"spec": {"audiences": [], "expirationSeconds": 6 * 3600}}
    token = core.create_namespaced_service_account_token(IDENTITY, NAMESPACE, request).status.token
    admin = yaml.safe_load(admin_kubeconfig.read_text())
    cluster = admin["clusters"][0]
    out.write_text(
        yaml.safe_dump(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "clusters": [cluster],
                "users": [{"name": IDENTITY, "user": {"token": token}}],
                "contexts": [{"name": IDENTITY, "context": {"cluster": cluster["name"], "user": IDENTITY}}],
                "current-context": IDENTITY,
            }
        )
    )
    out.chmod(0o600)
    return out


def apiserver_counts(metrics_text: str) -> dict[str, Any]:
    """From the apiserver's /metrics: every request by verb, and the operator's flow schema's dispatches."""
    total: dict[str, float] = {}
    flows: dict[str, float] = {}
    for family in text_string_to_metric_families(metrics_text):
        for s in family.samples:
            if s.name == "apiserver_request_total":
                key = s.labels.get("verb", "")
                total[key] = total.get(key, 0.0) + s.value
            elif s.name == "apiserver_flowcontrol_dispatched_requests_total":
                key = s.labels.get("flow_schema", "")
                flows[key] = flows.get(key, 0.0) + s.value
    return {"requests_by_verb": total, "dispatched_by_flow_schema": flows}


def _delta(a: dict[str, float], b: dict[str, float]) -> dict[str, float]:
    return {k: round(v - a.get(k, 0.0), 3) for k, v in b.items() if v - a.get(k, 0.0) > 0}


def api_rates(before: dict[str, Any], after: dict[str, Any], seconds: float) -> dict[str, Any]:
    """Requests per second in the window: the operator's (its flow schema), every client's, by verb."""
    verbs = _delta(before["requests_by_verb"], after["requests_by_verb"])
    flows = _delta(before["dispatched_by_flow_schema"], after["dispatched_by_flow_schema"])
    ours = flows.get(IDENTITY)
    return {
        "window_s": round(seconds, 1),
        "operator_requests": ours or 0.0,
        "operator_requests_per_s": round((ours or 0.0) / seconds, 3),
        "operator_flow_schema_seen": IDENTITY in after["dispatched_by_flow_schema"],
        "all_clients_requests_per_s": round(sum(verbs.values()) / seconds, 2),
        "all_clients_by_verb": verbs,
        "by_flow_schema_per_s": {k: round(v / seconds, 3) for k, v in sorted(flows.items())},
    }


def query_stats(prometheus_url: str, promql: str) -> dict[str, Any]:
    """Samples read and evaluation time of one instant query, from Prometheus' own ``stats=all``."""
    data = urllib.parse.urlencode({"query": promql, "stats": "all"}).encode()
    req = urllib.request.Request(f"{prometheus_url}/api/v1/query", data=data, method="POST")  # noqa: S310
    with urllib.request.urlopen(req, timeout=60) as r:  # noqa: S310 - loopback
        body = json.loads(r.read())
    stats = (body.get("data") or {}).get("stats") or {}
    samples = stats.get("samples") or {}
    return {
        "series_returned": len((body.get("data") or {}).get("result") or []),
        "samples": samples.get("totalQueryableSamples"),
        "peak_samples": samples.get("peakSamples"),
        "eval_s": (stats.get("timings") or {}).get("evalTotalTime"),
    }


def cycle_queries(custom: client.CustomObjectsApi, group: str, version: str) -> dict[str, str]:
    """The queries of one metric cycle: podCpu as the operator sent it (a metric incident's evidence), and the
    canary's bill query for the open incidents' namespaces, rebuilt with the operator's own code."""
    from minerguard.config import PrometheusSettings
    from minerguard.domain.promql import pod_usage_query

    incidents = custom.list_cluster_custom_object(group, version, "minerincidents").get("items") or []
    out: dict[str, str] = {}
    namespaces = set()
    for inc in incidents:
        status = inc.get("status") or {}
        if status.get("state") not in ("Released", "Ended"):
            namespaces.add(inc["metadata"]["namespace"])
        for e in status.get("evidence") or []:
            if e.get("signal") == "podCpu" and e.get("query"):
                out.setdefault("podCpu", e["query"])
    if namespaces:
        settings = PrometheusSettings(container_metrics_path="/metrics/resource")  # as bench/procs.py sets it
        out["podUsage"] = pod_usage_query(settings, namespaces).promql
    return out


def prometheus_load(prometheus_url: str, queries: dict[str, str]) -> dict[str, Any]:
    per_query = {}
    for signal, promql in queries.items():
        try:
            per_query[signal] = query_stats(prometheus_url, promql)
        except OSError as exc:
            per_query[signal] = {"error": str(exc)}
    samples = [q.get("samples") for q in per_query.values()]
    return {
        "queries": per_query,
        "samples_per_cycle": sum(s for s in samples if isinstance(s, int)) if samples else None,
    }


def _metric_delta(m0: Any, m1: Any, name: str, label: str | None = None) -> Any:
    if label is None:
        return (m1.total(name) or 0.0) - (m0.total(name) or 0.0)
    before = m0.by_label(name, label)
    return {k: v - before.get(k, 0.0) for k, v in m1.by_label(name, label).items() if v - before.get(k, 0.0) > 0}


def steady_window(
    apiserver_metrics: Callable[[], str], operator_metrics: Callable[[], Any], seconds: float
) -> dict[str, Any]:
    """Scrape the apiserver's and the operator's /metrics, wait ``seconds``, scrape again: the rates in between."""
    a0, m0, t0 = apiserver_counts(apiserver_metrics()), operator_metrics(), time.monotonic()
    time.sleep(seconds)
    a1, m1 = apiserver_counts(apiserver_metrics()), operator_metrics()
    elapsed = time.monotonic() - t0
    out = api_rates(a0, a1, elapsed)
    own = m1.samples.get("minerguard_api_calls_total", [])
    start = {
        (lb.get("verb", ""), lb.get("resource", "")): v for lb, v in m0.samples.get("minerguard_api_calls_total", [])
    }
    calls = {
        f"{lb.get('verb', '')} {lb.get('resource', '')}": round(
            (v - start.get((lb.get("verb", ""), lb.get("resource", "")), 0.0)) / elapsed, 3
        )
        for lb, v in own
        if v > start.get((lb.get("verb", ""), lb.get("resource", "")), 0.0)
    }
    out["operator_own_count_per_s"] = round(sum(calls.values()), 3)
    out["operator_own_count_by_call_per_s"] = dict(sorted(calls.items()))
    cycles = _metric_delta(m0, m1, "minerguard_promql_cycle_seconds_count")
    queries = _metric_delta(m0, m1, "minerguard_promql_queries_total", "signal")
    out["metric_cycles"] = round(cycles, 1)
    out["metric_cycle_interval_s"] = round(elapsed / cycles, 1) if cycles else None
    out["promql_queries_per_cycle_by_signal"] = {k: round(v / cycles, 2) for k, v in queries.items()} if cycles else {}
    seconds_sum = _metric_delta(m0, m1, "minerguard_promql_cycle_seconds_sum")
    out["promql_cycle_seconds"] = round(seconds_sum / cycles, 3) if cycles else None
    return out


def report_lines(c: dict[str, Any]) -> list[str]:
    """The "what it costs the cluster" section of the printed report."""
    if not c.get("available", True):
        return ["", f"What it costs the cluster: not available ({c.get('reason')})"]
    prom = c.get("prometheus") or {}
    per_query = ", ".join(
        f"{k} {q.get('samples')} samples / {q.get('series_returned')} series"
        for k, q in (prom.get("queries") or {}).items()
    )
    seen = "" if c.get("operator_flow_schema_seen") else " (flow schema NOT seen: the figure is not the apiserver's)"
    return [
        "",
        f"What it costs the cluster (steady state, {c['window_s']:.0f} s, {c.get('pods')} pods, "
        f"{c.get('contained_pods')} contained)",
        f"  API requests/s by the operator, apiserver's count (APF flow schema {IDENTITY}): "
        f"{c['operator_requests_per_s']}{seen}; its own count: {c['operator_own_count_per_s']} "
        f"{c['operator_own_count_by_call_per_s']}",
        f"  API requests/s by every client: {c['all_clients_requests_per_s']} {c['all_clients_by_verb']}",
        f"  Prometheus: a cycle every {c.get('metric_cycle_interval_s')} s, queries per cycle "
        f"{c.get('promql_queries_per_cycle_by_signal')}, {c.get('promql_cycle_seconds')} s of query time per cycle; "
        f"samples per cycle {prom.get('samples_per_cycle')} ({per_query})",
    ]
