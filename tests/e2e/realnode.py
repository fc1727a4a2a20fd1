"""The real node ``real-0`` for e2e tests: tools, node-up, images, and probes from inside its namespace.

``hack/realnode.py`` says how the node is made; here the tests get it running in the session's
cluster, with the operator's image imported (pods on the node run it with ``imagePullPolicy:
Never``; it has Python, so the stand-in pool, miner and client are Python one-file programs).
"""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.e2e.helpers import CLUSTER_DIR, ROOT, kubectl

HACK = ROOT / "hack"
sys.path.insert(0, str(HACK))
import realnode as _realnode  # noqa: E402 - hack/ is not a package

NODE = _realnode.NODE
NODE_IP = _realnode.NODE_IP
POD_CIDR = _realnode.POD_CIDR
TAINT_KEY = _realnode.TAINT.split("=")[0]


def unavailable() -> str | None:
    """Why the real-node tests cannot run here (they are then left out, with this reason), or None."""
    if os.environ.get("MINERGUARD_REAL_NODE", "auto").strip().lower() in ("0", "off", "false", "no"):
        return "MINERGUARD_REAL_NODE=0"
    return _realnode.host_problem()


def image_reference() -> str:
    return subprocess.run(
        [sys.executable, str(HACK / "image.py"), "reference"], capture_output=True, text=True, check=True
    ).stdout.strip()


def image_archive() -> Path:
    out = subprocess.run(
        [sys.executable, str(HACK / "image.py"), "archives"], capture_output=True, text=True, check=True
    )
    return Path(out.stdout.split()[1])


@dataclass
class RealNode:
    """The running node: its name, its image for test pods, and a way into its network namespace."""

    name: str
    image: str
    impl: Any

    def run_in_netns(self, *cmd: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
        return self.impl.exec_in(*cmd, timeout=timeout)  # type: ignore[no-any-return]

    def pod_spec(self, containers: list[dict[str, Any]], **extra: Any) -> dict[str, Any]:
        """A pod spec pinned to the real node, with the test image and no pulls."""
        for c in containers:
            c.setdefault("image", self.image)
            c["imagePullPolicy"] = "Never"
        return {
            "nodeSelector": {_realnode.LABEL: "true"},
            "tolerations": [{"key": TAINT_KEY, "operator": "Exists", "effect": "NoSchedule"}],
            "terminationGracePeriodSeconds": 1,
            "automountServiceAccountToken": False,
            "containers": containers,
            **extra,
        }


def _run(*cmd: str, timeout: float = 3600) -> subprocess.CompletedProcess[str]:
    return subprocess.run(list(cmd), capture_output=True, text=True, timeout=timeout)


def ensure_real_node() -> RealNode:
    """Build the node's tools (or wait for the build `make test` started), start the node, import the image."""
    build = _run(str(HACK / "tools.sh"), "real-node")
    if build.returncode != 0:
        raise RuntimeError(f"hack/tools.sh real-node failed:\n{build.stderr[-4000:]}")
    up = _run(sys.executable, str(HACK / "cluster.py"), "node-up", timeout=600)
    if up.returncode != 0:
        raise RuntimeError(f"hack/cluster.py node-up failed:\n{up.stderr[-4000:]}")
    archive = image_archive()
    if not archive.exists():
        made = _run(sys.executable, str(HACK / "image.py"), "build")
        if made.returncode != 0:
            raise RuntimeError(f"hack/image.py build failed:\n{made.stderr[-4000:]}")
    ref = image_reference()
    impl = _realnode.Node(CLUSTER_DIR, Path(_run(str(HACK / "tools.sh"), "bindir").stdout.strip()))
    if ref not in impl.ctr("images", "ls", "-q").stdout:
        impl.import_image(archive)
    kubectl("wait", "--for=condition=Ready", f"node/{NODE}", "--timeout=120s")
    return RealNode(name=NODE, image=ref, impl=impl)
