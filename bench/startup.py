"""Startup memory (issue #16 item 3): the operator started on a cluster that already holds ``--pods`` pods.

The cluster is filled once (the standard size: 200 KWOK nodes, 10,000 benign pods of bench/workloads.py
over 20 namespaces, Running), then the operator is started on it once per variant, each time with
``--miners`` miners created while it was down. For each start: seconds to ``/healthz`` and to the last
miner contained, the peak RSS (``VmHWM``) once its evaluation count has been still for 3 s, and its
RSS ``--steady`` seconds later. A variant is either the operator as shipped or a what-if of kopf's
settings through bench/operator_shim.py (``chunk=500``, ``chunk=none``, ``idle=0.5``, ``limit=N``,
``stream=true``, joined by ``+``; variants are separated by ``,``).

    make bench-startup                                             # as shipped, then kopf's defaults
    .venv/bin/python bench/startup.py --pods 2000 --nodes 40 --variants shipped,chunk=500
    .venv/bin/python bench/startup.py --src /tmp/old/operator --variants shipped   # another checkout

Its own control plane (``--cluster-dir``, ``MGBENCH_PORT_*``), torn down at the end. Not part of
``make test``; it prints figures and asserts nothing.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import bcluster
import procs
import workloads as wl
from kubernetes import client
from load import Loader

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_VARIANTS = "shipped,chunk=none+idle=5"
"""As shipped (pages of 500, idle 0.5 s), then kopf's own defaults (one response, idle 5 s): what it was before."""
SHIM_FLAGS = {
    "chunk": "--chunk-size",
    "idle": "--idle-timeout",
    "limit": "--worker-limit",
    "stream": "--initial-streaming",
}


def log(msg: str) -> None:
    print(f"[startup {time.strftime('%H:%M:%S')}] {msg}", flush=True)


def shim_args(variant: str) -> list[str] | None:
    if variant == "shipped":
        return None
    out: list[str] = []
    for part in variant.split("+"):
        key, _, value = part.partition("=")
        out += [SHIM_FLAGS[key], value]
    return out


