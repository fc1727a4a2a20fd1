"""The detection-input digest of a pod: a stable hash of exactly what detection reads.

Detection reads a :class:`~minerguard.domain.workload.Workload` (the pod's containers' images,
commands, args and literal env, the ConfigMap data they reference, labels, node, owner, host
access, CPU, phase, deletion, ServiceAccount, the creator stamp and the image IDs), the labels of
the pod's namespace and the set of ready policies. The digest covers those and nothing else: an
annotation, a status condition or a managedFields change leaves it as it was, so a pod whose
digest is unchanged has the same verdict and need not be evaluated again.

ConfigMaps count by their content as parsed into the workload (stronger than their
resourceVersion: a rewrite with the same data is no change). Metric, runtime and image-config
findings are not inputs here; each has its own trigger that evaluates the pods concerned again.

Pure: hashlib only, no I/O.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from typing import Any

from minerguard.domain.workload import ContainerView, OwnerRef, Workload

__all__ = ["DIGEST_SIZE", "digest", "text_size"]

DIGEST_SIZE = 16
"""Bytes of a digest (BLAKE2b-128). A tenant hiding a change behind an unchanged digest needs a second preimage of
its own pod's digest: about 2**128 tries."""


class _Feed:
    """Feeds values to the hash so that no two different inputs give the same byte stream: strings as their
    lengths then their characters (the lengths fix every boundary), anything else as its tagged ``repr``."""

    def __init__(self) -> None:
        self.h = hashlib.blake2b(digest_size=DIGEST_SIZE)

    def texts(self, values: Sequence[str]) -> None:
        lengths = ",".join(str(len(v)) for v in values)
        self.h.update(b"t%d[%s]" % (len(values), lengths.encode()))
        self.h.update("".join(values).encode("utf-8", "surrogatepass"))

    def pairs(self, values: Sequence[tuple[str, str]]) -> None:
        self.texts([text for pair in values for text in pair])

    def value(self, value: object) -> None:
        data = repr(value).encode("utf-8", "surrogatepass")
        self.h.update(b"r%d:" % len(data))
        self.h.update(data)

    def mapping(self, values: Mapping[str, str] | None) -> None:
        if values is None:
            self.value(None)
        else:
            self.pairs(sorted(values.items()))


def _container(feed: _Feed, c: ContainerView) -> None:
    feed.texts((c.kind, c.name, c.image, c.image_id, c.command_from, c.args_from))
    for texts in (c.command, c.args, c.oversized):
        feed.texts(texts)
    for pairs in (c.env, c.config_env, c.files, c.image_env, c.image_texts):
        feed.pairs(pairs)
    feed.value(c.image_config)


def _owner(feed: _Feed, owner: OwnerRef | None) -> None:
    feed.value(owner is None)
    feed.texts(() if owner is None else (owner.api_version, owner.kind, owner.name, owner.uid))


def digest(wl: Workload, namespace_labels: Mapping[str, str] | None, policies: int) -> bytes:
    """The digest of what detection reads of ``wl``, under the namespace's labels and policy set ``policies``
    (:meth:`~minerguard.services.policies.PolicyRegistry.version`)."""
    feed = _Feed()
    feed.value(policies)
    feed.texts((wl.kind, wl.namespace, wl.name, wl.uid, wl.node_name, wl.phase, wl.service_account, wl.created_by))
    feed.mapping(wl.labels)
    feed.mapping(namespace_labels)
    feed.value((wl.host_network, wl.host_pid, wl.host_ipc, wl.privileged, wl.host_path, wl.deleting))
    feed.value((wl.cpu_limit_cores, wl.cpu_request_cores))
    _owner(feed, wl.owner)
    feed.texts(sorted(wl.config_maps))
    feed.value(len(wl.containers))
    for container in wl.containers:
        _container(feed, container)
    return feed.h.digest()


def text_size(wl: Workload) -> int:
    """Characters of container text in the workload (what a compact cache entry leaves out)."""
    total = 0
    for c in wl.containers:
        total += sum(map(len, c.command)) + sum(map(len, c.args))
        total += sum(len(n) + len(v) for pairs in (c.env, c.config_env, c.files) for n, v in pairs)
    return total


CONTAINER_LISTS = ("initContainers", "containers", "ephemeralContainers")


def raw_text_size(pod: Mapping[str, Any]) -> int:
    """Characters of command, args and literal env in a pod body, before any parsing: what the watch reads to
    decide whether a pod is large (ConfigMap text is not in it; :func:`text_size` counts that once parsed)."""
    spec = pod.get("spec")
    if not isinstance(spec, Mapping):
        return 0
    total = 0
    for field in CONTAINER_LISTS:
        containers = spec.get(field)
        if not isinstance(containers, list):
            continue
        for c in containers:
            if not isinstance(c, Mapping):
                continue
            for name in ("command", "args"):
                items = c.get(name)
                if isinstance(items, list):
                    total += sum(len(i) for i in items if isinstance(i, str))
            env = c.get("env")
            if isinstance(env, list):
                for e in env:
                    if isinstance(e, Mapping):
                        total += len(str(e.get("name") or "")) + len(str(e.get("value") or ""))
    return total
