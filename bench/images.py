"""``bench/run.py --inspect-images``: the benchmark with image inspection on (issue #13).

A real registry on loopback (Debian's ``docker-registry``, as the e2e tests run it: ``tests/registry.py``;
nothing beyond 127.0.0.1) serves every image the benchmark's pods name:

* the benign shapes' images (``nginx:1.27``, ``redis:7``...), each with an ordinary config and history, so
  that every benign pod's image is read and evaluated, and the zero-writes check covers pods whose images
  were inspected;
* one miner image per image-only miner (``bench/pause:miner-NNN``, the same config as the e2e test's: its
  ``Entrypoint`` runs a renamed XMRig with a stratum pool). Those pods name nothing suspicious in their spec
  (``image`` only, no command, no args): they can only be caught by reading the image. Each has a tag of
  its own, so every one costs the operator a registry read (the worst case; a second pod on an image
  already read is evaluated at once from the cache).

The registry listens on ``MGBENCH_PORT_REGISTRY`` when set, else on a free port. The benchmark's
Enforce policy gets ``signals.imageConfig: true`` and the operator ``MINERGUARD_IMAGES_ENABLED`` with
this registry listed (plain HTTP on loopback only).
"""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path
from typing import Any

import procs

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from tests.registry import MINER_ENTRYPOINT, Registry, history, registry_binary  # noqa: E402

MINER_REPO = "bench/pause"


def benign_config(image: str) -> dict[str, Any]:
    """An ordinary config for a benign shape's image: a base layer, packages installed, an entrypoint."""
    app = image.split(":")[0].split("/")[-1]
    return {
        "config": {
            "Entrypoint": [f"/usr/local/bin/{app}"],
            "Env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", f"APP={app}"],
            "WorkingDir": "/srv",
            "Labels": {"org.opencontainers.image.title": app},
        },
        "history": history(
            "/bin/sh -c #(nop) ADD file:2b3f in / ",
            f"RUN /bin/sh -c set -x && apt-get update && apt-get install -y --no-install-recommends {app} "
            "ca-certificates && rm -rf /var/lib/apt/lists/* # buildkit",
            f"COPY {app} /usr/local/bin/ # buildkit",
            f'ENTRYPOINT ["/usr/local/bin/{app}"]',
        ),
    }


class BenchImages:
    """The loopback registry and the images pushed to it."""

    def __init__(self, workdir: Path | None = None) -> None:
        if registry_binary() is None:
            raise RuntimeError("--inspect-images needs Debian's docker-registry (make tools installs it)")
        self.workdir = Path(tempfile.mkdtemp(prefix="mgbench-registry-")) if workdir is None else workdir
        self.registry = Registry(self.workdir, port=int(os.environ.get("MGBENCH_PORT_REGISTRY", "0")))
        self.host = self.registry.host
        self.pushed: dict[str, str] = {}

    def start(self, benign_images: list[str], miners: int) -> None:
        self.registry.start()
        for image in benign_images:
            repo, _, tag = image.rpartition(":")
            self.pushed[image] = self.registry.push_image(f"bench/{repo}", tag, benign_config(image))
        for i in range(miners):
            self.registry.push_image(MINER_REPO, self.miner_tag(i), MINER_ENTRYPOINT)

    def stop(self) -> None:
        self.registry.stop()

    @staticmethod
    def miner_tag(i: int) -> str:
        return f"miner-{i:03d}"

    def miner_image(self, i: int) -> str:
        return f"{self.host}/{MINER_REPO}:{self.miner_tag(i)}"

    def operator_env(self) -> dict[str, str]:
        """The operator's settings for image reading (what the chart's ``imageInspection: Listed`` sets)."""
        return {
            "MINERGUARD_IMAGES_ENABLED": "true",
            "MINERGUARD_IMAGES_REGISTRIES": self.host,
            "MINERGUARD_IMAGES_INSECURE": self.host,
        }

    def config_reads(self) -> int:
        """How many config blobs the registry served (from its access log)."""
        log = (self.workdir / "registry.log").read_text(errors="replace")
        return sum(1 for line in log.splitlines() if '"GET /v2/' in line and "/blobs/sha256:" in line)

    def reads_by_result(self, metrics: procs.Metrics) -> dict[str, float]:
        return metrics.by_label("minerguard_image_config_reads_total", "result")


def image_only_miner(name: str, image: str, role_label: str) -> dict[str, Any]:
    """A pod whose spec is innocent: an image and nothing else; the miner is in the image's config."""
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "labels": {role_label: "miner", "app": name}},
        "spec": {
            "containers": [
                {
                    "name": "main",
                    "image": image,
                    "resources": {
                        "requests": {"cpu": "10m", "memory": "16Mi"},
                        "limits": {"cpu": "1", "memory": "64Mi"},
                    },
                }
            ],
            "terminationGracePeriodSeconds": 0,
        },
    }
