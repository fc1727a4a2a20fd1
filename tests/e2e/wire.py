"""A scene on the real node's wire: a stand-in pool, a stand-in miner and a benign client.

The programs are in ``tests/data/wire/`` (Python, run by the operator's image, which has
python3): ``pool.py`` answers stratum logins and shares, ``xmrig.py`` is called with XMRig's
options and connects to the pool (a new connection every 0.1 s, and one kept open), and
``probe.py`` connects to the pool and to the miner's port. Each prints one JSON line per attempt,
stamped with the wall clock, which the tests read with ``kubectl logs`` (through the apiserver's
egress into the node's namespace). The pool lives in a namespace of its own, out of the
MinerPolicy's scope.
"""

from __future__ import annotations

import json
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.e2e.helpers import ROOT, eventually, kubectl
from tests.e2e.objects import WALLET
from tests.e2e.realnode import RealNode

PROGRAMS = ROOT / "tests" / "data" / "wire"
POOL_PORT = 3333
MINER_API_PORT = 8080


def _configmap(namespace: str, name: str, program: Path) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": name, "namespace": namespace},
        "data": {program.stem: program.read_text()},
    }


def _pod(node: RealNode, namespace: str, name: str, program: str, args: list[str]) -> dict[str, Any]:
    mount = f"/opt/{program}"
    spec = node.pod_spec(
        [
            {
                "name": name,
                "command": [f"{mount}/{program}", *args],
                "volumeMounts": [{"name": "program", "mountPath": mount}],
                "resources": {"limits": {"cpu": "200m", "memory": "64Mi"}},
            }
        ],
        volumes=[{"name": "program", "configMap": {"name": program, "defaultMode": 0o755}}],
    )
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "namespace": namespace, "labels": {"app": name}},
        "spec": spec,
    }


def apply(*docs: dict[str, Any]) -> None:
    kubectl("apply", "-f", "-", stdin="\n---\n".join(json.dumps(d) for d in docs))


def pod_ip(namespace: str, name: str, timeout: float = 120) -> str:
    def ip() -> str | None:
        out = kubectl("get", "pod", "-n", namespace, name, "-o", "json").stdout
        pod = json.loads(out)
        if pod["status"].get("phase") == "Running" and pod["status"].get("podIP"):
            return str(pod["status"]["podIP"])
        return None

    return eventually(ip, timeout, f"pod {namespace}/{name} Running with an IP")


def lines(namespace: str, pod: str) -> list[dict[str, Any]]:
    out = kubectl("logs", "-n", namespace, pod, check=False).stdout
    result = []
    for line in out.splitlines():
        try:
            result.append(json.loads(line))
        except ValueError:
            continue
    return result


def first(entries: list[dict[str, Any]], since: float, ok: bool, **match: Any) -> dict[str, Any] | None:
    """The first attempt at or after ``since`` (wall clock) whose outcome is ``ok`` and fields match."""
    for e in entries:
        if e["t"] >= since and e["ok"] is ok and all(e.get(k) == v for k, v in match.items()):
            return e
    return None


@dataclass
class Pool:
    namespace: str
    ip: str

    def url(self) -> str:
        return f"stratum+tcp://{self.ip}:{POOL_PORT}"


def start_pool(node: RealNode) -> Pool:
    namespace = f"wire-pool-{uuid.uuid4().hex[:5]}"
    kubectl("create", "namespace", namespace)
    apply(_configmap(namespace, "pool", PROGRAMS / "pool.py"), _pod(node, namespace, "pool", "pool", []))
    return Pool(namespace, pod_ip(namespace, "pool"))


def miner_args(pool: Pool) -> list[str]:
    return ["-o", pool.url(), "-u", WALLET, "-k", "--donate-level", "1"]


def start_miner(node: RealNode, namespace: str, pool: Pool, name: str = "miner") -> float:
    """Create the miner pod; returns the wall-clock time just before the create call."""
    apply(_configmap(namespace, "xmrig", PROGRAMS / "xmrig.py"))
    t = time.time()
    apply(_pod(node, namespace, name, "xmrig", miner_args(pool)))
    return t


def start_client(node: RealNode, namespace: str, targets: dict[str, str], name: str = "client") -> None:
    apply(_configmap(namespace, "probe", PROGRAMS / "probe.py"))
    apply(_pod(node, namespace, name, "probe", [f"{k}={v}" for k, v in targets.items()]))
