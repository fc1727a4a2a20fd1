"""The creator stamp's admission-side cost (``bench/run.py --creator-stamp on|both``).

The chart's creator stamp is a MutatingAdmissionPolicy: the kube-apiserver writes
``minerguard.io/created-by`` into a pod (and workload objects) at CREATE, inside the create request.
That is no write by the operator, so its cost is not in the operator's figures: it is in every pod
create call. This phase measures it on the benchmark cluster after the load: benign pods created
one after another in blocks, alternately without the stamp installed and with it (off, on, off,
on, ...: alternating blocks spread any drift of a shared machine over both arms), each create
call timed by the client, and the kube-apiserver's own ``apiserver_request_duration_seconds``
for ``POST pods`` read around each block. The pods stay: the zero-writes check that follows reads
every benign pod, stamped or not.
"""

from __future__ import annotations

import os
import time
from typing import Any

import bcluster
import stats
import workloads as wl
from kubernetes import client
from prometheus_client.parser import text_string_to_metric_families

NAMESPACE = "mgb-stamp"
PODS = 200
"""Benign pods the phase creates in all (half with the stamp on)."""
BLOCKS = 4
STAMP_KEY = "minerguard.io/created-by"


def _probe_body() -> dict[str, Any]:
    return wl.benign_pod("stamp-probe", 0)


def stamp_in_force(core: client.CoreV1Api, namespace: str = NAMESPACE) -> bool:
    """Whether a pod created now would be stamped: a server-side dry run (stores nothing)."""
    pod = core.create_namespaced_pod(namespace, _probe_body(), dry_run="All", _request_timeout=30)
    return STAMP_KEY in (pod.metadata.annotations or {})


def set_stamp(
    cluster: bcluster.BenchCluster, core: client.CoreV1Api, on: bool, namespace: str = NAMESPACE, timeout: float = 60
) -> float:
    """Install (or remove) the chart's creator stamp and wait until admission does (or no longer does) it."""
    started = time.monotonic()
    manifest = cluster.creator_stamp_manifest()
    if on:
        cluster.kubectl("apply", "-f", "-", stdin=manifest)
    else:
        cluster.kubectl("delete", "--ignore-not-found", "-f", "-", stdin=manifest)
    while stamp_in_force(core, namespace) != on:
        if time.monotonic() - started > timeout:
            raise bcluster.BenchError(f"the creator stamp not {'in force' if on else 'gone'} after {timeout:.0f}s")
        time.sleep(0.3)
    return time.monotonic() - started


def _apiserver_pod_posts(cluster: bcluster.BenchCluster) -> tuple[float, float, dict[str, float]]:
    """kube-apiserver's POST pods request duration (sum, count) and any mutating-admission-policy metrics."""
    text = cluster.apiserver_get("/metrics").decode()
    total, count = 0.0, 0.0
    policy: dict[str, float] = {}
    for family in text_string_to_metric_families(text):
        if family.name == "apiserver_request_duration_seconds":
            for s in family.samples:
                lbl = s.labels
                if lbl.get("verb") == "POST" and lbl.get("resource") == "pods" and not lbl.get("subresource"):
                    if s.name.endswith("_sum"):
                        total += s.value
                    elif s.name.endswith("_count"):
                        count += s.value
        elif "mutating_admission_policy" in family.name:
            for s in family.samples:
                if s.name.endswith(("_sum", "_count", "_total")):
                    policy[s.name] = policy.get(s.name, 0.0) + s.value
    return total, count, policy


def _block(core: client.CoreV1Api, arm: str, first: int, n: int) -> list[float]:
    """Create ``n`` benign pods one after another; each create call's round trip in seconds."""
    took = []
    for i in range(first, first + n):
        body = wl.benign_pod(f"stamp-{arm}-{i:04d}", i)
        t0 = time.perf_counter()
        core.create_namespaced_pod(NAMESPACE, body, _preload_content=False, _request_timeout=30)
        took.append(time.perf_counter() - t0)
    return took