class Startup:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.cluster = bcluster.BenchCluster(Path(args.cluster_dir), nodes=args.nodes)
        self.logs = Path(args.out).parent / "logs"
        self.core: client.CoreV1Api | None = None
        self.namespaces = [f"mgb-load-{i:02d}" for i in range(20)]
        self.result: dict[str, Any] = {"args": vars(args), "machine": bcluster.machine_info(), "starts": []}

    def api(self) -> client.CoreV1Api:
        assert self.core is not None
        return self.core

    def fill(self) -> None:
        if self.args.reuse_cluster:  # filled by an earlier run with --keep-cluster (or one that was stopped)
            self.core = client.CoreV1Api(self.cluster.api_client(pool=16))
            self.result["fill"] = {"reused": True, "running": self.running()}
            return
        log(f"cluster: {self.args.nodes} KWOK nodes in {self.cluster.state_dir}; {self.args.pods} pods")
        self.cluster.down()
        self.result["cluster_up_s"] = round(self.cluster.up(), 1)
        self.cluster.apply_crds()
        self.cluster.kubectl("create", "namespace", "minerguard-system")
        self.core = client.CoreV1Api(self.cluster.api_client(pool=16))
        for name in self.namespaces:
            self.api().create_namespace(wl.namespace(name, "ours"))
        custom = client.CustomObjectsApi(self.api().api_client)
        for body in (wl.miner_policy(), wl.cpu_policy()):
            custom.create_cluster_custom_object(wl.GROUP, wl.VERSION, "minerpolicies", body)
        time.sleep(3)  # the default ServiceAccounts
        t = time.monotonic()
        loader = Loader(str(self.cluster.kubeconfig), self.namespaces, "benign", self.args.rate, 16)
        loader.upto(self.args.pods)
        loader.pool.shutdown(wait=True)
        running = self.running()
        self.result["fill"] = {"seconds": round(time.monotonic() - t, 1), "failed": loader.failed, "running": running}
        log(f"filled in {time.monotonic() - t:.0f}s ({loader.failed} failed, {running} Running)")

    def running(self) -> int:
        deadline = time.monotonic() + self.args.running_wait
        count = 0
        while time.monotonic() < deadline:
            pods = self.api().list_pod_for_all_namespaces(field_selector="status.phase=Running", limit=500)
            count = len(pods.items)
            token = pods.metadata._continue
            while token:
                more = self.api().list_pod_for_all_namespaces(field_selector="status.phase=Running", limit=500,
                                                              _continue=token)  # fmt: skip
                count += len(more.items)
                token = more.metadata._continue
            if count >= self.args.pods * 0.99:
                break
            time.sleep(5)
        return count

    def start(self, index: int, variant: str) -> dict[str, Any]:
        ns = f"mgb-start-{index}-{int(time.time()) % 100000}"
        self.api().create_namespace(wl.namespace(ns, "ours"))
        time.sleep(2)
        for i in range(self.args.miners):
            self.api().create_namespaced_pod(ns, wl.miner_pod(f"miner-{i}"))
        extra = {"PYTHONPATH": self.args.src} if self.args.src else {}
        op = procs.OperatorProcess(
            self.cluster.kubeconfig, self.logs / f"startup-{index}.log", self.cluster.prometheus_url, extra,
            shim_args=shim_args(variant),
        )  # fmt: skip
        started = op.start()
        try:
            healthy = op.wait_healthy(timeout=300)
            contained = self.wait_contained(ns, started)
            count = lambda: op.metrics().total("minerguard_evaluation_seconds_count")  # noqa: E731
            settle = procs.wait_quiet(count, 3.0, self.args.settle_wait)
            after = op.footprint()
            time.sleep(self.args.steady)
            steady = op.footprint()
        finally:
            op.stop()
        return {
            "variant": variant,
            "healthy_s": round(healthy, 2),
            "last_miner_contained_s": contained,
            "settle_s": round(settle, 1),
            "peak_rss_mib": round(after.peak_rss_mib, 1),
            "rss_settled_mib": round(after.rss_mib, 1),
            "rss_steady_mib": round(steady.rss_mib, 1),
            "peak_rss_at_steady_mib": round(steady.peak_rss_mib, 1),
            "cpu_s": round(steady.cpu_seconds, 1),
            "loadavg": list(os.getloadavg()),
        }

    def wait_contained(self, ns: str, started: float) -> float | None:
        while time.monotonic() - started < 300:
            pods = self.api().list_namespaced_pod(ns, label_selector=f"{wl.QUARANTINE_LABEL}=true").items
            if len(pods) >= self.args.miners:
                return round(time.monotonic() - started, 2)
            time.sleep(0.2)
        return None

    def run(self) -> int:
        self.logs.mkdir(parents=True, exist_ok=True)
        try:
            self.fill()
            for index, variant in enumerate(self.args.variants.split(",")):
                figures = self.start(index, variant)
                self.result["starts"].append(figures)
                log(json.dumps(figures))
        finally:
            if not self.args.keep_cluster:
                log("cluster: tearing down")
                self.cluster.down()
        print(f"start on {self.args.pods} pods ({self.args.nodes} nodes), {self.args.miners} miners waiting:")
        print(f"{'variant':<24}{'healthy':>9}{'miners':>9}{'peak MiB':>10}{'settled':>9}{'steady':>9}  load")
        for s in self.result["starts"]:
            miners = s["last_miner_contained_s"] or "-"
            rss = f"{s['peak_rss_mib']:>10}{s['rss_settled_mib']:>9}{s['rss_steady_mib']:>9}"
            print(f"{s['variant']:<24}{s['healthy_s']:>8}s{miners:>8}s{rss}  {s['loadavg'][0]:.1f}")
        Path(self.args.out).write_text(json.dumps(self.result, indent=2, default=str))
        log(f"results written to {self.args.out}")
        return 0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--pods", type=int, default=10_000)
    ap.add_argument("--nodes", type=int, default=200)
    ap.add_argument("--rate", type=float, default=100.0, help="pods created per second while filling")
    ap.add_argument("--miners", type=int, default=5, help="miners created while the operator is down, per start")
    ap.add_argument("--running-wait", type=float, default=900.0, help="seconds to wait for the pods to be Running")
    ap.add_argument("--settle-wait", type=float, default=60.0, help="seconds to wait for the evaluations to stop")
    ap.add_argument("--steady", type=float, default=30.0, help="seconds after settling for the steady reading")
    ap.add_argument("--variants", default=DEFAULT_VARIANTS)
    ap.add_argument("--src", help="an operator/ folder to run instead of this checkout's")
    ap.add_argument("--out", default=str(ROOT / "bench" / "results" / "startup-latest.json"))
    ap.add_argument("--cluster-dir", default=os.environ.get("MGBENCH_CLUSTER_DIR", "/tmp/mg-startup-cluster"))
    ap.add_argument("--keep-cluster", action="store_true")
    ap.add_argument("--reuse-cluster", action="store_true", help="use the filled cluster already in --cluster-dir")
    args = ap.parse_args()
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    return Startup(args).run()


if __name__ == "__main__":
    sys.exit(main())
