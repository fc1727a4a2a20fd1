"""Bring up (or reuse) the real local control plane for a test session."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
HACK = ROOT / "hack"


def bindir() -> Path:
    out = subprocess.run([str(HACK / "tools.sh"), "bindir"], capture_output=True, text=True, check=True)
    return Path(out.stdout.strip())


def tool(name: str) -> str:
    return str(bindir() / name)


def cluster_running() -> bool:
    res = subprocess.run([sys.executable, str(HACK / "cluster.py"), "status"], capture_output=True, text=True)
    return res.returncode == 0


def ensure_cluster() -> bool:
    """Make sure the tools exist and a cluster runs. Returns True when this call started it."""
    build = subprocess.run([str(HACK / "tools.sh"), "build"], capture_output=True, text=True)
    if build.returncode != 0:
        raise RuntimeError(f"building the control-plane tools failed:\n{build.stderr[-4000:]}")
    if cluster_running():
        return False
    up = subprocess.run([sys.executable, str(HACK / "cluster.py"), "up"], capture_output=True, text=True)
    if up.returncode != 0:
        raise RuntimeError(f"starting the local cluster failed:\n{up.stderr[-4000:]}")
    return True


def teardown_cluster() -> None:
    """Stop the cluster this session started; its logs are kept in build/e2e-logs/ for a failed run's reader."""
    if os.environ.get("MINERGUARD_KEEP_CLUSTER"):
        return
    logs = ROOT / ".cluster" / "logs"
    if logs.is_dir():
        keep = ROOT / "build" / "e2e-logs"
        shutil.rmtree(keep, ignore_errors=True)
        shutil.copytree(logs, keep)
        reliability = ROOT / ".cluster" / "reliability.jsonl"
        if reliability.exists():
            shutil.copy(reliability, keep / "reliability.jsonl")
    subprocess.run([sys.executable, str(HACK / "cluster.py"), "down"], capture_output=True, text=True)
