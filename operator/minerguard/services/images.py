"""Image configs for detection: read once per digest in the background, never on the watch path.

:meth:`ImageConfigs.attach` is the one call the detector makes (from :class:`~minerguard.services.detector.
Evaluator`, only when a ready policy has ``signals.imageConfig``): it gives each container the image config
already known for its image and platform, and asks for the others in the background; the pod is evaluated on
its spec at once. When a config arrives, the pods that asked for it are evaluated again (``on_ready``).

* The key of an image is the digest of the pod status ``imageID`` when there is one (a digest's config
  never changes: kept until the size bound pushes it out), else the reference's tag (kept
  ``tag_ttl`` seconds); plus the node's OS/architecture. One read per key at a time, cluster-wide.
* A failed read (registry down, refused, too large, not allowed) is remembered ``negative_ttl`` seconds:
  no retry storm; the pods are evaluated on their spec alone meanwhile. The metric
  ``minerguard_image_config_reads_total{result}`` counts reads by result, and every policy with
  ``imageConfig`` carries the condition ``ImageConfigsRead`` (False with the reason while the last read failed).
* At most ``concurrency`` reads run at once, and at most :data:`MAX_PENDING` wait. The cache holds at
  most ``cache_size`` configs and ``cache_bytes`` characters of their text (least recently used first out).
"""

from __future__ import annotations

import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from typing import Any

from minerguard import observability
from minerguard.config import RegistrySettings
from minerguard.domain.oci import ImageConfig, OciError, Reference, digest_of_image_id, parse_reference
from minerguard.domain.policy import Policy
from minerguard.domain.workload import ContainerView, Workload
from minerguard.errors import KubeError
from minerguard.services.policies import condition, merge_conditions
from minerguard.services.state import ClusterState, PodKey
from minerguard.storage.kubernetes import KubeStorage
from minerguard.storage.registry import Platform, RegistryError, RegistryReader

log = logging.getLogger(__name__)

MAX_PENDING = 1000
CONDITION = "ImageConfigsRead"

Key = tuple[str, str]
"""(the reference read, os/architecture)."""


