"""Run the operator as a real process against the local cluster, as a user would (``minerguard run``)."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import urllib.request
from pathlib import Path

from tests.e2e.helpers import CLUSTER_DIR, KUBECONFIG, eventually


def prometheus_url() -> str:
    ports = json.loads((CLUSTER_DIR / "ports.json").read_text())
    return f"http://127.0.0.1:{ports['prometheus']}"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class OperatorProcess:
    """One ``python -m minerguard run`` process; restartable, killable, with its log kept."""

    def __init__(
        self, name: str = "operator", extra_env: dict[str, str] | None = None, standalone: bool = True
    ) -> None:
        self.name = name
        self.extra_env = extra_env or {}
        self.standalone = standalone
        self.proc: subprocess.Popen[bytes] | None = None
        self.log_path = CLUSTER_DIR / "logs" / f"{name}.log"
        self.health_port = free_port()
        self.metrics_port = free_port()
        self.starts = 0

    def env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("MINERGUARD_")}
        env.update(
            {
                "KUBECONFIG": str(KUBECONFIG),
                "MINERGUARD_NAMESPACE": "minerguard-system",
                "MINERGUARD_INSTANCE": self.name,
                "MINERGUARD_RESYNC_INTERVAL": "5",
                "MINERGUARD_STATUS_INTERVAL": "1",
                "MINERGUARD_METRICS_PORT": str(self.metrics_port),
                "MINERGUARD_METRICS_ADDRESS": "127.0.0.1",
                "MINERGUARD_PROMETHEUS_URL": prometheus_url(),
                # KWOK's kubelets serve container CPU on the resource endpoint (so do real ones).
                "MINERGUARD_METRIC_CONTAINER_PATH": "/metrics/resource",
                "MINERGUARD_METRICS_INTERVAL": "2",
                "MINERGUARD_RATE_WINDOW": "10s",
                "MINERGUARD_PROMETHEUS_TIMEOUT": "3",
                "MINERGUARD_COST_WRITE_INTERVAL": "2",
                "MINERGUARD_SCALE_OWNER": "true",  # test_owner_actions and the escapes use it
                "PYTHONUNBUFFERED": "1",
            }
        )
        env.update(self.extra_env)
        return env

    def start(self) -> None:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        args = [sys.executable, "-m", "minerguard", "run", "--liveness", f"http://127.0.0.1:{self.health_port}/healthz"]
        if self.standalone:
            args.append("--standalone")
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT, env=self.env())
        self.starts += 1
        eventually(self._healthy, 60, f"operator {self.name} to report healthy (log: {self.log_path})")

    def _healthy(self) -> bool:
        if self.proc is None or self.proc.poll() is not None:
            raise AssertionError(f"operator exited; log tail:\n{self.log_tail()}")
        with urllib.request.urlopen(f"http://127.0.0.1:{self.health_port}/healthz", timeout=2) as r:
            return bool(r.status == 200)

    def stop(self, sig: int = signal.SIGTERM) -> None:
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None

    def kill(self) -> None:
        self.stop(signal.SIGKILL)

    def restart(self) -> None:
        self.stop()
        self.start()

    def metric(self, name: str) -> float | None:
        """A sample of the operator's own /metrics (summed over labels), or None when absent."""
        with urllib.request.urlopen(f"http://127.0.0.1:{self.metrics_port}/metrics", timeout=3) as r:
            text = r.read().decode()
        values = [
            float(line.rsplit(" ", 1)[1])
            for line in text.splitlines()
            if line.startswith(name) and (line[len(name)] in " {")
        ]
        return sum(values) if values else None

    def log_size(self) -> int:
        try:
            return Path(self.log_path).stat().st_size
        except OSError:
            return 0

    def log_since(self, offset: int) -> str:
        with open(self.log_path, "rb") as f:
            f.seek(offset)
            return f.read().decode(errors="replace")

    def log_tail(self, n: int = 4000) -> str:
        try:
            return Path(self.log_path).read_text(errors="replace")[-n:]
        except OSError:
            return ""
