"""Helpers for the e2e tests: condition waits with deadlines, and small kubectl/API wrappers.

Nothing here fakes Kubernetes: every call goes to the real local control plane
started by ``hack/cluster.py``.
"""

from __future__ import annotations

import subprocess
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

ROOT = Path(__file__).resolve().parents[2]
CLUSTER_DIR = ROOT / ".cluster"
KUBECONFIG = CLUSTER_DIR / "kubeconfig"

T = TypeVar("T")

_pause = threading.Event()


def eventually(condition: Callable[[], T | None], timeout: float, what: str, interval: float = 0.2) -> T:
    """Check ``condition`` until it returns a truthy value or ``timeout`` seconds pass.

    Returns that value; on timeout fails with ``what`` and the last exception, if any.
    The interval is only the back-off between checks, never a fixed wait.
    """
    deadline = time.monotonic() + timeout
    last_error: BaseException | None = None
    while True:
        try:
            value = condition()
            if value:
                return value
        except Exception as exc:  # noqa: BLE001 - kept for the failure message
            last_error = exc
        if time.monotonic() >= deadline:
            detail = f" (last error: {last_error!r})" if last_error else ""
            raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}{detail}")
        _pause.wait(interval)


def kubectl(*args: str, stdin: str | None = None, check: bool = True) -> subprocess.CompletedProcess[str]:
    """Run the project's kubectl against the local cluster."""
    from tests.e2e.cluster import tool

    res = subprocess.run(
        [tool("kubectl"), "--kubeconfig", str(KUBECONFIG), *args],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=120,
    )
    if check and res.returncode != 0:
        raise AssertionError(f"kubectl {' '.join(args)} failed: {res.stderr.strip()}")
    return res


def consistently(condition: Callable[[], object], duration: float, what: str, interval: float = 0.5) -> None:
    """Assert ``condition`` stays truthy for ``duration`` seconds (for things that must NOT happen)."""
    deadline = time.monotonic() + duration
    while True:
        if not condition():
            raise AssertionError(f"no longer true: {what}")
        if time.monotonic() >= deadline:
            return
        _pause.wait(interval)


def record(test: str, **figures: object) -> None:
    """Append a reliability figure to .cluster/reliability.jsonl (reported in docs/reliability.md)."""
    import json

    with open(CLUSTER_DIR / "reliability.jsonl", "a") as f:
        f.write(json.dumps({"test": test, **figures}) + "\n")


def cluster_component(action: str, component: str) -> None:
    """Stop, start or restart one component of the local control plane (fault tests)."""
    import sys

    subprocess.run(
        [sys.executable, str(ROOT / "hack" / "cluster.py"), action, component],
        check=True,
        capture_output=True,
        timeout=180,
    )
