"""The exhaustion soak (issue #11 item 12): a tenant's megabyte pods against the operator's economy.

A tenant keeps ``--big`` pods of ``--pod-mib`` MiB (benign env text) and writes an annotation to
them ``--hz`` times a second in all (round-robin), while ``--pending`` more such pods sit Pending
(no node has the label they ask for); the default policy pack (Audit) and the benchmark's Enforce
policy are in force everywhere, so every one of those pods is in scope and evaluated. Every
``--miner-every`` seconds a miner is created in a namespace of its own; it must be contained (the
pod labelled quarantined, read back) within ``--bound`` seconds. The operator's RSS is sampled every
second and compared with the chart's memory limit (helm/minerguard/values.yaml).

    make bench-soak                               # the standard soak: 10 x 1 MiB at 20 Hz, 1,000 pending, 5 min
    make bench-soak SOAK_ARGS="--duration 60"     # shorter
    .venv/bin/python bench/soak.py --src /tmp/old/operator   # the same soak on another checkout's operator

It runs its own control plane (``hack/cluster.py`` in ``--cluster-dir`` on ``MGBENCH_PORT_*``, as
bench/run.py does) and tears it down at the end. Figures are printed and written to ``--out``;
nothing is asserted. Not part of ``make test``.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import bcluster
import procs
import workloads as wl
from kubernetes import client, watch
from kubernetes.client.rest import ApiException
from urllib3.exceptions import HTTPError

FAILURES = (ApiException, OSError, HTTPError)
"""What an overloaded control plane answers (or does not): recorded, and the soak goes on."""

ROOT = Path(__file__).resolve().parent.parent
TENANT = "soak-tenant"
WORDS = "lorem ipsum dolor sit amet consectetur adipiscing elit sed do eiusmod tempor incididunt ut labore "


def log(msg: str) -> None:
    print(f"[soak {time.strftime('%H:%M:%S')}] {msg}", flush=True)


def big_pod(name: str, mib: float, pending: bool) -> dict[str, Any]:
    """About ``mib`` MiB of benign env in one container; Pending for good when ``pending``."""
    values = int(mib * 1024)
    env = [{"name": f"SETTING_{i:04d}", "value": (WORDS * 11)[:1000]} for i in range(values)]
    spec: dict[str, Any] = {
        "containers": [{"name": "app", "image": "registry.example/app:1", "command": ["/srv/app"], "env": env}],
        "terminationGracePeriodSeconds": 0,
    }
    if pending:
        spec["nodeSelector"] = {"soak.example/no-such-node": "true"}
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "labels": {wl.ROLE_LABEL: "big"}},
        "spec": spec,
    }


def chart_memory_limit_mib() -> float:
    values = (ROOT / "helm" / "minerguard" / "values.yaml").read_text()
    found = re.search(r"limits:\s*\n\s*cpu:[^\n]*\n\s*memory:\s*(\d+)(Mi|Gi)", values)
    if not found:
        return float("nan")
    return float(found.group(1)) * (1024 if found.group(2) == "Gi" else 1)


@dataclass
class Samples:
    """What the sampler and the loops saw."""

    rss: list[tuple[float, float]] = field(default_factory=list)
    peak_rss_mib: float = 0.0
    loadavg: list[tuple[float, float]] = field(default_factory=list)
    annotations: int = 0
    annotation_errors: int = 0
    miners: list[dict[str, Any]] = field(default_factory=list)


class Soak:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        # 20 annotations/s of megabyte pods write ~20 MiB of etcd revisions a second: with the apiserver's
        # 5-minute compaction, etcd's 4 GiB quota fills within the soak ("mvcc: database space exceeded", every
        # write then fails). A control-plane limit, not the operator's: compact every 2 min and allow 8 GiB.
        # (Every 30 s, the apiserver's watch cache fell more than 30 s behind etcd while the pods were created
        # and re-listed them all: minutes of 429 "storage is (re)initializing".)
        etcd = {"quota_bytes": str(8 * 1024**3), "compaction_interval": "2m"}
        self.cluster = bcluster.BenchCluster(Path(args.cluster_dir), nodes=args.nodes, etcd=etcd)
        self.logs = Path(args.out).parent / "logs"
        self.samples = Samples()
        self.stop = threading.Event()
        self.operator: procs.OperatorProcess | None = None
        self.core: client.CoreV1Api | None = None
        self.result: dict[str, Any] = {"args": vars(args), "machine": bcluster.machine_info()}
        self.miners_done = threading.Event()
        self.all_namespaces_seen: dict[str, float] = {}
        self.kubectl_watch: subprocess.Popen[str] | None = None
        self.phase = "create"
        self.t0 = self.started = time.monotonic()

    def api(self) -> client.CoreV1Api:
        assert self.core is not None
        return self.core

    def op(self) -> procs.OperatorProcess:
        assert self.operator is not None
        return self.operator

    # ------------------------------------------------------------------ setup

    def setup(self) -> None:
        log(f"cluster: fresh control plane with {self.args.nodes} KWOK nodes in {self.cluster.state_dir}")
        self.cluster.down()
        self.result["cluster_up_s"] = round(self.cluster.up(), 1)
        self.cluster.apply_crds()
        self.core = client.CoreV1Api(self.cluster.api_client(pool=16))
        self.api().create_namespace(wl.namespace(TENANT, "ours"))
        self.cluster.kubectl("create", "namespace", "minerguard-system")
        self.cluster.kubectl("apply", "--server-side", "-f", str(ROOT / "manifests" / "policies-audit.yaml"))
        custom = client.CustomObjectsApi(self.core.api_client)
        custom.create_cluster_custom_object(wl.GROUP, wl.VERSION, "minerpolicies", wl.miner_policy())
        extra = {"PYTHONPATH": self.args.src} if self.args.src else {}
        self.operator = procs.OperatorProcess(
            self.cluster.kubeconfig, self.logs / "soak-operator.log", self.cluster.prometheus_url, extra
        )
        self.op().start()
        self.result["operator_healthy_s"] = round(self.op().wait_healthy(), 2)
        time.sleep(3)  # the policies read
        threading.Thread(target=self.sample, daemon=True).start()

    def create_big_pods(self) -> None:
        t = time.monotonic()
        names = [(f"big-{i:02d}", False) for i in range(self.args.big)]
        names += [(f"pending-{i:04d}", True) for i in range(self.args.pending)]
        failed = 0

        def create(item: tuple[str, bool]) -> bool:
            body = big_pod(item[0], self.args.pod_mib, item[1])
            for _ in range(5):
                try:
                    self.api().create_namespaced_pod(TENANT, body, _preload_content=False, _request_timeout=120)
                    return True
                except ApiException as exc:
                    if exc.status == 409:
                        return True
                    time.sleep(1)
                except (OSError, HTTPError):
                    time.sleep(1)
            return False

        with ThreadPoolExecutor(max_workers=self.args.create_threads) as pool:
            for ok in pool.map(create, names):
                failed += not ok
        self.result["create"] = {
            "pods": len(names),
            "failed": failed,
            "seconds": round(time.monotonic() - t, 1),
            "operator_after": self.op().footprint().as_dict(),
            "operator_metrics_after": self.metric_deltas(procs.Metrics({}, set())),
        }
        log(f"created {len(names) - failed} pods of {self.args.pod_mib} MiB in {time.monotonic() - t:.0f}s")

    # ------------------------------------------------------------------ the loops

    def sample(self) -> None:
        while not self.stop.is_set() and self.operator is not None and self.operator.proc is not None:
            try:
                fp = self.op().footprint()
            except (OSError, RuntimeError):
                return
            now = time.monotonic()
            self.samples.rss.append((now, fp.rss_mib))
            self.samples.peak_rss_mib = max(self.samples.peak_rss_mib, fp.peak_rss_mib)
            self.samples.loadavg.append((now, os.getloadavg()[0]))
            self.stop.wait(1.0)

    def annotate(self, until: float) -> None:
        period, i = 1.0 / self.args.hz, 0
        next_at = time.monotonic()
        while time.monotonic() < until and not self.stop.is_set():
            name = f"big-{i % self.args.big:02d}"
            patch = {"metadata": {"annotations": {"tenant.example/loop": str(i)}}}
            try:
                self.api().patch_namespaced_pod(name, TENANT, patch, _preload_content=False, _request_timeout=30)
                self.samples.annotations += 1
            except FAILURES:
                self.samples.annotation_errors += 1
            i += 1
            next_at += period
            time.sleep(max(0.0, next_at - time.monotonic()))

    def miner(self, index: int) -> dict[str, Any]:
        ns = f"soak-miner-{index:03d}"
        self.api().create_namespace(wl.namespace(ns, "ours"))
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:  # the default ServiceAccount, or the create is refused
            if self.api().list_namespaced_service_account(ns, field_selector="metadata.name=default").items:
                break
            time.sleep(0.2)
        seen: dict[str, float] = {}
        watching = threading.Thread(target=self.watch_miner, args=(ns, seen), daemon=True)
        watching.start()
        time.sleep(0.2)  # the watch open before the create
        started = time.monotonic()
        self.api().create_namespaced_pod(ns, wl.miner_pod("miner"))
        created = time.monotonic()
        contained = None
        while time.monotonic() - created < self.args.wait:
            labels = self.api().read_namespaced_pod("miner", ns).metadata.labels or {}
            if labels.get(wl.QUARANTINE_LABEL) == "true":
                contained = time.monotonic() - created
                break
            time.sleep(0.1)
        watching.join(timeout=1)
        delivered = seen.get("added")
        everywhere = self.all_namespaces_seen.get(ns)
        return {
            "namespace": ns,
            "at_s": round(created - self.t0, 1),
            "contained_s": contained,
            "create_call_s": round(created - started, 3),
            # When a watch of the miner's namespace alone got its ADDED event: how late the apiserver delivers
            # pod events at that point, to anyone. The operator's all-namespace watch cannot see it sooner.
            "apiserver_delivered_s": round(delivered - created, 3) if delivered is not None else None,
            # When kubectl's all-namespace watch (a Go client of the same stream the operator reads) saw it.
            "all_namespaces_watch_s": round(everywhere - created, 3) if everywhere is not None else None,
        }

    def watch_all(self) -> None:
        """kubectl (a Go client) watching every namespace's pods, as the operator does: when each miner's pod first
        reaches an all-namespace watch. Equal to the operator's lag, it is the apiserver's, not the operator's."""
        kubectl = str(bcluster.tools_bindir() / "kubectl")
        columns = "custom-columns=NS:.metadata.namespace,NAME:.metadata.name"
        cmd = [kubectl, "--kubeconfig", str(self.cluster.kubeconfig), "get", "pods", "-A", "--watch", "--no-headers",
               "-o", columns]  # fmt: skip
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        self.kubectl_watch = proc
        assert proc.stdout is not None
        for line in proc.stdout:
            parts = line.split()
            if len(parts) >= 2 and parts[0].startswith("soak-miner-") and parts[1] == "miner":
                self.all_namespaces_seen.setdefault(parts[0], time.monotonic())

    def watch_miner(self, namespace: str, seen: dict[str, float]) -> None:
        """Record when a watch of this namespace alone sees the miner ADDED (then stop)."""
        w = watch.Watch()
        try:
            for event in w.stream(self.api().list_namespaced_pod, namespace, timeout_seconds=int(self.args.wait)):
                if event["type"] == "ADDED" and event["object"].metadata.name == "miner":
                    seen["added"] = time.monotonic()
                    break
        except FAILURES:
            pass
        finally:
            w.stop()

    def miners_loop(self) -> None:
        """A miner every ``--miner-every`` seconds from before the tenant's pods are created to the end of the soak:
        the bound holds at every point, the creation of the megabyte pods included."""
        index = 0
        while not self.miners_done.is_set():
            phase = self.phase
            try:
                sample = self.miner(index)
            except FAILURES as exc:
                sample = {"namespace": f"soak-miner-{index:03d}", "at_s": round(time.monotonic() - self.t0, 1),
                          "contained_s": None, "error": str(exc)[:200]}  # fmt: skip
            sample["phase"] = phase
            self.samples.miners.append(sample)
            log(f"miner {index} ({phase}): contained after {sample['contained_s']}s")
            index += 1
            self.miners_done.wait(max(0.0, self.t0 + index * self.args.miner_every - time.monotonic()))

    def run_soak(self) -> None:
        log(f"soak: {self.args.duration}s, {self.args.hz} annotations/s over {self.args.big} pods, a miner every "
            f"{self.args.miner_every}s")  # fmt: skip
        m0 = self.op().metrics()
        self.phase = "soak"
        self.started = time.monotonic()
        until = self.started + self.args.duration
        self.annotate(until)
        self.miners_done.set()
        self.result["operator_metrics"] = self.metric_deltas(m0)

    def metric_deltas(self, m0: procs.Metrics) -> dict[str, Any]:
        m1 = self.op().metrics()
        deltas: dict[str, Any] = {
            name: (m1.total(name) or 0.0) - (m0.total(name) or 0.0)
            for name in ("minerguard_evaluation_seconds_count", "minerguard_evaluation_seconds_sum",
                         "minerguard_evaluations_skipped_total", "minerguard_evaluations_deferred_total",
                         "minerguard_evaluation_backlog_over_budget_total")
        }  # fmt: skip
        deltas["minerguard_pods_compact"] = m1.total("minerguard_pods_compact")
        deltas["minerguard_pods_watched"] = m1.total("minerguard_pods_watched")
        return deltas

    # ------------------------------------------------------------------ results

    def summarise(self) -> None:
        times = [m["contained_s"] for m in self.samples.miners]
        done = sorted(t for t in times if t is not None)
        limit = chart_memory_limit_mib()
        soak_rss = [r for t, r in self.samples.rss if t >= self.started]
        soak_load = [v for t, v in self.samples.loadavg if t >= self.started]
        by_phase = {
            phase: {
                "miners": sum(1 for m in self.samples.miners if m.get("phase") == phase),
                "within_bound": sum(
                    1
                    for m in self.samples.miners
                    if m.get("phase") == phase and m["contained_s"] is not None and m["contained_s"] <= self.args.bound
                ),
            }
            for phase in ("create", "soak")
        }
        for phase, figures in by_phase.items():
            late = sorted(
                m["apiserver_delivered_s"]
                for m in self.samples.miners
                if m.get("phase") == phase and m.get("apiserver_delivered_s") is not None
            )
            figures["apiserver_delivered_max_s"] = late[-1] if late else None
            everywhere = sorted(
                m["all_namespaces_watch_s"]
                for m in self.samples.miners
                if m.get("phase") == phase and m.get("all_namespaces_watch_s") is not None
            )
            figures["all_namespaces_watch_max_s"] = everywhere[-1] if everywhere else None
        self.result["soak"] = {
            "by_phase": by_phase,
            "annotations": self.samples.annotations,
            "annotation_errors": self.samples.annotation_errors,
            "annotations_per_s": round(self.samples.annotations / self.args.duration, 1),
            "miners": len(times),
            "contained": len(done),
            "within_bound": sum(1 for t in done if t <= self.args.bound),
            "contained_p50_s": round(done[len(done) // 2], 2) if done else None,
            "contained_max_s": round(done[-1], 2) if done else None,
            "miner_samples": self.samples.miners,
            "operator_rss_max_mib": round(max(soak_rss), 1) if soak_rss else None,
            "operator_rss_last_mib": round(soak_rss[-1], 1) if soak_rss else None,
            "operator_peak_rss_whole_run_mib": round(self.samples.peak_rss_mib, 1),
            "chart_memory_limit_mib": limit,
            "loadavg_1m_min_max": [min(soak_load), max(soak_load)] if soak_load else None,
        }

    def report(self) -> str:
        s, c, m = self.result["soak"], self.result["create"], self.result.get("operator_metrics", {})
        a = self.args
        lines = [
            f"exhaustion soak: {a.big} x {a.pod_mib} MiB annotated ({s['annotations']} in {a.duration}s = "
            f"{s['annotations_per_s']}/s asked {a.hz}/s, {s['annotation_errors']} errors), {c['pods'] - a.big} "
            f"pending x {a.pod_mib} MiB (created in {c['seconds']}s, {c['failed']} failed)",
            f"miners contained within {a.bound}s: {s['within_bound']}/{s['miners']} (contained {s['contained']}); "
            f"p50 {s['contained_p50_s']}s, max {s['contained_max_s']}s; while the pods were created "
            f"{s['by_phase']['create']['within_bound']}/{s['by_phase']['create']['miners']}, during the soak "
            f"{s['by_phase']['soak']['within_bound']}/{s['by_phase']['soak']['miners']}; the miner's pod event "
            f"delivered by the apiserver at most {s['by_phase']['create']['apiserver_delivered_max_s']}s after its "
            f"create while the pods were created, {s['by_phase']['soak']['apiserver_delivered_max_s']}s in the soak; "
            f"seen by kubectl's all-namespace watch at most {s['by_phase']['create']['all_namespaces_watch_max_s']}s "
            f"after it while the pods were created, {s['by_phase']['soak']['all_namespaces_watch_max_s']}s in the soak",
            f"operator RSS during the soak: max {s['operator_rss_max_mib']} MiB, last {s['operator_rss_last_mib']} MiB;"
            f" peak over the run {s['operator_peak_rss_whole_run_mib']} MiB; chart limit {s['chart_memory_limit_mib']}"
            f" MiB; after creating the pods {c['operator_after']['rss_mib']} MiB",
            f"evaluations during the soak: {m.get('minerguard_evaluation_seconds_count')} "
            f"({m.get('minerguard_evaluation_seconds_sum', 0):.1f}s), skipped as unchanged "
            f"{m.get('minerguard_evaluations_skipped_total')}, deferred to the backlog "
            f"{m.get('minerguard_evaluations_deferred_total')} (over its budget, read again: "
            f"{m.get('minerguard_evaluation_backlog_over_budget_total')}); "
            f"pods compact {m.get('minerguard_pods_compact')} of "
            f"{m.get('minerguard_pods_watched')}",
            f"load average (1 min) during the soak: {s['loadavg_1m_min_max']}",
        ]
        return "\n".join(lines)

    def run(self) -> int:
        self.logs.mkdir(parents=True, exist_ok=True)
        try:
            self.setup()
            self.t0 = time.monotonic()
            threading.Thread(target=self.watch_all, daemon=True).start()
            miners = threading.Thread(target=self.miners_loop, daemon=True)
            miners.start()
            try:
                self.create_big_pods()
                self.run_soak()
            finally:
                self.miners_done.set()
                miners.join(timeout=self.args.wait + 30)
                self.summarise()
        finally:
            self.stop.set()
            if self.kubectl_watch is not None:
                self.kubectl_watch.kill()
            if self.operator is not None:
                self.operator.stop()
            if not self.args.keep_cluster:
                log("cluster: tearing down")
                self.cluster.down()
            self.result["machine"]["loadavg_at_end"] = list(os.getloadavg())
            out = Path(self.args.out)
            out.write_text(json.dumps(self.result, indent=2, default=str))
            log(f"results written to {out}")
        print(self.report())
        return 0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--big", type=int, default=10, help="pods annotated in a loop")
    ap.add_argument("--pending", type=int, default=1000, help="pending pods of the same size")
    ap.add_argument("--pod-mib", type=float, default=1.0, help="MiB of env per pod")
    ap.add_argument("--hz", type=float, default=20.0, help="annotations per second, over all the annotated pods")
    ap.add_argument("--duration", type=float, default=300.0, help="seconds of soak")
    ap.add_argument("--miner-every", type=float, default=15.0, help="seconds between miners")
    ap.add_argument("--bound", type=float, default=5.0, help="seconds within which a miner must be contained")
    ap.add_argument("--wait", type=float, default=60.0, help="seconds a miner is waited for at most")
    ap.add_argument("--nodes", type=int, default=5, help="KWOK nodes")
    ap.add_argument("--create-threads", type=int, default=8)
    ap.add_argument("--src", help="an operator/ folder to run instead of this checkout's (e.g. an export of main)")
    ap.add_argument("--out", default=str(ROOT / "bench" / "results" / "soak-latest.json"))
    ap.add_argument("--cluster-dir", default=os.environ.get("MGBENCH_CLUSTER_DIR", "/tmp/mg-soak-cluster"))
    ap.add_argument("--keep-cluster", action="store_true")
    args = ap.parse_args()
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    return Soak(args).run()


if __name__ == "__main__":
    sys.exit(main())