def admission_cost(
    cluster: bcluster.BenchCluster, core: client.CoreV1Api, end_on: bool, pods: int = PODS
) -> dict[str, Any]:
    """Pod create latency without and with the creator stamp, in alternating blocks; leaves it as ``end_on``."""
    per_block = max(1, pods // BLOCKS)
    client_s: dict[str, list[float]] = {"off": [], "on": []}
    server = {"off": [0.0, 0.0], "on": [0.0, 0.0]}
    policy_delta: dict[str, float] = {}
    switch_s: list[float] = []
    load = [os.getloadavg()[0]]
    for b in range(BLOCKS):
        arm = "off" if b % 2 == 0 else "on"
        switch_s.append(set_stamp(cluster, core, arm == "on"))
        s0, c0, p0 = _apiserver_pod_posts(cluster)
        client_s[arm] += _block(core, arm, b * per_block, per_block)
        s1, c1, p1 = _apiserver_pod_posts(cluster)
        server[arm][0] += s1 - s0
        server[arm][1] += c1 - c0
        if arm == "on":
            for k, v in p1.items():
                policy_delta[k] = policy_delta.get(k, 0.0) + v - p0.get(k, 0.0)
        load.append(os.getloadavg()[0])
    set_stamp(cluster, core, end_on)
    arms: dict[str, Any] = {}
    for arm in ("off", "on"):
        entry = stats.summary(client_s[arm])
        entry["server_mean_s"] = server[arm][0] / server[arm][1] if server[arm][1] else None
        entry["server_requests"] = server[arm][1]
        arms[arm] = entry
    added = {
        q: (arms["on"][q] - arms["off"][q]) if arms["on"][q] is not None and arms["off"][q] is not None else None
        for q in ("p50", "p95", "mean", "server_mean_s")
    }
    return {
        "namespace": NAMESPACE,
        "pods_per_arm": per_block * BLOCKS // 2,
        "blocks": [("off" if b % 2 == 0 else "on") for b in range(BLOCKS)],
        "create_latency_s": arms,
        "added_by_stamp_s": added,
        "mutating_admission_policy_metrics": policy_delta,
        "switch_s": [round(s, 2) for s in switch_s],
        "loadavg_1m_during": [round(x, 2) for x in load],
    }


def ms(seconds: float | None) -> str:
    """Milliseconds with one decimal (the stamp adds well under a millisecond of server time); '-' for nothing."""
    return "-" if seconds is None else f"{seconds * 1000:.1f} ms"


def report(mode: str, cost: dict[str, Any] | None, writes: dict[str, Any]) -> list[str]:
    """The report's lines for the creator stamp: zero writes with it on and off, and what admission adds."""
    by = writes.get("benign_pods_by_creator_stamp") or {}
    out = ["", f"Creator stamp (--creator-stamp {mode})"]
    for arm, title in (("stamped", "stamp ON (created-by from admission)"), ("not_stamped", "stamp OFF")):
        entry = by.get(arm) or {}
        out.append(
            f"  {title}: {entry.get('checked', 0)} benign pods, written by the operator: "
            f"{entry.get('written_by_operator', 0)} (target 0)"
        )
    if writes.get("stamp_on_pods_not_stamped"):
        out.append(f"  WARNING: {writes['stamp_on_pods_not_stamped']} pods created with the stamp on carry no stamp")
    if cost is None:
        return out
    arms, added = cost["create_latency_s"], cost["added_by_stamp_s"]
    rows = [[arm, e["n"], *(ms(e[q]) for q in ("p50", "p95", "mean", "server_mean_s"))] for arm, e in arms.items()]
    rows.append(["added", "", *(ms(added[q]) for q in ("p50", "p95", "mean", "server_mean_s"))])
    out.append(f"  pod create call, blocks {'/'.join(cost['blocks'])} (load 1m {cost['loadavg_1m_during']}):")
    out.append(stats.table(["stamp", "pods", "p50", "p95", "mean", "apiserver mean"], rows, indent="    "))
    policy = cost.get("mutating_admission_policy_metrics") or {}
    total = policy.get("apiserver_mutating_admission_policy_check_duration_seconds_sum")
    checks = policy.get("apiserver_mutating_admission_policy_check_duration_seconds_count")
    if total is not None and checks:
        out.append(f"  the policy's own evaluation (apiserver): {ms(total / checks)} mean over {checks:.0f} checks")
    return out
