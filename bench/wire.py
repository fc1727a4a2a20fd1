#!/usr/bin/env python3
"""Quarantine to the first refused packet, on the real node: ``make bench-wire`` (``bench/wire.py``).

    bench/wire.py [--runs 5] [--out bench/results/wire-latest.json] [--keep-cluster]

Starts its own local control plane (bench/bcluster.py: its own state directory and ports) with
the real node ``real-0`` (hack/realnode.py; needs root and ``hack/tools.sh real-node``), imports the
operator image built by ``make image``, runs the operator as a process, and repeats the scene of
``tests/e2e/test_real_wire.py`` ``--runs`` times, each in a fresh namespace: a stand-in XMRig
connects to a stand-in pool (a new connection every 0.1 s) under an Audit policy, the policy is
switched to Enforce, and the miner's own log says when its connections were first refused. For
each run:

* ``api_s``: policy switched to Enforce → the quarantine (label + deny-all) seen in the API (the
  operator re-evaluates the namespace's pods on a policy change);
* ``egress_s`` / ``ingress_s``: quarantine seen in the API → the first refused connection from
  the miner / to the miner (the dataplane's own delay, kube-router's firewall);
* ``enforce_to_refused_s``: the two together, as an attacker would feel it;
* ``restored_s``: release → the miner's first accepted share again.

Medians (and min/max) are printed and written as JSON with every sample. docs/reliability.md
reports them.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import bcluster
import procs
from kubernetes import client

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "hack"))

import realnode  # noqa: E402 - hack/ is not a package
from tests.e2e import wire  # noqa: E402 - the scene the e2e test uses
from tests.e2e.objects import GROUP, policy_body  # noqa: E402
from tests.e2e.realnode import RealNode, image_archive, image_reference  # noqa: E402


def log(msg: str) -> None:
    print(f"[wire] {msg}", file=sys.stderr, flush=True)


class Bench:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.cluster = bcluster.BenchCluster(Path(args.cluster_dir), nodes=1, scrape_interval="5s")
        self.samples: list[dict[str, float]] = []

    def kubectl(self, *args: str, stdin: str | None = None, check: bool = True) -> subprocess.CompletedProcess[str]:
        res = subprocess.run(
            [str(bcluster.tools_bindir() / "kubectl"), "--kubeconfig", str(self.cluster.kubeconfig), *args],
            input=stdin,
            capture_output=True,
            text=True,
            timeout=120,
        )
        if check and res.returncode != 0:
            raise bcluster.BenchError(f"kubectl {' '.join(args)}: {res.stderr.strip()}")
        return res

    def setup(self) -> RealNode:
        problem = realnode.host_problem()
        if problem:
            raise bcluster.BenchError(f"no real node on this machine: {problem}")
        self.cluster.up()
        for step in (["node-up"], ["import-image", str(image_archive())]):
            res = self.cluster.hack(*step, timeout=900)
            if res.returncode != 0:
                raise bcluster.BenchError(f"cluster.py {' '.join(step)}: {res.stderr[-2000:]}")
        api = self.cluster.api_client()
        self.core, self.networking = client.CoreV1Api(api), client.NetworkingV1Api(api)
        self.kubectl("apply", "--server-side", "-f", str(ROOT / "crds"))
        self.kubectl("wait", "--for=condition=Established", "crd", "--all", "--timeout=60s")
        self.kubectl("create", "namespace", "minerguard-system", check=False)
        # The e2e scene's kubectl, pointed at this cluster.
        wire.kubectl = self.kubectl  # type: ignore[assignment]
        self.operator = procs.OperatorProcess(
            self.cluster.kubeconfig,
            self.cluster.state_dir / "logs" / "operator.log",
            self.cluster.prometheus_url,
            {"MINERGUARD_RESYNC_INTERVAL": "5", "MINERGUARD_STATUS_INTERVAL": "1"},
        )
        self.operator.start()
        node = realnode.Node(self.cluster.state_dir, bcluster.tools_bindir())
        return RealNode(name=realnode.NODE, image=image_reference(), impl=node)

    def wait(self, check: Any, timeout: float, what: str, interval: float = 0.05) -> Any:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                value = check()
                if value:
                    return value
            except Exception:  # noqa: BLE001, S110 - not yet
                pass
            time.sleep(interval)
        raise bcluster.BenchError(f"timed out after {timeout:.0f}s waiting for {what}")

    def applied(self, namespace: str) -> bool:
        """The quarantine in the API (label and deny-all), read with the Python client: a few ms a check."""
        labels = self.core.read_namespaced_pod("miner", namespace).metadata.labels or {}
        if labels.get("minerguard.io/quarantined") != "true":
            return False
        names = [p.metadata.name for p in self.networking.list_namespaced_network_policy(namespace).items]
        return "minerguard-quarantine" in names

    def run_once(self, node: RealNode, pool: wire.Pool, i: int) -> dict[str, float]:
        ns = f"wire-bench-{i}-{uuid.uuid4().hex[:4]}"
        self.kubectl("create", "namespace", ns)
        name = f"wire-bench-{ns}"
        body = policy_body(name, ns, "Audit")
        self.kubectl("apply", "-f", "-", stdin=json.dumps(body))
        wire.start_miner(node, ns, pool)
        miner_ip = wire.pod_ip(ns, "miner")
        wire.start_client(node, ns, {"miner": f"{miner_ip}:{wire.MINER_API_PORT}"})
        wire.pod_ip(ns, "client")
        start = time.time()
        self.wait(lambda: wire.first(wire.lines(ns, "miner"), start, True, kind="new"), 60, "accepted shares", 0.5)
        self.wait(lambda: wire.first(wire.lines(ns, "client"), start, True, target="miner"), 60, "miner reachable", 0.5)
        patch = {"spec": {"mode": "Enforce", "actions": [{"name": "quarantine"}]}}
        t_enforce = time.time()
        self.kubectl("patch", f"minerpolicies.{GROUP}", name, "--type", "merge", "-p", json.dumps(patch))
        self.wait(lambda: self.applied(ns), 60, "the quarantine in the API", 0.02)
        t_applied = time.time()
        out = self.wait(lambda: wire.first(wire.lines(ns, "miner"), t_enforce, False, kind="new"), 30, "refused", 0.5)
        inn = self.wait(lambda: wire.first(wire.lines(ns, "client"), t_enforce, False, target="miner"), 30, "in", 0.5)
        incident = self.wait(
            lambda: json.loads(self.kubectl("get", f"minerincidents.{GROUP}", "-n", ns, "-o", "json").stdout)["items"],
            30,
            "the incident",
        )[0]["metadata"]["name"]
        release = {"spec": {"release": True, "releasedBy": "bench"}}
        t_release = time.time()
        self.kubectl(
            "patch", f"minerincidents.{GROUP}", incident, "-n", ns, "--type", "merge", "-p", json.dumps(release)
        )
        back = self.wait(lambda: wire.first(wire.lines(ns, "miner"), t_release, True, kind="new"), 60, "restored", 0.5)
        self.kubectl("delete", f"minerpolicies.{GROUP}", name, check=False)
        self.kubectl("delete", "namespace", ns, "--wait=false", check=False)
        sample = {
            "api_s": round(t_applied - t_enforce, 3),
            "egress_s": round(out["t"] - t_applied, 3),
            "ingress_s": round(inn["t"] - t_applied, 3),
            "enforce_to_refused_s": round(out["t"] - t_enforce, 3),
            "restored_s": round(back["t"] - t_release, 3),
        }
        log(f"run {i + 1}: {sample}")
        return sample


def summarise(samples: list[dict[str, float]]) -> dict[str, dict[str, float]]:
    keys = samples[0].keys() if samples else []
    return {
        k: {
            "median": statistics.median(s[k] for s in samples),
            "min": min(s[k] for s in samples),
            "max": max(s[k] for s in samples),
        }
        for k in keys
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--out", type=Path, default=BENCH / "results" / "wire-latest.json")
    ap.add_argument("--keep-cluster", action="store_true")
    ap.add_argument("--cluster-dir", default="/tmp/mg-bench-wire-cluster")
    args = ap.parse_args()
    bench = Bench(args)
    try:
        node = bench.setup()
        pool = wire.start_pool(node)
        samples = [bench.run_once(node, pool, i) for i in range(args.runs)]
    finally:
        if getattr(bench, "operator", None):
            bench.operator.stop()
        if not args.keep_cluster:
            bench.cluster.down()
    summary = summarise(samples)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"runs": args.runs, "summary": summary, "samples": samples}, indent=1) + "\n")
    print(f"{'figure':24} {'median':>8} {'min':>8} {'max':>8}  ({args.runs} runs)")
    for k, v in summary.items():
        print(f"{k:24} {v['median']:8.3f} {v['min']:8.3f} {v['max']:8.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
