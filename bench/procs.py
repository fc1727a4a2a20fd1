"""Processes the benchmark runs and reads: the operator (as ``python -m minerguard run``), its
``/proc`` footprint and its Prometheus ``/metrics``.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from prometheus_client.parser import text_string_to_metric_families

ROOT = Path(__file__).resolve().parent.parent
CLK_TCK = os.sysconf("SC_CLK_TCK")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass(frozen=True)
class Footprint:
    """One reading of a process: peak and current resident memory, CPU seconds used so far."""

    peak_rss_mib: float
    rss_mib: float
    cpu_seconds: float
    threads: int

    def as_dict(self) -> dict[str, float]:
        return {
            "peak_rss_mib": round(self.peak_rss_mib, 1),
            "rss_mib": round(self.rss_mib, 1),
            "cpu_seconds": round(self.cpu_seconds, 2),
            "threads": self.threads,
        }


def footprint(pid: int) -> Footprint:
    """VmHWM/VmRSS from /proc/<pid>/status, utime+stime from /proc/<pid>/stat."""
    fields: dict[str, str] = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        fields[key] = value.strip()
    stat = Path(f"/proc/{pid}/stat").read_text()
    after = stat.rsplit(")", 1)[1].split()
    # after[0] is field 3 (state); utime and stime are fields 14 and 15.
    utime, stime = int(after[11]), int(after[12])
    return Footprint(
        peak_rss_mib=int(fields["VmHWM"].split()[0]) / 1024,
        rss_mib=int(fields["VmRSS"].split()[0]) / 1024,
        cpu_seconds=(utime + stime) / CLK_TCK,
        threads=int(fields.get("Threads", "0")),
    )


# ---------------------------------------------------------------------- /metrics


@dataclass
class Metrics:
    """One scrape of a Prometheus text endpoint: every sample by sample name, and the families declared."""

    samples: dict[str, list[tuple[dict[str, str], float]]]
    families: set[str]

    def total(self, name: str) -> float | None:
        """The sum over all label sets of one sample name (``..._total``, ``..._count``), None when absent."""
        values = self.samples.get(name)
        if values is None:
            return None
        return sum(v for _, v in values)

    def by_label(self, name: str, label: str) -> dict[str, float]:
        out: dict[str, float] = {}
        for labels, value in self.samples.get(name, []):
            key = labels.get(label, "")
            out[key] = out.get(key, 0.0) + value
        return out


def scrape(url: str, timeout: float = 10) -> Metrics:
    with urllib.request.urlopen(url, timeout=timeout) as r:  # noqa: S310 - a loopback URL we built
        text = r.read().decode()
    samples: dict[str, list[tuple[dict[str, str], float]]] = {}
    families: set[str] = set()
    for family in text_string_to_metric_families(text):
        families.add(family.name)
        for s in family.samples:
            samples.setdefault(s.name, []).append((dict(s.labels), float(s.value)))
    return Metrics(samples, families)


# ---------------------------------------------------------------------- the operator


class OperatorProcess:
    """The operator as a user runs it, with its metrics on a loopback port and its log in a file."""

    def __init__(
        self,
        kubeconfig: Path,
        log_path: Path,
        prometheus_url: str,
        extra_env: dict[str, str],
        shim_args: list[str] | None = None,
    ) -> None:
        self.kubeconfig = kubeconfig
        self.shim_args = shim_args
        self.log_path = log_path
        self.prometheus_url = prometheus_url
        self.extra_env = extra_env
        self.metrics_port = free_port()
        self.health_port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None
        self.started_at = 0.0

    @property
    def metrics_url(self) -> str:
        return f"http://127.0.0.1:{self.metrics_port}/metrics"

    def env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("MINERGUARD_")}
        env.update(
            {
                "KUBECONFIG": str(self.kubeconfig),
                "MINERGUARD_NAMESPACE": "minerguard-system",
                "MINERGUARD_INSTANCE": "bench",
                "MINERGUARD_METRICS_PORT": str(self.metrics_port),
                "MINERGUARD_PROMETHEUS_URL": self.prometheus_url,
                # KWOK's kubelets serve container CPU on the resource endpoint (hack/cluster.py labels it so).
                "MINERGUARD_METRIC_CONTAINER_PATH": "/metrics/resource",
                "PYTHONUNBUFFERED": "1",
            }
        )
        env.update(self.extra_env)
        return env

    def start(self) -> float:
        """Start the process; returns the monotonic time of the start."""
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        self._log = open(self.log_path, "ab")
        run = ["run", "--standalone", "--liveness", f"http://127.0.0.1:{self.health_port}/healthz"]
        if self.shim_args is None:
            args = [sys.executable, "-m", "minerguard", *run]
        else:
            args = [sys.executable, str(Path(__file__).parent / "operator_shim.py"), *self.shim_args, "--", *run]
        self.started_at = time.monotonic()
        self.proc = subprocess.Popen(
            args, stdout=self._log, stderr=subprocess.STDOUT, env=self.env(), cwd=str(ROOT), start_new_session=True
        )
        return self.started_at

    @property
    def pid(self) -> int:
        if self.proc is None:
            raise RuntimeError("the operator is not running")
        return self.proc.pid

    def healthy(self) -> bool:
        if self.proc is None or self.proc.poll() is not None:
            raise RuntimeError(f"the operator exited; log tail:\n{self.log_tail()}")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.health_port}/healthz", timeout=2) as r:
                return bool(r.status == 200)
        except OSError:
            return False

    def wait_healthy(self, timeout: float = 120) -> float:
        """Wait (backing off 50 ms between probes) until /healthz answers; returns seconds since start."""
        deadline = time.monotonic() + timeout
        while not self.healthy():
            if time.monotonic() > deadline:
                raise RuntimeError(f"the operator was not healthy within {timeout:.0f}s:\n{self.log_tail()}")
            time.sleep(0.05)
        return time.monotonic() - self.started_at

    def metrics(self) -> Metrics:
        return scrape(self.metrics_url)

    def footprint(self) -> Footprint:
        return footprint(self.pid)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None
        if self._log is not None:
            self._log.close()
            self._log = None

    def log_tail(self, n: int = 3000) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-n:]
        except OSError:
            return ""


def wait_quiet(read: Any, settle: float = 3.0, timeout: float = 120.0, step: float = 0.5) -> float:
    """Wait until ``read()`` (a number, e.g. the operator's evaluation count) stops changing for ``settle``
    seconds; returns the seconds waited. Used to take readings once a process has caught up."""
    started = time.monotonic()
    last = read()
    stable_since = started
    while time.monotonic() - started < timeout:
        time.sleep(step)
        now_value = read()
        if now_value != last:
            last, stable_since = now_value, time.monotonic()
        elif time.monotonic() - stable_since >= settle:
            break
    return time.monotonic() - started