class ImageConfigs:
    """The cache of image configs and the background reads that fill it."""

    def __init__(
        self,
        settings: RegistrySettings,
        reader: RegistryReader,
        state: ClusterState,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.settings = settings
        self.reader = reader
        self.state = state
        self.clock = clock
        self.on_ready: Callable[[set[PodKey]], None] = lambda _: None
        self._configs: OrderedDict[Key, tuple[ImageConfig, float]] = OrderedDict()
        self._failed: OrderedDict[Key, tuple[str, float]] = OrderedDict()
        self._waiting: dict[Key, set[PodKey]] = {}
        self._bytes = 0
        self._lock = threading.Lock()
        self._pool = ThreadPoolExecutor(max_workers=max(1, settings.concurrency), thread_name_prefix="image-read")
        self.health: tuple[str, str, str] = ("True", "Read", "image configs are read from their registries")

    def stop(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)

    def attach(self, wl: Workload) -> Workload:
        """The workload with the image configs known so far; the missing ones are asked for in the background."""
        platform = self._platform(wl.node_name)
        containers, changed = [], False
        for container in wl.containers:
            key = self._key(container, platform)
            config = self._known(key, (wl.namespace, wl.name)) if key is not None else None
            if config is not None:
                container, changed = replace(container, image_config=config), True
            containers.append(container)
        return replace(wl, containers=tuple(containers)) if changed else wl

    def _platform(self, node: str) -> Platform:
        entry = self.state.nodes.get(node) if node else None
        labels = entry.labels if entry is not None else {}
        return Platform(labels.get("kubernetes.io/os", "linux"), labels.get("kubernetes.io/arch", "amd64"))

    def _key(self, container: ContainerView, platform: Platform) -> Key | None:
        try:
            ref = parse_reference(container.image)
        except OciError:
            return None
        if not self.reader.allowed(ref.registry):
            return None  # a registry the settings leave out is never asked, and is no outage
        digest = digest_of_image_id(container.image_id)
        read = Reference(ref.registry, ref.repository, "", digest) if digest else ref
        return str(read), f"{platform.os}/{platform.architecture}"

    def _known(self, key: Key, pod: PodKey) -> ImageConfig | None:
        now = self.clock()
        with self._lock:
            found = self._configs.get(key)
            if found is not None and found[1] > now:
                self._configs.move_to_end(key)
                return found[0]
            failed = self._failed.get(key)
            if failed is not None and failed[1] > now:
                return None
            waiting = self._waiting.get(key)
            if waiting is not None:
                waiting.add(pod)
                return None
            if len(self._waiting) >= MAX_PENDING:
                return None  # asked again at the next evaluation (resync)
            self._waiting[key] = {pod}
        self._pool.submit(self._read, key)
        return None

    def _read(self, key: Key) -> None:
        ref, platform = key
        os_name, _, arch = platform.partition("/")
        try:
            digest, config = self.reader.read_config(parse_reference(ref), Platform(os_name, arch))
        except RegistryError as exc:
            self._done(key, None, exc.reason, str(exc))
            return
        except Exception as exc:  # a reader bug must not kill the pool thread: reported as an Error read
            log.exception("Reading the image config of %s failed", ref)
            self._done(key, None, "Error", f"{type(exc).__name__}: {exc}")
            return
        self._done(key, replace(config, digest=digest), "Read", "")

    def _done(self, key: Key, config: ImageConfig | None, reason: str, message: str) -> None:
        now = self.clock()
        observability.IMAGE_CONFIG_READS.labels(reason).inc()
        with self._lock:
            pods = self._waiting.pop(key, set())
            if config is None:
                self._failed[key] = (reason, now + self.settings.negative_ttl)
                _bound(self._failed, self.settings.cache_size)
                self.health = (
                    "False",
                    reason,
                    f"{key[0]}: {message}; pods with this image are evaluated on their spec alone",
                )
            else:
                by_digest = "@sha256:" in key[0]
                old = self._configs.pop(key, None)
                self._bytes += config.size - (old[0].size if old is not None else 0)
                self._configs[key] = (config, float("inf") if by_digest else now + self.settings.tag_ttl)
                while len(self._configs) > 1 and (
                    len(self._configs) > self.settings.cache_size or self._bytes > self.settings.cache_bytes
                ):
                    self._bytes -= self._configs.popitem(last=False)[1][0].size
                self._failed.pop(key, None)
                if not self._failed or all(until <= now for _, until in self._failed.values()):
                    self.health = ("True", "Read", "image configs are read from their registries")
        if config is None:
            log.warning("Image config of %s not read (%s): %s", key[0], reason, message)
        if pods and config is not None:
            self.on_ready(pods)  # evaluated again, now with the image

    def report(self, storage: KubeStorage, policies: tuple[Policy, ...], reported: dict[str, tuple[str, str]]) -> None:
        """Set the ImageConfigsRead condition on the policies with imageConfig whose condition changed."""
        status, reason, message = self.health
        for policy in policies:
            if not policy.signals.image_config or reported.get(policy.name) == (status, reason):
                continue
            try:
                current = (storage.get_policy(policy.name).get("status") or {}).get("conditions") or []
                new = condition(CONDITION, status, reason, message, policy.generation)
                storage.patch_policy_status(policy.name, {"conditions": merge_conditions(list(current), [new])})
                reported[policy.name] = (status, reason)
            except KubeError as exc:
                log.info("Could not set %s on MinerPolicy %s: %s", CONDITION, policy.name, exc)


def _bound(cache: OrderedDict[Key, Any], size: int) -> None:
    while len(cache) > max(1, size):
        cache.popitem(last=False)
