#!/usr/bin/env python3
"""Benchmarks at cluster scale: ``make bench`` (standard size) or ``make bench BENCH_ARGS=--quick``.

    bench/run.py [--quick] [--out bench/results/latest.json] [--compare auto|baseline|none]

Starts its own local control plane (``hack/cluster.py`` with its own state directory and
ports, never the test cluster's), the operator as a process (``python -m minerguard run``)
with its metrics on a loopback port, an Enforce MinerPolicy and a metric MinerPolicy, and
measures:

* containment latency, idle and while benign pods are created at a steady rate;
* writes: to benign pods (must be none) and per contained pod;
* the operator's footprint (peak RSS, CPU seconds) at three pod counts;
* PromQL query cost per evaluation cycle and metric detection latency (when the
  operator has a metrics engine; otherwise "not available", with the reason);
* time to first and last containment after the operator starts on a full cluster;
* the same containment latencies for a contender in the same run: Falco Talon when it
  can be built, otherwise ``bench/baseline.py``.

It prints a table and writes everything (raw samples included) as JSON. Every wait is
bounded; the cluster is torn down at the end unless ``--keep-cluster``. See
docs/performance.md for what each figure means.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import re
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import bcluster
import cost
import images as bench_images
import procs
import stamp
import stats
import talon
import workloads as wl
from baseline import LABEL as BASELINE_LABEL
from kubernetes import client
from kubernetes.client.rest import ApiException
from prometheus_client.parser import text_string_to_metric_families
from watchers import Observer

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
CREATOR_STAMP_KEYS = ("minerguard.io/created-by", "minerguard.io/created-by-groups")
OPERATOR_EVENTS = "minerguard.io/operator"


@dataclass(frozen=True)
class Size:
    name: str
    nodes: int
    pods: int  # benign pods created under load
    load_miners: int  # miners mixed into the load (per contender)
    idle_miners: int  # miners contained one at a time on a quiet cluster (per contender)
    namespaces: int  # namespaces the load is spread over
    restart_miners: int  # miners waiting when the operator starts on the full cluster
    rate: float  # benign pods created per second
    drain_s: float  # how long miners created under load may still take once the load ends
    restart_wait_s: float  # how long to wait for the miners after an operator start

    @property
    def checkpoints(self) -> list[int]:
        return [self.pods // 10, self.pods // 2, self.pods]


STANDARD = Size(
    "standard",
    nodes=200,
    pods=10_000,
    load_miners=100,
    idle_miners=20,
    namespaces=20,
    restart_miners=5,
    rate=40,
    drain_s=180,
    restart_wait_s=300,
)
QUICK = Size(
    "quick",
    nodes=20,
    pods=1_000,
    load_miners=20,
    idle_miners=10,
    namespaces=5,
    restart_miners=3,
    rate=40,
    drain_s=60,
    restart_wait_s=120,
)
CPU_WINDOW = "30s"
CPU_WINDOW_S = 30.0
METRIC_GRACE_S = 120.0
OPERATOR_METRICS_INTERVAL_S = 30.0  # the operator's default MINERGUARD_METRICS_INTERVAL


def log(msg: str) -> None:
    stamp = datetime.datetime.now().strftime("%H:%M:%S")
    print(f"[bench {stamp}] {msg}", file=sys.stderr, flush=True)


@dataclass
class Sample:
    """One miner and when its containment was first seen complete."""

    contender: str  # ours | baseline | talon
    phase: str  # idle | load | restart | metric
    namespace: str
    pod: str
    start: float  # monotonic: the create call (or Talon's event POST) returned; the operator start for restart
    label: str | None  # the label that must read "true"
    netpol: tuple[str, str] | None  # the NetworkPolicy that must exist
    first_in_namespace: bool = False
    benign_created: int = 0
    latency: float | None = None
    watched_for: float | None = None  # when never contained: how long it was waited for

    def as_dict(self) -> dict[str, Any]:
        return {
            "contender": self.contender,
            "phase": self.phase,
            "namespace": self.namespace,
            "pod": self.pod,
            "first_in_namespace": self.first_in_namespace,
            "benign_pods_created": self.benign_created,
            "latency_s": None if self.latency is None else round(self.latency, 4),
            "not_contained_after_s": None if self.watched_for is None else round(self.watched_for, 1),
        }


@dataclass
class Competitor:
    """A contender run side by side: Talon (fed events over HTTP) or the baseline controller."""

    kind: str  # talon | baseline
    talon_build: dict[str, Any] = field(default_factory=dict)
    proc: subprocess.Popen[bytes] | None = None
    talon: talon.TalonProcess | None = None
    stats_path: Path | None = None
    log_file: IO[bytes] | None = None

    def pid(self) -> int | None:
        if self.talon is not None:
            return self.talon.pid()
        return self.proc.pid if self.proc is not None else None

    def label(self) -> str | None:
        return BASELINE_LABEL if self.kind == "baseline" else None

    def netpol(self, namespace: str, pod: str) -> tuple[str, str]:
        return (namespace, f"baseline-deny-{pod}" if self.kind == "baseline" else pod)


class Loader:
    """``bench/load.py`` in its own process, driven through stdin/stdout."""

    def __init__(
        self, kubeconfig: Path, namespaces: list[str], rate: float, log_path: Path, registry: str = ""
    ) -> None:
        self._log = open(log_path, "ab")
        self.proc = subprocess.Popen(
            [
                sys.executable,
                str(BENCH / "load.py"),
                "--kubeconfig",
                str(kubeconfig),
                "--namespaces",
                ",".join(namespaces),
                "--rate",
                str(rate),
                *(["--registry", registry] if registry else []),
            ],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self._log,
            text=True,
            cwd=str(ROOT),
        )
        self.cond = threading.Condition()
        self.created = 0
        self.failed = 0
        self.reached = -1
        self.errors = ""
        threading.Thread(target=self._read, name="loader-out", daemon=True).start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            words = line.split()
            with self.cond:
                if len(words) == 4 and words[0] in ("created", "reached"):
                    self.created, self.failed = int(words[1]), int(words[3])
                    if words[0] == "reached":
                        self.reached = self.created
                elif words and words[0] == "errors":
                    self.errors = line.strip()
                self.cond.notify_all()
        with self.cond:
            self.reached = -2  # the process ended
            self.cond.notify_all()

    def wait_progress(self, due: int | None, timeout: float) -> tuple[int, int]:
        """Wait until the target is reached, the process ended, or ``due`` pods exist; (created, reached)."""
        with self.cond:
            self.cond.wait_for(lambda: self.reached != -1 or (due is not None and self.created >= due), timeout)
            return self.created, self.reached

    def upto(self, n: int) -> None:
        assert self.proc.stdin is not None
        with self.cond:
            self.reached = -1
        self.proc.stdin.write(f"upto {n}\n")
        self.proc.stdin.flush()

    def quit(self) -> None:
        try:
            if self.proc.stdin is not None:
                self.proc.stdin.write("quit\n")
                self.proc.stdin.flush()
                self.proc.stdin.close()
            self.proc.wait(timeout=60)
        except (OSError, subprocess.TimeoutExpired):
            self.proc.kill()
            self.proc.wait()
        self._log.close()


class Bench:
    def __init__(self, args: argparse.Namespace) -> None:
        size = QUICK if args.quick else STANDARD
        overrides = {k: getattr(args, k) for k in ("nodes", "pods", "rate") if getattr(args, k) is not None}
        self.size = Size(**{**size.__dict__, **overrides})
        self.args = args
        self.cluster = bcluster.BenchCluster(Path(args.cluster_dir), nodes=self.size.nodes)
        self.logs = Path(args.out).resolve().parent / "logs"  # kept after the cluster (and its dir) is gone
        self.samples: list[Sample] = []
        self.result: dict[str, Any] = {
            "size": self.size.__dict__,
            "started": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
            "machine": bcluster.machine_info(),
            "versions": bcluster.pinned_versions(),
            "source": bcluster.source_info(),
            "settings": {
                "prometheus_scrape_interval": self.cluster.scrape_interval,
                "operator": "defaults (MINERGUARD_METRICS_INTERVAL 30s at most, MINERGUARD_RATE_WINDOW 1m at most, "
                "both sized from the policy's window and the scrape interval read from Prometheus; "
                "MINERGUARD_RESYNC_INTERVAL 30s) plus MINERGUARD_PROMETHEUS_URL and MINERGUARD_METRICS_PORT, "
                f"as user {cost.USER} (group system:masters) so that the apiserver counts its requests apart",
                "cpu_policy_window": CPU_WINDOW,
            },
            "phases_s": {},
        }
        self.observer = Observer()
        self.operator: procs.OperatorProcess | None = None
        self.competitors: list[Competitor] = []
        self.talon_missing: dict[str, Any] | None = None
        self.loader: Loader | None = None
        self.api: client.ApiClient | None = None
        self.images: bench_images.BenchImages | None = None  # --inspect-images: the loopback registry

    # ------------------------------------------------------------------ plumbing

    @property
    def core(self) -> client.CoreV1Api:
        return client.CoreV1Api(self.api)

    @property
    def custom(self) -> client.CustomObjectsApi:
        return client.CustomObjectsApi(self.api)

    def phase(self, name: str, started: float) -> None:
        self.result["phases_s"][name] = round(time.monotonic() - started, 1)

    def op(self) -> procs.OperatorProcess:
        if self.operator is None:
            raise RuntimeError("the operator is not running")
        return self.operator

    def create_pod(self, namespace: str, body: dict[str, Any]) -> float:
        for attempt in range(5):
            try:
                self.core.create_namespaced_pod(namespace, body, _preload_content=False, _request_timeout=30)
                return time.monotonic()
            except ApiException as exc:
                if exc.status not in (429, 500, 503, 504) or attempt == 4:
                    raise
                time.sleep(0.2 * (attempt + 1))
        raise AssertionError("unreachable")

    def add_miner(
        self, contender: str, phase: str, namespace: str, pod: str, benign: int = 0, body: dict[str, Any] | None = None
    ) -> Sample:
        if contender == "ours":
            label: str | None = wl.QUARANTINE_LABEL
            netpol: tuple[str, str] | None = (namespace, wl.QUARANTINE_POLICY)
        else:
            competitor = self.competitor(contender)
            label, netpol = competitor.label(), competitor.netpol(namespace, pod)
        first = netpol is not None and self.observer.contained_at(None, ("", ""), netpol) is None
        start = self.create_pod(namespace, body or wl.miner_pod(pod))
        if contender == "talon":
            # Talon's best case: the Falco event arrives as the pod is created (Falco itself would only see
            # the process start later). Its latency is counted from the pod's creation, like ours.
            talon_proc = self.competitor("talon").talon
            assert talon_proc is not None
            talon_proc.post_event(namespace, pod)
        sample = Sample(contender, phase, namespace, pod, start, label, netpol, first, benign)
        self.samples.append(sample)
        return sample

    def done_at(self, s: Sample) -> float | None:
        return self.observer.contained_at(s.label, (s.namespace, s.pod), s.netpol)

    def wait_contained(self, samples: list[Sample], timeout: float) -> bool:
        ok = self.observer.wait(lambda: all(self.done_at(s) is not None for s in samples), timeout)
        now = time.monotonic()
        for s in samples:
            t = self.done_at(s)
            s.latency = None if t is None else max(0.0, t - s.start)
            s.watched_for = None if t is not None else now - s.start
        return ok

    def eval_count(self) -> float:
        try:
            return self.op().metrics().total("minerguard_evaluation_seconds_count") or 0.0
        except OSError:
            return -1.0

    # ------------------------------------------------------------------ setup

    def setup(self) -> None:
        t = time.monotonic()
        if not (bcluster.tools_bindir() / "kube-apiserver").exists():
            raise bcluster.BenchError("the control-plane tools are missing: run 'make tools' (or use 'make bench')")
        log(f"cluster: fresh control plane with {self.size.nodes} KWOK nodes in {self.cluster.state_dir}")
        self.cluster.down()
        self.result["cluster_up_s"] = round(self.cluster.up(), 1)
        self.cluster.apply_crds()
        self.result["creator_stamp"] = self.args.creator_stamp
        self.result["versions"]["kubernetes_running"] = self.cluster.kube_version()
        self.api = self.cluster.api_client()
        # The operator runs with a client certificate of its own so that the apiserver counts its requests apart.
        self.operator_kubeconfig = cost.operator_kubeconfig(
            self.cluster.state_dir / "pki", self.cluster.kubeconfig, self.cluster.state_dir / "operator.kubeconfig"
        )
        self.ns_idle = [f"mgb-idle-{i:02d}" for i in range(self.size.idle_miners)]
        self.ns_load = [f"mgb-load-{i:02d}" for i in range(self.size.namespaces)]
        # Each competitor has namespaces of its own: the baseline watches mgb-cmp-*, Talon acts where told.
        self.ns_cmp = {
            kind: {
                "idle": [f"{prefix}-idle-{i:02d}" for i in range(self.size.idle_miners)],
                "load": [f"{prefix}-load-{i:02d}" for i in range(min(5, self.size.namespaces))],
            }
            for kind, prefix in COMPETITOR_PREFIXES.items()
        }
        self.ns_image = [f"mgb-image-{i:02d}" for i in range(self.size.idle_miners if self.args.inspect_images else 0)]
        ours = [*self.ns_idle, *self.ns_load, *self.ns_image, "mgb-restart", "mgb-metric", "mgb-sentinel"]
        for name in ours:
            self.core.create_namespace(wl.namespace(name, "ours"))
        theirs = [name for phases in self.ns_cmp.values() for names in phases.values() for name in names]
        for name in theirs:
            self.core.create_namespace(wl.namespace(name, "competitor"))
        self.ours_namespaces = set(ours)
        self._wait_service_accounts([*ours, *theirs])
        if self.args.creator_stamp == "on":  # in force before the first pod
            self.result["creator_stamp_in_force_s"] = round(stamp.set_stamp(self.cluster, self.core, True, ours[0]), 2)
        self.observer.start(self.api, [wl.QUARANTINE_LABEL, BASELINE_LABEL], wl.ROLE_LABEL, wl.GROUP, wl.VERSION)
        if self.args.inspect_images:
            self.start_registry()
        for body in (wl.miner_policy(image_config=self.images is not None), wl.cpu_policy(window=CPU_WINDOW)):
            self.custom.create_cluster_custom_object(wl.GROUP, wl.VERSION, "minerpolicies", body)
        self.create_pod("mgb-metric", wl.cpu_pod("cpu-hog"))
        self.phase("setup", t)

    def start_registry(self) -> None:
        """--inspect-images: the loopback registry with the benign shapes' images and one per image-only miner."""
        self.images = bench_images.BenchImages()
        miners = self.size.idle_miners + self.size.load_miners
        self.images.start(sorted({shape[0] for shape in wl.BENIGN_SHAPES}), miners)
        self.result["image_inspection"] = {"registry": self.images.host, "miner_images": miners}
        log(f"images: registry on {self.images.host} with the benign images and {miners} miner images")

    def image_miner(self, phase: str, namespace: str, index: int, benign: int = 0) -> Sample:
        """A miner whose pod spec is innocent: only its image's config (in the loopback registry) gives it away."""
        assert self.images is not None
        name = f"miner-image-{index:03d}"
        body = bench_images.image_only_miner(name, self.images.miner_image(index), wl.ROLE_LABEL)
        return self.add_miner("ours", phase, namespace, name, benign, body)

    def idle_images(self) -> None:
        """--inspect-images: image-only miners, one at a time, each in its own namespace (a registry read each)."""
        t = time.monotonic()
        log(f"idle images: {len(self.ns_image)} image-only miners, one at a time")
        for i, namespace in enumerate(self.ns_image):
            s = self.image_miner("idle-image", namespace, i)
            if not self.wait_contained([s], 30):
                log(f"  ours: {s.pod} (image only) not contained within 30s")
        self.phase("idle images", t)

    def image_readings(self) -> None:
        if self.images is None:
            return
        info = self.result.setdefault("image_inspection", {})
        try:
            info["operator_reads_by_result"] = self.images.reads_by_result(self.op().metrics())
        except OSError as exc:
            info["operator_reads_by_result"] = {"error": str(exc)}
        info["registry_config_blobs_served"] = self.images.config_reads()

    def _wait_service_accounts(self, namespaces: list[str]) -> None:
        want = set(namespaces)
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            have = {
                sa.metadata.namespace
                for sa in self.core.list_service_account_for_all_namespaces(
                    field_selector="metadata.name=default"
                ).items
            }
            if want <= have:
                return
            time.sleep(0.3)
        raise bcluster.BenchError(f"no default ServiceAccount in {sorted(want - have)[:5]} after 120s")

    def start_operator(self) -> None:
        t = time.monotonic()
        shim: list[str] | None = None
        if self.args.what_if_kopf:
            limit, _, idle = self.args.what_if_kopf.partition(":")
            shim = ["--worker-limit", limit or "none", "--idle-timeout", idle or "5"]
            self.result.setdefault("what_if", {})["kopf_queueing"] = {
                "worker_limit": limit or "none",
                "idle_timeout_s": float(idle or 5),
                "note": "NOT the operator as shipped: bench/operator_shim.py replaced kopf's queueing settings",
            }
        extra_env = dict(kv.split("=", 1) for kv in self.args.operator_env)
        if extra_env:
            self.result.setdefault("what_if", {})["operator_env"] = extra_env
        if self.images is not None:  # a shipped setting (the chart's imageInspection: Listed), not a what-if
            extra_env = self.images.operator_env() | extra_env
        self.operator = procs.OperatorProcess(
            self.operator_kubeconfig,
            self.logs / "operator.log",
            self.cluster.prometheus_url,
            extra_env=extra_env,
            shim_args=shim,
        )
        self.op().start()
        healthy = self.op().wait_healthy()
        deadline = time.monotonic() + 60
        names = {wl.miner_policy()["metadata"]["name"], wl.cpu_policy()["metadata"]["name"]}
        while not all(self._policy_ready(n) for n in names):
            if time.monotonic() > deadline:
                raise bcluster.BenchError(f"MinerPolicies not Ready after 60s:\n{self.op().log_tail()}")
            time.sleep(0.2)
        self.result["operator_start"] = {
            "healthy_s": round(healthy, 2),
            "policies_ready_s": round(time.monotonic() - self.op().started_at, 2),
            "footprint_empty_cluster": self.op().footprint().as_dict(),
            "env": self.op().extra_env,
        }
        self.phase("operator start", t)

    def _policy_ready(self, name: str) -> bool:
        obj = self.custom.get_cluster_custom_object(wl.GROUP, wl.VERSION, "minerpolicies", name)
        conds = (obj.get("status") or {}).get("conditions") or []
        return any(c.get("type") == "Ready" and c.get("status") == "True" for c in conds)

    def competitor(self, kind: str) -> Competitor:
        return next(c for c in self.competitors if c.kind == kind)

    def start_competitors(self) -> None:
        """Talon (when it builds and runs) and the baseline controller, side by side with the operator."""
        mode = self.args.compare
        if mode == "none":
            return
        build = talon.build() if mode == "auto" else talon.TalonBuild()
        talon_info = {
            "binary": str(build.binary) if build.binary else None,
            "source": build.source,
            "attempts": build.attempts,
        }
        if build.binary is not None:
            try:
                proc = talon.TalonProcess(build.binary, self.cluster.kubeconfig, self.logs, procs.free_port())
                proc.start()
                self.competitors.append(Competitor("talon", talon_build=talon_info, talon=proc))
                log(f"side by side: Falco Talon built from {build.source}")
            except Exception as exc:  # noqa: BLE001 - reported; the baseline still runs
                talon_info["run_error"] = str(exc)
        if not any(c.kind == "talon" for c in self.competitors):
            why = (
                "--compare baseline"
                if mode == "baseline"
                else "Falco Talon could not be " + ("run" if build.binary else "built") + f": {build.reason}"
            )
            if "run_error" in talon_info:
                why += f" ({talon_info['run_error']})"
            self.talon_missing = {"why": why, "talon_build": talon_info}
            log(f"side by side: no Falco Talon ({why[:160]})")
        self.start_baseline()

    def start_baseline(self) -> None:
        log("side by side: bench/baseline.py")
        stats_path = self.logs / "baseline-stats.json"
        log_file = open(self.logs / "baseline.log", "ab")
        proc = subprocess.Popen(
            [
                sys.executable,
                str(BENCH / "baseline.py"),
                "--kubeconfig",
                str(self.cluster.kubeconfig),
                "--prometheus",
                self.cluster.prometheus_url,
                "--namespace-prefix",
                f"{COMPETITOR_PREFIXES['baseline']}-",
                "--stats",
                str(stats_path),
            ],
            stdout=log_file,
            stderr=subprocess.STDOUT,
            cwd=str(ROOT),
        )
        self.competitors.append(Competitor("baseline", proc=proc, stats_path=stats_path, log_file=log_file))
        deadline = time.monotonic() + 30
        while not stats_path.exists() and time.monotonic() < deadline:
            time.sleep(0.1)

    def stop_competitors(self) -> None:
        for c in self.competitors:
            if c.talon is not None:
                c.talon.stop()
            if c.proc is not None and c.proc.poll() is None:
                c.proc.terminate()
                try:
                    c.proc.wait(timeout=15)
                except subprocess.TimeoutExpired:
                    c.proc.kill()
                    c.proc.wait()
            if c.log_file is not None:
                c.log_file.close()
                c.log_file = None

    # ------------------------------------------------------------------ phases

    def idle(self) -> None:
        t = time.monotonic()
        log(f"idle: {self.size.idle_miners} miners, one at a time, each in its own namespace")
        before = self.op().metrics()
        ours = 0
        for i in range(self.size.idle_miners):
            s = self.add_miner("ours", "idle", self.ns_idle[i], f"miner-idle-{i:02d}")
            ours += 1
            if not self.wait_contained([s], 30):
                log(f"  ours: {s.pod} not contained within 30s")
            for comp in self.competitors:
                c = self.add_miner(comp.kind, "idle", self.ns_cmp[comp.kind]["idle"][i], f"miner-idle-{i:02d}")
                if not self.wait_contained([c], 30):
                    log(f"  {c.contender}: {c.pod} not contained within 30s")
        procs.wait_quiet(self.eval_count, settle=3.0, timeout=20.0)  # the echoes of its own writes are handled
        contained = self.op().metrics()
        time.sleep(API_QUIET_S)
        after = self.op().metrics()
        during, quiet = api_calls(before, contained), api_calls(contained, after)
        if during is not None and quiet is not None and ours:
            self.result["api_calls"] = {
                "containments": ours,
                "per_containment": round(during[1] / ours, 2),
                "by_call": during[0],
                "after_window_s": API_QUIET_S,
                "after_containment_calls": quiet[1],
                "after_by_call": quiet[0],
            }
        self.result["footprint_after_idle"] = self.op().footprint().as_dict()
        self.phase("idle", t)

    def start_metric_onset(self) -> None:
        """Saturate the CPU pod: its simulated usage becomes its limit (1 core)."""
        self.core.patch_namespaced_pod(
            "cpu-hog", "mgb-metric", {"metadata": {"annotations": {wl.CPU_ANNOTATION: "1"}}}, _request_timeout=30
        )
        onset = time.monotonic()
        self.metric_sample = Sample(
            "ours",
            "metric",
            "mgb-metric",
            "cpu-hog",
            onset,
            wl.QUARANTINE_LABEL,
            ("mgb-metric", wl.QUARANTINE_POLICY),
            True,
        )
        self.metric_deadline = onset + CPU_WINDOW_S + METRIC_GRACE_S

    def load(self) -> None:
        t = time.monotonic()
        size = self.size
        log(
            f"load: {size.pods} benign pods at {size.rate:.0f}/s over {size.namespaces} namespaces, "
            f"{size.load_miners} miners mixed in"
        )
        self.logs.mkdir(parents=True, exist_ok=True)
        registry = self.images.host if self.images is not None else ""
        self.loader = Loader(self.cluster.kubeconfig, self.ns_load, size.rate, self.logs / "load.log", registry)
        thresholds = [int((i + 0.5) * size.pods / size.load_miners) for i in range(size.load_miners)]
        load_samples: list[Sample] = []
        checkpoints: list[dict[str, Any]] = []
        next_miner = 0
        load_started = time.monotonic()
        paused = 0.0
        for target in size.checkpoints:
            self.loader.upto(target)
            while True:
                due = thresholds[next_miner] if next_miner < len(thresholds) else None
                created, state = self.loader.wait_progress(due, timeout=5)
                if state == -2:
                    raise bcluster.BenchError(f"the load generator exited; see {self.logs / 'load.log'}")
                while next_miner < len(thresholds) and thresholds[next_miner] <= created:
                    i = next_miner
                    ns = self.ns_load[i % len(self.ns_load)]
                    load_samples.append(self.add_miner("ours", "load", ns, f"miner-load-{i:03d}", created))
                    if self.images is not None:
                        index = len(self.ns_image) + i
                        load_samples.append(self.image_miner("load-image", ns, index, created))
                    for comp in self.competitors:
                        names = self.ns_cmp[comp.kind]["load"]
                        load_samples.append(
                            self.add_miner(comp.kind, "load", names[i % len(names)], f"miner-load-{i:03d}", created)
                        )
                    next_miner += 1
                if state >= 0:
                    break
            reached_at = time.monotonic()
            log(f"  {target} benign pods created ({self.loader.failed} failed); settling")
            checkpoints.append(self.checkpoint(target))
            paused += time.monotonic() - reached_at
        load_s = time.monotonic() - load_started - paused
        self.result["load"] = {
            "created": self.loader.created,
            "failed": self.loader.failed,
            "errors": self.loader.errors,
            "creating_s": round(load_s, 1),
            "achieved_rate_per_s": round(self.loader.created / load_s, 1) if load_s > 0 else None,
        }
        self.result["checkpoints"] = checkpoints
        self.loader.quit()
        self.loader = None
        log(f"  waiting for the miners created under load to be contained (up to {size.drain_s:.0f}s)")
        self.wait_contained(load_samples, size.drain_s)
        self.phase("load", t)

    def checkpoint(self, pods: int) -> dict[str, Any]:
        """Readings with ``pods`` benign pods created, once the operator has caught up (at most 60 s).

        Caught up: a sentinel miner created now (in its own namespace) is contained, so the
        operator has handled the events that came before it. Then its evaluation count must
        stop moving for 3 s. A reading taken without that is marked as such.
        """
        measure_queries = pods in (self.size.checkpoints[0], self.size.checkpoints[-1])
        begin = self.query_cost_begin() if measure_queries else None
        started = time.monotonic()
        sentinel = self.add_miner("ours", "sentinel", "mgb-sentinel", f"sentinel-{pods:05d}", pods)
        caught_up = self.wait_contained([sentinel], 60)
        procs.wait_quiet(self.eval_count, settle=3.0, timeout=20.0)
        point: dict[str, Any] = {
            "benign_pods": pods,
            "settle_s": round(time.monotonic() - started, 1),
            "operator": self.op().footprint().as_dict(),
            "evaluations": self.eval_count(),
            "caught_up": caught_up,
            "sentinel_latency_s": None if sentinel.latency is None else round(sentinel.latency, 3),
        }
        for comp in self.competitors:
            pid = comp.pid()
            if pid is not None:
                try:
                    point.setdefault("competitors", {})[comp.kind] = procs.footprint(pid).as_dict()
                except OSError:
                    pass
        if begin is not None:
            point["query_cost"] = self.query_cost_end(begin)
        return point

    def query_cost_begin(self) -> tuple[procs.Metrics, float] | dict[str, Any]:
        """First reading for :meth:`query_cost_end`, or why the query cost cannot be measured."""
        try:
            m0 = self.op().metrics()
        except OSError as exc:
            return {"available": False, "reason": f"the operator's /metrics did not answer: {exc}"}
        if "minerguard_promql_queries" not in m0.families:
            return {"available": False, "reason": "the operator does not expose minerguard_promql_queries_total"}
        return m0, time.monotonic()

    def query_cost_end(self, begin: tuple[procs.Metrics, float] | dict[str, Any]) -> dict[str, Any]:
        """PromQL queries and their time per evaluation cycle, from the operator's own /metrics.

        Counted over at least two metric cycles since :meth:`query_cost_begin`: queries from
        ``minerguard_promql_queries_total``, cycles from a ``minerguard_*cycle*`` histogram's count
        (else elapsed time / the interval), query time from a ``minerguard_promql*_seconds``
        histogram's sum.
        """
        if isinstance(begin, dict):
            return begin
        m0, t0 = begin

        def cycle_names(m: procs.Metrics) -> list[str]:
            return sorted(
                n
                for n in m.samples
                if n.startswith("minerguard_") and "cycle" in n and n.endswith(("_total", "_count"))
            )

        deadline = t0 + 3 * OPERATOR_METRICS_INTERVAL_S + 5
        while True:
            m1 = self.op().metrics()
            names = cycle_names(m1)
            elapsed = time.monotonic() - t0
            if names and (m1.total(names[0]) or 0.0) - (m0.total(names[0]) or 0.0) >= 2:
                break
            if not names and elapsed >= 2 * OPERATOR_METRICS_INTERVAL_S + 2:
                break
            if time.monotonic() > deadline:
                break
            time.sleep(1.0)
        duration_names = sorted(
            n for n in m1.samples if n.startswith("minerguard_promql") and n.endswith("_seconds_sum")
        )

        def delta(name: str) -> float:
            return (m1.total(name) or 0.0) - (m0.total(name) or 0.0)

        queries = delta("minerguard_promql_queries_total")
        cycles = delta(names[0]) if names else elapsed / OPERATOR_METRICS_INTERVAL_S
        before = m0.by_label("minerguard_promql_queries_total", "signal")
        by_signal = {
            k: round((v - before.get(k, 0.0)) / cycles, 2) if cycles else None
            for k, v in m1.by_label("minerguard_promql_queries_total", "signal").items()
        }
        out: dict[str, Any] = {
            "available": queries > 0 and cycles > 0,
            "window_s": round(elapsed, 1),
            "cycles": round(cycles, 2),
            "cycles_from": names[0] if names else f"elapsed / {OPERATOR_METRICS_INTERVAL_S:.0f}s interval",
            "queries": queries,
            "queries_per_cycle": round(queries / cycles, 2) if cycles else None,
            "queries_per_cycle_by_signal": by_signal,
            "last_cycle_queries_gauge": m1.total("minerguard_promql_cycle_queries"),
            "errors": delta("minerguard_promql_errors_total"),
        }
        if duration_names and cycles:
            out["query_seconds_per_cycle"] = round(delta(duration_names[0]) / cycles, 4)
            out["duration_metric"] = duration_names[0]
        else:
            out["query_seconds_per_cycle"] = None
            out["duration_note"] = "no minerguard_promql*_seconds histogram exposed"
        if not out["available"]:
            out["reason"] = f"no PromQL query (or no completed cycle) in {elapsed:.0f}s"
        return out

    def creator_stamp(self) -> None:
        """--creator-stamp on|both: pod create latency without and with the stamp (bench/stamp.py), then a miner
        created last and contained shows the operator has seen every pod of the phase before the writes check."""
        if self.args.creator_stamp == "off":
            return
        t = time.monotonic()
        log(f"creator stamp: {stamp.PODS} benign pods in {stamp.NAMESPACE}, in blocks without and with the stamp")
        self.core.create_namespace(wl.namespace(stamp.NAMESPACE, "ours"))
        self._wait_service_accounts([stamp.NAMESPACE])
        cost = stamp.admission_cost(self.cluster, self.core, end_on=self.args.creator_stamp == "on")
        self.result["creator_stamp_admission"] = cost
        sentinel = self.add_miner("ours", "stamp", stamp.NAMESPACE, "stamp-sentinel")
        if not self.wait_contained([sentinel], 60):
            log("creator stamp: the sentinel miner was not contained within 60 s")
        self.phase("creator stamp", t)

    def check_writes(self) -> None:
        """Zero writes to benign pods, and the writes per contained pod, read back from the API."""
        t = time.monotonic()
        log("writes: checking every benign pod's managedFields, annotations, finalizers and labels")
        pods = list_all(self.core.list_pod_for_all_namespaces, label_selector=f"{wl.ROLE_LABEL}=benign")
        written: list[str] = []
        stamped = 0
        managers: dict[str, int] = {}
        benign_names: set[tuple[str, str]] = set()
        by_stamp = {arm: {"checked": 0, "written_by_operator": 0} for arm in ("stamped", "not_stamped")}
        stamp_on_unstamped = 0
        for pod in pods:
            meta = pod.get("metadata") or {}
            key = (str(meta.get("namespace")), str(meta.get("name")))
            benign_names.add(key)
            names = {str(m.get("manager", "")) for m in meta.get("managedFields") or []}
            for manager in names:
                managers[manager] = managers.get(manager, 0) + 1
            annotations = meta.get("annotations") or {}
            # The creator stamp (--creator-stamp) is written by admission at CREATE under the creating client's
            # own field manager, not by minerguard: it is counted apart, and any other minerguard key still counts.
            is_stamped = any(k in CREATOR_STAMP_KEYS for k in annotations)
            stamped += int(is_stamped)
            stamp_on_unstamped += int(key[1].startswith("stamp-on-") and not is_stamped)
            touched = (
                any("minerguard" in m or "kopf" in m for m in names)
                or any(k.startswith(("kopf.", "minerguard.io")) and k not in CREATOR_STAMP_KEYS for k in annotations)
                or any("minerguard" in f or "kopf" in f for f in meta.get("finalizers") or [])
                or wl.QUARANTINE_LABEL in (meta.get("labels") or {})
            )
            arm = by_stamp["stamped" if is_stamped else "not_stamped"]
            arm["checked"] += 1
            if touched:
                written.append(f"{key[0]}/{key[1]}")
                arm["written_by_operator"] += 1
        events = list_all(client.EventsV1Api(self.api).list_event_for_all_namespaces)
        ours = [e for e in events if e.get("reportingController") == OPERATOR_EVENTS]
        about_benign = [
            e
            for e in ours
            if ((e.get("regarding") or {}).get("namespace"), (e.get("regarding") or {}).get("name")) in benign_names
        ]
        # Writes per contained pod: the miners' namespaces only (not the metric test's pod, nor the sentinels).
        counted = self.ours_namespaces - {"mgb-metric", "mgb-sentinel"}

        def miner_event(e: dict[str, Any]) -> bool:
            """About a miner in the counted namespaces: on the pod, or on the MinerPolicy naming the pod."""
            regarding, related = e.get("regarding") or {}, e.get("related") or {}
            if regarding.get("namespace") in counted or related.get("namespace") in counted:
                return True
            match = re.search(r"matched Pod ([^/ ]+)/", str(e.get("note") or ""))
            return regarding.get("kind") == "MinerPolicy" and match is not None and match.group(1) in counted

        miner_events = [e for e in ours if miner_event(e)]
        reasons: dict[str, int] = {}
        for e in miner_events:
            reasons[str(e.get("reason"))] = reasons.get(str(e.get("reason")), 0) + 1
        labelled = self.observer.labelled.get(wl.QUARANTINE_LABEL, {})
        n = sum(1 for ns, _ in labelled if ns in counted)
        per_pod = {
            "pod_metadata": sum(v for k, v in self.observer.miner_meta_writes.items() if k[0] in counted),
            "network_policy": sum(v for ns, v in self.observer.netpol_writes.items() if ns in counted),
            "miner_incident": sum(v for ns, v in self.observer.incident_writes.items() if ns in counted),
            "events": len(miner_events),
        }
        policy_writes = sum(self.observer.policy_writes.values())
        self.result["writes"] = {
            "benign_pods_checked": len(pods),
            "benign_pods_written_by_operator": len(written),
            "benign_pods_with_creator_stamp": stamped,
            "benign_pods_by_creator_stamp": by_stamp,
            "stamp_on_pods_not_stamped": stamp_on_unstamped,
            "benign_pods_written_examples": written[:10],
            "operator_events_about_benign_pods": len(about_benign),
            "field_managers_on_benign_pods": managers,
            "contained_pods": n,
            "totals": per_pod,
            "per_contained_pod": {k: round(v / n, 2) for k, v in per_pod.items()} if n else {},
            "per_contained_pod_total": round(sum(per_pod.values()) / n, 2) if n else None,
            "minerpolicy_status_writes": policy_writes,
            "operator_event_reasons": reasons,
            "apiserver_write_calls": self.apiserver_write_calls(),
        }
        self.phase("writes", t)

    def apiserver_write_calls(self) -> dict[str, Any]:
        """kube-apiserver's own count of write requests to the kinds only the operator writes."""
        try:
            text = self.cluster.apiserver_get("/metrics").decode()
        except Exception as exc:  # noqa: BLE001 - a cross-check only
            return {"error": str(exc)}
        out: dict[str, Any] = {}
        for family in text_string_to_metric_families(text):
            if family.name != "apiserver_request":
                continue
            for s in family.samples:
                lbl = s.labels
                if s.name != "apiserver_request_total" or lbl.get("verb") not in ("POST", "PUT", "PATCH", "DELETE"):
                    continue
                if lbl.get("resource") == "minerincidents":
                    sub = f"/{lbl['subresource']}" if lbl.get("subresource") else ""
                    key = f"minerincidents{sub} {lbl['verb']} {lbl.get('code')}"
                    out[key] = out.get(key, 0.0) + s.value
        return out

    def metric_detection(self) -> None:
        t = time.monotonic()
        s = self.metric_sample
        left = self.metric_deadline - time.monotonic()
        log(f"metric detection: waiting up to {max(0.0, left):.0f}s more for the saturated pod to be contained")
        self.wait_contained([s], max(0.0, left))
        self.samples.append(s)
        if s.latency is None:
            self.result["metric_detection"] = {
                "available": False,
                "window_s": CPU_WINDOW_S,
                "reason": f"the saturated pod was not contained within window + {METRIC_GRACE_S:.0f}s",
            }
        else:
            self.result["metric_detection"] = {
                "available": True,
                "window_s": CPU_WINDOW_S,
                "latency_s": round(s.latency, 2),
                "latency_over_window": round(s.latency / CPU_WINDOW_S, 2),
            }
        self.phase("metric detection wait", t)

    def steady_cost(self) -> None:
        """What the operator costs the cluster at steady state: API requests/s (the apiserver's own count) and
        the Prometheus load per metric cycle (bench/cost.py)."""
        t = time.monotonic()
        log(f"cost: the operator's API requests and Prometheus load over {COST_WINDOW_S:.0f} s of steady state")
        try:
            apiserver = lambda: self.cluster.apiserver_get("/metrics").decode()  # noqa: E731
            c = cost.steady_window(apiserver, self.op().metrics, COST_WINDOW_S)
            c["prometheus"] = cost.prometheus_load(
                self.cluster.prometheus_url, cost.cycle_queries(self.custom, wl.GROUP, wl.VERSION)
            )
        except (OSError, ApiException, ValueError) as exc:
            self.result["cost"] = {"available": False, "reason": f"{type(exc).__name__}: {exc}"[:300]}
            return
        c["pods"] = len(list_all(self.core.list_pod_for_all_namespaces, label_selector=wl.ROLE_LABEL))
        c["contained_pods"] = len(self.observer.labelled.get(wl.QUARANTINE_LABEL, {}))
        self.result["cost"] = c
        self.phase("steady cost", t)

    def restart(self) -> None:
        t = time.monotonic()
        op = self.op()
        before = op.footprint().as_dict()
        in_cluster = len(list_all(self.core.list_pod_for_all_namespaces, label_selector=wl.ROLE_LABEL))
        log(
            f"restart: operator stopped; {self.size.restart_miners} miners created; "
            "operator started on the full cluster"
        )
        op.stop()
        pending = []
        for i in range(self.size.restart_miners):
            pending.append(self.add_miner("ours", "restart", "mgb-restart", f"miner-restart-{i}"))
        started = op.start()
        for s in pending:
            s.start = started
        healthy = op.wait_healthy(timeout=self.size.restart_wait_s)
        self.wait_contained(pending, self.size.restart_wait_s)
        done = [s.latency for s in pending if s.latency is not None]
        settle = procs.wait_quiet(self.eval_count, settle=3.0, timeout=120.0)
        self.result["restart"] = {
            "pods_in_cluster": in_cluster + len(pending),
            "miners_waiting": len(pending),
            "healthy_s": round(healthy, 2),
            "first_contained_s": round(min(done), 2) if done else None,
            "last_contained_s": round(max(done), 2) if len(done) == len(pending) else None,
            "contained": len(done),
            "footprint_before_stop": before,
            "footprint_after_start": op.footprint().as_dict(),
            "settle_s": round(settle, 1),
        }
        self.phase("restart", t)

    # ------------------------------------------------------------------ results

    def summarise(self) -> None:
        lat: dict[str, Any] = {}
        for contender in ("ours", "baseline", "talon"):
            for phase in ("idle", "load", "idle-image", "load-image"):
                group = [s for s in self.samples if s.contender == contender and s.phase == phase]
                if not group:
                    continue
                values = [s.latency for s in group if s.latency is not None]
                censored = [s.watched_for for s in group if s.latency is None and s.watched_for is not None]
                entry = stats.summary(values, censored)
                entry["created"] = len(group)
                firsts = [s.latency for s in group if s.first_in_namespace and s.latency is not None]
                others = [s.latency for s in group if not s.first_in_namespace and s.latency is not None]
                if firsts and others:
                    entry["p50_first_in_namespace"] = stats.percentile(firsts, 50)
                    entry["p50_namespace_already_quarantined"] = stats.percentile(others, 50)
                lat[f"{contender}/{phase}"] = entry
        self.result["containment_latency_s"] = lat
        ratios: dict[str, dict[str, Any]] = {}
        for comp in self.competitors:
            for phase in ("idle", "load"):
                a, b = lat.get(f"ours/{phase}"), lat.get(f"{comp.kind}/{phase}")
                if a and b:
                    ratios.setdefault(comp.kind, {})[phase] = {
                        q: (round(a[q] / b[q], 3) if a[q] and b[q] else None) for q in ("p50", "p95", "p99", "max")
                    }
        self.result["side_by_side"] = {
            "competitors": [c.kind for c in self.competitors],
            "talon_missing": self.talon_missing,
            "talon_build": next((c.talon_build for c in self.competitors if c.kind == "talon"), None),
            "ratios_ours_over_theirs": ratios,
        }
        for comp in self.competitors:
            if comp.stats_path is not None and comp.stats_path.exists():
                self.result["side_by_side"]["baseline_counts"] = json.loads(comp.stats_path.read_text())
        self.result["samples"] = [s.as_dict() for s in self.samples]
        fp = self.result.get("checkpoints") or []
        if len(fp) >= 2:
            a, b = fp[0], fp[-1]
            dp = (b["benign_pods"] - a["benign_pods"]) / 1000
            if dp > 0:
                self.result["footprint_growth_per_1000_pods"] = {
                    "peak_rss_mib": round((b["operator"]["peak_rss_mib"] - a["operator"]["peak_rss_mib"]) / dp, 2),
                    "cpu_seconds": round((b["operator"]["cpu_seconds"] - a["operator"]["cpu_seconds"]) / dp, 2),
                }

    def report(self) -> str:
        r = self.result
        m = r["machine"]
        size = self.size
        out = []
        if r.get("what_if"):
            out.append(f"WHAT-IF RUN, not the operator as shipped with its defaults: {r['what_if']}")
        out += [
            f"minerguard benchmarks, {size.name} size: {size.nodes} KWOK nodes, {size.pods} benign pods at "
            f"{size.rate:.0f}/s, {size.load_miners} miners under load, {size.idle_miners} idle",
            f"machine: {m['cores']} cores ({m['cpu_model']}), {m['memory_gib']} GiB, Python {m['python']}, "
            f"Kubernetes {r['versions'].get('kubernetes_running')}, KWOK {r['versions'].get('KWOK_VERSION')}; "
            f"operator at {r['source']['commit']}"
            + (
                f" + {r['source']['operator_uncommitted_changes']} uncommitted files"
                if r["source"]["operator_uncommitted_changes"]
                else ""
            ),
            "",
            "Containment latency (create call returned -> pod labelled AND NetworkPolicy present, seen by watches)",
        ]
        rows = []
        targets = {"ours/idle": "p50 < 100 ms", "ours/load": "p99 < 1 s"}
        for key, e in r.get("containment_latency_s", {}).items():
            contained = f"{e['n']}/{e['created']}"
            rows.append(
                [key, contained, *(stats.cell(e, q) for q in ("p50", "p95", "p99", "max")), targets.get(key, "")]
            )
        out.append(stats.table(["", "contained", "p50", "p95", "p99", "max", "target"], rows))
        ii = r.get("image_inspection")
        if ii:
            out.append(
                f"  image inspection on (registry {ii['registry']}): */*-image rows are image-only miners (nothing in "
                f"the spec, one registry read each); operator reads by result "
                f"{ii.get('operator_reads_by_result')}, config blobs the registry served "
                f"{ii.get('registry_config_blobs_served')}"
            )
        sbs = r.get("side_by_side", {})
        for kind, by_phase in (sbs.get("ratios_ours_over_theirs") or {}).items():
            out.append(
                f"  ours/{kind} ratio: "
                + "; ".join(
                    f"{phase} " + " ".join(f"{q} {v if v is not None else '-'}" for q, v in qs.items())
                    for phase, qs in by_phase.items()
                )
            )
        if "talon" in (sbs.get("competitors") or []):
            out.append(
                "  Falco Talon: fed the Falco event over HTTP as each pod is created (its best case: Falco would "
                "see the process later); its NetworkPolicy is egress-only, ours isolates both ways"
            )
        if sbs.get("talon_missing"):
            out.append(f"  Falco Talon: not in this run ({sbs['talon_missing']['why'][:300]})")
        a = r.get("api_calls", {})
        if a:
            out += [
                "",
                f"API calls per containment (idle, {a['containments']} miners, from minerguard_api_calls_total): "
                f"{a['per_containment']} (target <= 7); in the {a['after_window_s']:.0f} s after: "
                f"{a['after_containment_calls']:g} (target 0)",
                "  " + ", ".join(f"{k} {v:g}" for k, v in sorted(a["by_call"].items())),
            ]
        w = r.get("writes", {})
        if w:
            out += [
                "",
                "Writes",
                f"  benign pods checked: {w['benign_pods_checked']}; written by the operator: "
                f"{w['benign_pods_written_by_operator']} (target 0); operator Events about them: "
                f"{w['operator_events_about_benign_pods']}",
                f"  per contained pod ({w['contained_pods']} pods): {w['per_contained_pod_total']} = "
                + ", ".join(f"{k} {v}" for k, v in w["per_contained_pod"].items())
                + f"; MinerPolicy status writes in the run: {w['minerpolicy_status_writes']}",
            ]
        if w and r.get("creator_stamp", "off") != "off":
            out += stamp.report(r["creator_stamp"], r.get("creator_stamp_admission"), w)
        cps = r.get("checkpoints") or []
        if cps:
            out += [
                "",
                "Operator footprint at each pod count (read once a sentinel miner created then was contained, "
                "or after 60 s)",
            ]
            rows = []
            for c in cps:
                row = [
                    c["benign_pods"],
                    f"{c['operator']['peak_rss_mib']} MiB",
                    f"{c['operator']['rss_mib']} MiB",
                    f"{c['operator']['cpu_seconds']} s",
                ]
                row += [
                    f"yes ({stats.fmt_s(c['sentinel_latency_s'])})" if c["caught_up"] else "no: sentinel not contained"
                ]
                for kind in sbs.get("competitors") or []:
                    comp = (c.get("competitors") or {}).get(kind)
                    row += [f"{comp['peak_rss_mib']} MiB / {comp['cpu_seconds']} s" if comp else "-"]
                rows.append(row)
            headers = ["benign pods", "peak RSS", "RSS", "CPU", "caught up"]
            headers += [f"{kind} peak RSS / CPU" for kind in sbs.get("competitors") or []]
            out.append(stats.table(headers, rows))
            g = r.get("footprint_growth_per_1000_pods")
            if g:
                out.append(
                    f"  growth per 1000 pods: peak RSS {g['peak_rss_mib']} MiB, CPU {g['cpu_seconds']} s "
                    "(target: peak RSS < 200 MiB at 10,000 pods)"
                )
            out += ["", "Query cost per evaluation cycle"]
            for c in cps:
                q = c.get("query_cost")
                if q is None:
                    continue
                if q.get("available"):
                    out.append(
                        f"  {c['benign_pods']} pods: {q['queries_per_cycle']} queries, "
                        f"{stats.fmt_s(q.get('query_seconds_per_cycle'))} per cycle {q['queries_per_cycle_by_signal']}"
                    )
                else:
                    out.append(f"  {c['benign_pods']} pods: not available ({q.get('reason')})")
        md = r.get("metric_detection")
        if md:
            out += ["", "Metric detection (saturation onset -> containment; policy window 30s)"]
            if md["available"]:
                out.append(
                    f"  {md['latency_s']} s ({md['latency_over_window']} x window; target <= window + 30 s = "
                    f"{CPU_WINDOW_S + 30:.0f} s)"
                )
            else:
                out.append(f"  not available ({md['reason']})")
        if r.get("cost"):
            out += cost.report_lines(r["cost"])
        rs = r.get("restart")
        if rs:
            bound = f"not within {self.size.restart_wait_s:.0f} s"
            first = bound if rs["first_contained_s"] is None else f"{rs['first_contained_s']} s"
            last = bound if rs["last_contained_s"] is None else f"{rs['last_contained_s']} s"
            out += [
                "",
                f"Operator start on a full cluster ({rs['pods_in_cluster']} pods, "
                f"{rs['miners_waiting']} miners waiting)",
                f"  healthy {rs['healthy_s']} s, first miner contained {first}, last {last} after the process "
                f"started ({rs['contained']}/{rs['miners_waiting']} contained); peak RSS "
                f"{rs['footprint_after_start']['peak_rss_mib']} MiB",
            ]
        out += ["", "Phases (s): " + ", ".join(f"{k} {v}" for k, v in r["phases_s"].items())]
        return "\n".join(out)

    # ------------------------------------------------------------------ main

    def run(self) -> int:
        started = time.monotonic()
        self.logs.mkdir(parents=True, exist_ok=True)
        for name in ("operator.log", "baseline.log", "baseline-stats.json", "load.log", "talon.log"):
            (self.logs / name).unlink(missing_ok=True)
        self.result["logs"] = str(self.logs)
        try:
            self.setup()
            self.logs.mkdir(parents=True, exist_ok=True)
            self.start_operator()
            self.start_competitors()
            self.idle()
            if self.images is not None:
                self.idle_images()
            self.start_metric_onset()
            self.load()
            self.image_readings()
            self.creator_stamp()
            self.check_writes()
            self.metric_detection()
            self.steady_cost()
            self.restart()
        finally:
            self.result["total_s"] = round(time.monotonic() - started, 1)
            self.cleanup()
        self.result["machine"]["loadavg_at_end"] = list(os.getloadavg())
        self.summarise()
        text = self.report()
        print(text)
        out = Path(self.args.out)
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(self.result, indent=2, default=str))
        log(f"results written to {out}")
        return 0

    def cleanup(self) -> None:
        if self.loader is not None:
            self.loader.quit()
        self.stop_competitors()
        if self.operator is not None:
            self.operator.stop()
        self.observer.stop()
        if self.images is not None:
            self.images.stop()
        if not self.args.keep_cluster:
            log("cluster: tearing down")
            self.cluster.down()


