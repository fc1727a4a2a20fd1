"""What the operator costs the cluster at steady state (issue #16, item 6).

* **API requests per second**, counted by the kube-apiserver itself. ``apiserver_request_total`` has
  no user-agent or client label (the ``client`` label went with ``apiserver_request_count``), and the
  local control plane runs without API Priority and Fairness (so no per-FlowSchema counts). The
  apiserver's one per-identity counter is ``authenticated_user_requests{username}``, which keeps a
  name only for a few built-in users and folds every other into ``other`` - except names that look
  like an e-mail address, counted as ``email_id``. So the benchmark runs the operator with a client
  certificate of its own, ``CN=minerguard-operator@mgbench.local, O=system:masters`` (the same group,
  so the same rights, as the admin certificate every other bench client uses): its requests are
  exactly the apiserver's ``email_id`` count. The operator's own ``minerguard_api_calls_total`` over
  the same window splits them by verb and resource (watches are not in it), and
  ``apiserver_request_total`` gives every client's rate for scale.
* **Prometheus query load per cycle**: queries per cycle and query time from the operator's own
  metrics; samples read, by replaying the cycle's queries (the podCpu query from the metric
  incident's evidence, the canary's bill query rebuilt for the open incidents' namespaces) with
  Prometheus' ``stats=all``, which reports ``totalQueryableSamples`` per query.
"""

from __future__ import annotations

import json
import subprocess
import time
import urllib.parse
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml
from kubernetes import client
from prometheus_client.parser import text_string_to_metric_families

USER = "minerguard-operator@mgbench.local"
COUNTED_AS = "email_id"
"""How ``authenticated_user_requests`` names a user whose name contains "@" (and only such users)."""


def operator_kubeconfig(pki: Path, admin_kubeconfig: Path, out: Path) -> Path:
    """A kubeconfig for the operator with a client certificate of its own (CN ``USER``, group system:masters),
    signed by the cluster's CA, which the apiserver counts apart in ``authenticated_user_requests``."""
    key, csr, crt = (out.parent / f"operator-client.{ext}" for ext in ("key", "csr", "crt"))
    ext = out.parent / "operator-client.ext"
    ext.write_text("extendedKeyUsage=clientAuth\n")
    for args in (
        ["req", "-newkey", "rsa:2048", "-nodes", "-subj", f"/O=system:masters/CN={USER}",
         "-keyout", str(key), "-out", str(csr)],
        ["x509", "-req", "-in", str(csr), "-CA", str(pki / "ca.crt"), "-CAkey", str(pki / "ca.key"),
         "-CAcreateserial", "-days", "2", "-out", str(crt), "-extfile", str(ext)],
    ):  # fmt: skip
        subprocess.run(["openssl", *args], check=True, capture_output=True, timeout=60)
    admin = yaml.safe_load(admin_kubeconfig.read_text())
    user = {"client-certificate": str(crt), "client-key": str(key)}
    admin["users"] = [{"name": "operator", "user": user}]
    for ctx in admin.get("contexts") or []:
        ctx["context"]["user"] = "operator"
    out.write_text(yaml.safe_dump(admin))
    out.chmod(0o600)
    return out


def apiserver_counts(metrics_text: str) -> dict[str, Any]:
    """From the apiserver's /metrics: every request by verb, and authenticated requests by (folded) user name."""
    total: dict[str, float] = {}
    users: dict[str, float] = {}
    for family in text_string_to_metric_families(metrics_text):
        for s in family.samples:
            if s.name == "apiserver_request_total":
                key = s.labels.get("verb", "")
                total[key] = total.get(key, 0.0) + s.value
            elif s.name == "authenticated_user_requests_total" or s.name == "authenticated_user_requests":
                key = s.labels.get("username", "")
                users[key] = users.get(key, 0.0) + s.value
    return {"requests_by_verb": total, "by_user": users}


def _delta(a: dict[str, float], b: dict[str, float]) -> dict[str, float]:
    return {k: round(v - a.get(k, 0.0), 3) for k, v in b.items() if v - a.get(k, 0.0) > 0}


def api_rates(before: dict[str, Any], after: dict[str, Any], seconds: float) -> dict[str, Any]:
    """Requests per second in the window: the operator's (the apiserver's count of its user), every client's."""
    verbs = _delta(before["requests_by_verb"], after["requests_by_verb"])
    users = _delta(before["by_user"], after["by_user"])
    ours = users.get(COUNTED_AS)
    return {
        "window_s": round(seconds, 1),
        "operator_requests": ours or 0.0,
        "operator_requests_per_s": round((ours or 0.0) / seconds, 3),
        "operator_user_seen": COUNTED_AS in after["by_user"],
        "all_clients_requests_per_s": round(sum(verbs.values()) / seconds, 2),
        "all_clients_by_verb": verbs,
        "by_user_per_s": {k: round(v / seconds, 3) for k, v in sorted(users.items())},
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
    seen = "" if c.get("operator_user_seen") else f" ({COUNTED_AS} NOT seen: the figure is not the apiserver's)"
    return [
        "",
        f"What it costs the cluster (steady state, {c['window_s']:.0f} s, {c.get('pods')} pods, "
        f"{c.get('contained_pods')} contained)",
        f"  API requests/s by the operator, apiserver's count (authenticated_user_requests {COUNTED_AS}): "
        f"{c['operator_requests_per_s']}{seen}; its own count: {c['operator_own_count_per_s']} "
        f"{c['operator_own_count_by_call_per_s']}",
        f"  API requests/s by every client: {c['all_clients_requests_per_s']} {c['all_clients_by_verb']}",
        f"  Prometheus: a cycle every {c.get('metric_cycle_interval_s')} s, queries per cycle "
        f"{c.get('promql_queries_per_cycle_by_signal')}, {c.get('promql_cycle_seconds')} s of query time per cycle; "
        f"samples per cycle {prom.get('samples_per_cycle')} ({per_query})",
    ]
