"""Bring up (or reuse) the real local control plane for a test session."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import yaml

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
    # The real node (if this machine runs one) starts with the first test that asks for it (the
    # real_node fixture): the KWOK tests run on the cluster they were written for.
    up = subprocess.run(
        [sys.executable, str(HACK / "cluster.py"), "up", "--defer-node"], capture_output=True, text=True
    )
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


def kube_version() -> str:
    """The Kubernetes version the local control plane is built at (hack/versions.env), e.g. ``1.36.3``."""
    for line in (HACK / "versions.env").read_text().splitlines():
        if line.startswith("KUBE_VERSION="):
            return line.split("=", 1)[1].strip().lstrip("v")
    raise RuntimeError("hack/versions.env has no KUBE_VERSION")


# `helm template` as against the local cluster: its Kubernetes version, and the
# ValidatingAdmissionPolicy API it serves (a real cluster's discovery says so by itself).
VAP_API = "admissionregistration.k8s.io/v1/ValidatingAdmissionPolicy"


def template_args() -> list[str]:
    return ["--kube-version", kube_version(), "--api-versions", VAP_API]


def helm_template(chart: Path, *args: str, release: str = "minerguard") -> list[dict[str, Any]]:
    """The documents ``helm template`` renders for ``chart``, as against the local cluster."""
    out = subprocess.run(
        [tool("helm"), "template", release, str(chart), *template_args(), *args],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return [d for d in yaml.safe_load_all(out) if d]