COST_WINDOW_S = 60.0
"""Seconds of steady state (load over, miners contained) over which the operator's cost is counted."""
API_QUIET_S = 10.0
"""Seconds of quiet after the idle miners are contained in which API calls are counted (target: none)."""
NOT_CONTAINMENT = ("MinerPolicy", "ClusterKopfPeering")
"""Resources of the periodic loops (policy status counts, peering), not of containing a pod."""


def api_calls(m0: procs.Metrics, m1: procs.Metrics) -> tuple[dict[str, float], float] | None:
    """The operator's own ``minerguard_api_calls_total`` between two scrapes: by "verb resource", and the sum
    of those that belong to containment (not the periodic loops'); None when the operator does not count."""
    name = "minerguard_api_calls_total"
    if name not in m1.samples:
        return None
    start = {(lb.get("verb", ""), lb.get("resource", "")): v for lb, v in m0.samples.get(name, [])}
    delta: dict[str, float] = {}
    for lb, v in m1.samples[name]:
        key = (lb.get("verb", ""), lb.get("resource", ""))
        if v > start.get(key, 0.0):
            delta[f"{key[0]} {key[1]}"] = v - start.get(key, 0.0)
    return delta, sum(v for k, v in delta.items() if k.split(" ", 1)[1] not in NOT_CONTAINMENT)


