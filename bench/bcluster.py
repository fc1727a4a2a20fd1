"""The benchmark's own control plane: ``hack/cluster.py`` run with a separate state directory and ports.

The test suite and other engineers use the default ``.cluster/`` and default ports, so every
call made from here passes an explicit environment (``MINERGUARD_CLUSTER_DIR``, every
``MINERGUARD_PORT_<NAME>``, ``MINERGUARD_NODES``) and refuses to touch the repository's
``.cluster/``. Ports default to the 3xxxx range; ``MGBENCH_PORT_<NAME>`` overrides one.
"""

from __future__ import annotations

import json
import os
import platform
import ssl
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kubernetes import client, config

ROOT = Path(__file__).resolve().parent.parent
HACK = ROOT / "hack"
CRDS = ROOT / "crds"
BENCH_USER_AGENT = "mgbench/1"

DEFAULT_PORTS = {
    "etcd": 33790,
    "etcd_peer": 33800,
    "apiserver": 36443,
    "controller_manager": 36257,
    "scheduler": 36259,
    "kwok": 36080,
    "prometheus": 39090,
}


class BenchError(Exception):
    """Something the benchmark cannot go on without; the message says what."""


@dataclass
class BenchCluster:
    """Where the benchmark cluster lives and how to reach it."""

    state_dir: Path
    nodes: int
    scrape_interval: str = "5s"
    ports: dict[str, int] = field(default_factory=dict)
    etcd: dict[str, str] = field(default_factory=dict)
    """hack/cluster.py's etcd settings for this cluster (``quota_bytes``, ``compaction_interval``), if not its own."""

    def __post_init__(self) -> None:
        self.state_dir = self.state_dir.resolve()
        if self.state_dir == (ROOT / ".cluster").resolve():
            raise BenchError("the benchmark never uses the repository's .cluster/ (the test cluster); pick another dir")
        if not self.ports:
            self.ports = {k: int(os.environ.get(f"MGBENCH_PORT_{k.upper()}", v)) for k, v in DEFAULT_PORTS.items()}

    # ------------------------------------------------------------------ hack/cluster.py

    def env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("MINERGUARD_")}
        env["MINERGUARD_CLUSTER_DIR"] = str(self.state_dir)
        env["MINERGUARD_NODES"] = str(self.nodes)
        env["MINERGUARD_SCRAPE_INTERVAL"] = self.scrape_interval
        for name, port in self.ports.items():
            env[f"MINERGUARD_PORT_{name.upper()}"] = str(port)
        for name, value in self.etcd.items():
            env[f"MINERGUARD_ETCD_{name.upper()}"] = value
        return env

    def hack(self, *args: str, timeout: float = 600) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, str(HACK / "cluster.py"), *args],
            env=self.env(),
            capture_output=True,
            text=True,
            timeout=timeout,
        )

    def running(self) -> bool:
        return self.hack("status", timeout=60).returncode == 0

    def up(self) -> float:
        """Start the cluster; returns the seconds it took."""
        started = time.monotonic()
        for attempt in range(3):
            # The real node (where the machine runs one) only when a benchmark asks for it (bench/wire.py).
            res = self.hack("up", "--defer-node", timeout=900)
            if res.returncode == 0:
                return time.monotonic() - started
            # `make tools` re-links the tools while it runs (another engineer may run it): try again.
            if "is missing" not in res.stderr or attempt == 2:
                break
            time.sleep(3)
        raise BenchError(f"hack/cluster.py up failed (state in {self.state_dir}):\n{res.stderr[-3000:]}")

    def down(self) -> None:
        self.hack("down", timeout=300)

    # ------------------------------------------------------------------ access

    @property
    def kubeconfig(self) -> Path:
        return self.state_dir / "kubeconfig"

    @property
    def prometheus_url(self) -> str:
        return f"http://127.0.0.1:{self.ports['prometheus']}"

    @property
    def apiserver_url(self) -> str:
        return f"https://127.0.0.1:{self.ports['apiserver']}"

    def api_client(self, pool: int = 32) -> client.ApiClient:
        cfg = client.Configuration()
        config.load_kube_config(config_file=str(self.kubeconfig), client_configuration=cfg)
        cfg.connection_pool_maxsize = pool
        cfg.retries = False
        api = client.ApiClient(cfg)
        api.user_agent = BENCH_USER_AGENT
        return api

    def kubectl(self, *args: str, stdin: str | None = None, timeout: float = 180) -> str:
        kubectl = tools_bindir() / "kubectl"
        res = subprocess.run(
            [str(kubectl), "--kubeconfig", str(self.kubeconfig), *args],
            input=stdin,
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        if res.returncode != 0:
            raise BenchError(f"kubectl {' '.join(args)} failed: {res.stderr.strip()[-2000:]}")
        return res.stdout

    def apply_creator_stamp(self) -> None:
        """The chart's creator stamp (a MutatingAdmissionPolicy and its binding), rendered by helm."""
        self.kubectl("apply", "-f", "-", stdin=self.creator_stamp_manifest())

    def creator_stamp_manifest(self) -> str:
        helm = tools_bindir() / "helm"
        return subprocess.run(
            [str(helm), "template", "minerguard", str(ROOT / "helm" / "minerguard"), "--kube-version",
             "1.36.0", "--api-versions", "admissionregistration.k8s.io/v1/MutatingAdmissionPolicy",
             "--show-only", "templates/creator-stamp.yaml", "--set", "creatorStamp.enabled=true"],
            capture_output=True, text=True, check=True,
        ).stdout  # fmt: skip

    def apply_crds(self) -> None:
        self.kubectl("apply", "--server-side", "-f", str(CRDS))
        self.kubectl("wait", "--for=condition=Established", "crd", "--all", "--timeout=60s")

    def _ssl(self) -> ssl.SSLContext:
        pki = self.state_dir / "pki"
        ctx = ssl.create_default_context(cafile=str(pki / "ca.crt"))
        ctx.load_cert_chain(str(pki / "admin.crt"), str(pki / "admin.key"))
        return ctx

    def apiserver_get(self, path: str) -> bytes:
        with urllib.request.urlopen(f"{self.apiserver_url}{path}", context=self._ssl(), timeout=30) as r:  # noqa: S310
            return bytes(r.read())

    def kube_version(self) -> str:
        try:
            return str(json.loads(self.apiserver_get("/version")).get("gitVersion", "?"))
        except Exception as exc:  # noqa: BLE001 - reported, not fatal
            return f"unknown ({exc})"


def tools_bindir() -> Path:
    out = subprocess.run([str(HACK / "tools.sh"), "bindir"], capture_output=True, text=True, check=True)
    return Path(out.stdout.strip())


def pinned_versions() -> dict[str, str]:
    out: dict[str, str] = {}
    for line in (HACK / "versions.env").read_text().splitlines():
        line = line.strip()
        if line and not line.startswith("#") and "=" in line:
            key, value = line.split("=", 1)
            out[key] = value
    return out


def source_info() -> dict[str, Any]:
    """The commit the operator code comes from, and whether operator/ has uncommitted changes."""

    def git(*args: str) -> str:
        res = subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True)
        return res.stdout.strip() if res.returncode == 0 else ""

    changed = [line for line in git("status", "--porcelain", "--", "operator").splitlines() if line.strip()]
    return {"commit": git("rev-parse", "--short", "HEAD"), "operator_uncommitted_changes": len(changed)}


def machine_info() -> dict[str, Any]:
    """Cores, memory, CPU model, OS, Python and load: what the figures depend on."""
    meminfo: dict[str, int] = {}
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            key, rest = line.split(":", 1)
            meminfo[key] = int(rest.split()[0])
    except OSError:
        pass
    model = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {
        "cores": os.cpu_count(),
        "cpu_model": model,
        "memory_gib": round(meminfo.get("MemTotal", 0) / 1024 / 1024, 1),
        "os": platform.platform(),
        "python": platform.python_version(),
        "loadavg_at_start": list(os.getloadavg()),
    }
