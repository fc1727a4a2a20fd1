"""``minerguard scan --inspect-images``: each workload's images read from their registries with the operator's reader.

Off by default (CI may have no registry access). Each image is read once per scan; an image that cannot
be read (unreachable, refused, too large, not allowed) is reported on standard error as a note and its
workloads are scanned on their spec alone, as the operator does: a registry outage never fails a scan.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace

from minerguard.config import RegistrySettings
from minerguard.domain.oci import ImageConfig, OciError, parse_reference
from minerguard.domain.workload import Workload
from minerguard.storage.registry import Platform, RegistryError, RegistryReader


class ImageInspector:
    """Gives workloads the image configs of their containers (read once per reference)."""

    def __init__(self, settings: RegistrySettings, note: Callable[[str], None]) -> None:
        self.reader = RegistryReader(settings)
        self.note = note
        self._read: dict[str, ImageConfig | None] = {}

    def config(self, image: str) -> ImageConfig | None:
        if image not in self._read:
            try:
                digest, config = self.reader.read_config(parse_reference(image), Platform())
                self._read[image] = replace(config, digest=digest)
            except (RegistryError, OciError) as exc:
                self.note(f"image {image} not read ({getattr(exc, 'reason', 'Invalid')}): {exc}; scanned on its spec")
                self._read[image] = None
        return self._read[image]

    def __call__(self, workload: Workload) -> Workload:
        containers = tuple(replace(c, image_config=self.config(c.image)) if c.image else c for c in workload.containers)
        return replace(workload, containers=containers)