COMPETITOR_PREFIXES = {"baseline": "mgb-cmp", "talon": "mgb-tln"}
"""Namespace prefixes of each competitor's miners (the baseline controller watches its own prefix)."""


def list_all(lister: Any, **kwargs: Any) -> list[dict[str, Any]]:
    """Every object of a list call, page by page, as plain dicts."""
    items: list[dict[str, Any]] = []
    cont: str | None = None
    while True:
        extra = {"_continue": cont} if cont else {}
        resp = lister(limit=1000, _preload_content=False, _request_timeout=120, **extra, **kwargs)
        body = json.loads(resp.data)
        items.extend(body.get("items") or [])
        cont = (body.get("metadata") or {}).get("continue")
        if not cont:
            return items


def env_setting(text: str) -> str:
    if "=" not in text or not text.split("=", 1)[0]:
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE, got {text!r}")
    return text


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="20 nodes, 1,000 pods, 20 miners: a few minutes")
    ap.add_argument("--out", default=str(BENCH / "results" / "latest.json"))
    ap.add_argument(
        "--compare",
        choices=["auto", "baseline", "none"],
        default="auto",
        help="auto: Falco Talon if it can be built, else bench/baseline.py",
    )
    ap.add_argument("--cluster-dir", default=os.environ.get("MGBENCH_CLUSTER_DIR", "/tmp/mg-bench-cluster"))
    ap.add_argument("--keep-cluster", action="store_true", help="leave the benchmark cluster running")
    ap.add_argument("--nodes", type=int, help="override the size's KWOK node count")
    ap.add_argument("--pods", type=int, help="override the size's benign pod count")
    ap.add_argument("--rate", type=float, help="override the pod creation rate (pods/s)")
    ap.add_argument(
        "--what-if-kopf",
        metavar="LIMIT:IDLE",
        help="what-if only: run the operator with kopf's per-object worker limit and idle timeout replaced "
        "(e.g. none:5, kopf's defaults) through bench/operator_shim.py",
    )
    ap.add_argument(
        "--creator-stamp",
        choices=["off", "on", "both"],
        nargs="?",
        const="on",
        default="off",
        help="the chart's creator stamp (a MutatingAdmissionPolicy: admission writes minerguard.io/created-by, "
        "not the operator). on: installed from the start, every benign pod stamped; both: off for the run. "
        "With on or both, a phase after the load times pod creates without and with it (bench/stamp.py) "
        "and the zero-writes check is reported for stamped and unstamped pods (target 0 each)",
    )
    ap.add_argument(
        "--operator-env",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        type=env_setting,
        help="an extra environment setting for the operator (repeatable), e.g. MINERGUARD_RESYNC_INTERVAL=300; "
        "the run is then marked as a what-if",
    )
    ap.add_argument(
        "--inspect-images",
        action="store_true",
        help="image inspection on (bench/images.py): a loopback registry serves every image, the Enforce policy "
        "reads image configs, and image-only miners (nothing in the pod spec) are added to the idle and load phases",
    )
    args = ap.parse_args()
    try:
        return Bench(args).run()
    except bcluster.BenchError as exc:
        print(f"bench: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
