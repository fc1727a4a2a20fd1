"""A deliberately simple containment controller: the benchmark's point of comparison.

It is what one writes in an afternoon, and what minerguard's design avoids:

* it watches every pod in the cluster and, for every pod event, re-reads the pod with
  one API call ("to check") and asks Prometheus one PromQL query about that pod's CPU;
* it handles events one at a time, in one thread;
* a pod whose container runs a miner program or points at a stratum URL is labelled
  ``bench.minerguard.io/baseline-quarantined=true`` and gets its own deny-all
  NetworkPolicy ``baseline-deny-<pod>``.

It acts only in namespaces whose name starts with ``--namespace-prefix`` (the benchmark
gives it its own), but pays the per-event cost for every pod it sees, like the real thing.
Counts (events, API calls, queries, writes) are written to ``--stats`` as JSON every few
seconds and on SIGTERM.

    python bench/baseline.py --kubeconfig K --prometheus http://127.0.0.1:39090 \\
        --namespace-prefix mgb-cmp- --stats /tmp/baseline.json
"""

from __future__ import annotations

import argparse
import fnmatch
import json
import signal
import sys
import time
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

from kubernetes import client, config, watch
from kubernetes.client.rest import ApiException

LABEL = "bench.minerguard.io/baseline-quarantined"
POD_LABEL = "bench.minerguard.io/baseline-pod"
MINER_PROGRAMS = ["xmrig*", "xmr-stak*", "cpuminer*", "kdevtmpfsi", "kswapd0"]
POOL_SCHEMES = ("stratum+tcp://", "stratum+ssl://")


def is_miner(pod: dict[str, Any]) -> bool:
    for c in (pod.get("spec") or {}).get("containers") or []:
        words = [str(w) for w in (c.get("command") or []) + (c.get("args") or [])]
        programs = [w.rsplit("/", 1)[-1] for w in (c.get("command") or [])[:1]]
        if any(fnmatch.fnmatch(p, g) for p in programs for g in MINER_PROGRAMS):
            return True
        if any(w.startswith(POOL_SCHEMES) for w in words):
            return True
    return False


def deny_policy(name: str) -> dict[str, Any]:
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": {"name": f"baseline-deny-{name}"[:253], "labels": {"app.kubernetes.io/managed-by": "baseline"}},
        "spec": {"podSelector": {"matchLabels": {POD_LABEL: name}}, "policyTypes": ["Ingress", "Egress"]},
    }


class Baseline:
    def __init__(self, kubeconfig: str, prometheus: str, prefix: str, stats_path: Path) -> None:
        cfg = client.Configuration()
        config.load_kube_config(config_file=kubeconfig, client_configuration=cfg)
        cfg.retries = False
        api = client.ApiClient(cfg)
        api.user_agent = "mgbench-baseline/1"
        self.core = client.CoreV1Api(api)
        self.net = client.NetworkingV1Api(api)
        self.prometheus = prometheus
        self.prefix = prefix
        self.stats_path = stats_path
        self.stats: dict[str, float] = {
            "events": 0,
            "api_reads": 0,
            "api_writes": 0,
            "promql_queries": 0,
            "promql_seconds": 0.0,
            "contained": 0,
            "errors": 0,
        }
        self.stopping = False
        self._written = 0.0

    def cpu_of(self, namespace: str, name: str) -> float:
        query = f'sum(rate(container_cpu_usage_seconds_total{{namespace="{namespace}",pod="{name}"}}[1m]))'
        url = f"{self.prometheus}/api/v1/query?{urllib.parse.urlencode({'query': query})}"
        started = time.monotonic()
        try:
            with urllib.request.urlopen(url, timeout=10) as r:  # noqa: S310 - loopback Prometheus
                answer = json.loads(r.read())
        except OSError:
            self.stats["errors"] += 1
            return 0.0
        finally:
            self.stats["promql_queries"] += 1
            self.stats["promql_seconds"] += time.monotonic() - started
        result = (answer.get("data") or {}).get("result") or []
        return float(result[0]["value"][1]) if result else 0.0

    def handle(self, etype: str, obj: dict[str, Any]) -> None:
        meta = obj.get("metadata") or {}
        namespace, name = str(meta.get("namespace")), str(meta.get("name"))
        if etype not in ("ADDED", "MODIFIED"):
            return
        self.stats["events"] += 1
        try:
            resp = self.core.read_namespaced_pod(name, namespace, _preload_content=False, _request_timeout=10)
            pod = json.loads(resp.data)
        except ApiException:
            self.stats["api_reads"] += 1
            return
        self.stats["api_reads"] += 1
        self.cpu_of(namespace, name)  # looked at, as a naive CPU check would; miners are found by spec here
        if not namespace.startswith(self.prefix) or not is_miner(pod):
            return
        if ((pod.get("metadata") or {}).get("labels") or {}).get(LABEL) == "true":
            return
        try:
            self.core.patch_namespaced_pod(
                name, namespace, {"metadata": {"labels": {LABEL: "true", POD_LABEL: name}}}, _request_timeout=10
            )
            self.stats["api_writes"] += 1
            try:
                self.net.create_namespaced_network_policy(namespace, deny_policy(name), _request_timeout=10)
            except ApiException as exc:
                if exc.status != 409:
                    raise
            self.stats["api_writes"] += 1
            self.stats["contained"] += 1
        except ApiException:
            self.stats["errors"] += 1

    def write_stats(self, force: bool = False) -> None:
        if force or time.monotonic() - self._written > 2:
            tmp = self.stats_path.with_suffix(".tmp")
            tmp.write_text(json.dumps(self.stats))
            tmp.replace(self.stats_path)
            self._written = time.monotonic()

    def run(self) -> None:
        while not self.stopping:
            w = watch.Watch()
            try:
                # No resourceVersion: every existing pod comes first as ADDED, as a simple controller expects.
                for ev in w.stream(self.core.list_pod_for_all_namespaces, timeout_seconds=240, deserialize=False):
                    self.handle(str(ev.get("type")), ev.get("object") or {})
                    self.write_stats()
                    if self.stopping:
                        break
            except Exception:  # noqa: BLE001 - a naive controller just watches again
                self.stats["errors"] += 1
                time.sleep(0.5)
        self.write_stats(force=True)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--kubeconfig", required=True)
    ap.add_argument("--prometheus", required=True)
    ap.add_argument("--namespace-prefix", required=True)
    ap.add_argument("--stats", required=True, type=Path)
    args = ap.parse_args()
    baseline = Baseline(args.kubeconfig, args.prometheus, args.namespace_prefix, args.stats)

    def stop(*_: Any) -> None:
        baseline.stopping = True
        baseline.write_stats(force=True)
        sys.exit(0)

    signal.signal(signal.SIGTERM, stop)
    baseline.write_stats(force=True)
    baseline.run()
    return 0


if __name__ == "__main__":
    sys.exit(main())
