"""Pods and workload manifests parsed into the :class:`Workload` view detection reads.

:func:`workload_from_pod` and :func:`workloads_from_manifest` turn a Pod, or the pod
template of a workload manifest, into a :class:`Workload`.

Workload parsing never raises: a missing or wrong-typed field counts as absent. It is also
bounded whatever the input, so that a hostile multi-megabyte pod costs detection no more
than about a megabyte of text:


* at most :data:`MAX_CONTAINERS` containers (all kinds together), :data:`MAX_ENV` env
  entries and :data:`MAX_ARGS` command/args items per container, :data:`MAX_VOLUMES`
  volumes and :data:`MAX_LABELS` labels;
* every string cut to :data:`~minerguard.domain.patterns.MAX_VALUE_LEN` characters (64 KiB),
  container and env variable names to :data:`MAX_NAME_LEN` (256);
* the text detection reads (each container's image, command and args items, and literal
  env names and values; every item counting one character more than its length) at most
  :data:`MAX_POD_TEXT` characters (1 MiB) per pod. When a pod has more, it is shared out
  fairly (max-min) between its containers: a container is cut only if it has more than
  the others, and every container keeps all its text or at least ``MAX_POD_TEXT /
  containers`` characters of it (1 KiB with 1000 containers), so junk in one container
  cannot push another out of view.
  Within a container the image is kept first, then command, args, and env in order; what

This module has no kopf and no Kubernetes client imports: it is pure data.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal, DecimalException
from types import MappingProxyType
from typing import Any

from minerguard.domain.patterns import bounded

__all__ = [
    "MAX_NAME_LEN",
    "MAX_POD_TEXT",
    "WORKLOAD_KINDS",
    "ContainerView",
    "OwnerRef",
    "Workload",
    "fair_shares",
    "parse_quantity",
    "workload_from_pod",
    "workloads_from_manifest",
]

MAX_CONTAINERS = 1000
MAX_ENV = 5000
MAX_ARGS = 10000
MAX_VOLUMES = 5000
MAX_LABELS = 4096
MAX_NAME_LEN = 256
MAX_POD_TEXT = 1 << 20
"""Characters of image, command, args and env text kept per pod (1 MiB), shared fairly between containers."""


# ---------------------------------------------------------------------------------------
# Workloads


@dataclass(frozen=True)
class ContainerView:
    """What detection reads of one container. ``env`` holds literal values only."""

    kind: str
    name: str
    image: str = ""
    command: tuple[str, ...] = ()
    args: tuple[str, ...] = ()
    env: tuple[tuple[str, str], ...] = ()
    image_id: str = ""


@dataclass(frozen=True)
class OwnerRef:
    """The controller owner reference of a pod."""

    api_version: str
    kind: str
    name: str
    uid: str


def _no_labels() -> Mapping[str, str]:
    return MappingProxyType({})


@dataclass(frozen=True)
class Workload:
    """A pod, or the pod template of a workload manifest, as detection sees it."""

    kind: str
    namespace: str
    name: str
    uid: str = ""
    labels: Mapping[str, str] = field(default_factory=_no_labels, hash=False)
    node_name: str = ""
    containers: tuple[ContainerView, ...] = ()
    host_network: bool = False
    host_pid: bool = False
    host_ipc: bool = False
    privileged: bool = False
    host_path: bool = False
    owner: OwnerRef | None = None
    cpu_limit_cores: float | None = None
    cpu_request_cores: float | None = None
    phase: str = ""
    deleting: bool = False

    @property
    def host_access(self) -> bool:
        """True when the pod can reach its node: privileged, hostPID/IPC/Network or hostPath."""
        return self.host_network or self.host_pid or self.host_ipc or self.privileged or self.host_path


def _as_map(value: object) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def _as_list(value: object, cap: int) -> Sequence[Any]:
    if isinstance(value, Sequence) and not isinstance(value, str | bytes):
        return value[:cap]
    return ()


def _as_str(value: object) -> str:
    return bounded(value) if isinstance(value, str) else ""


def _as_name(value: object) -> str:
    return value[:MAX_NAME_LEN] if isinstance(value, str) else ""


def _as_strs(value: object) -> list[str]:
    return [bounded(item) for item in _as_list(value, MAX_ARGS) if isinstance(item, str)]


def _first(items: Sequence[Any], predicate: Callable[[Any], bool]) -> Any:
    return next((item for item in items if predicate(item)), None)


def _env(value: object) -> list[tuple[str, str]]:
    out = []
    for entry in _as_list(value, MAX_ENV):
        entry = _as_map(entry)
        literal = entry.get("value")
        if isinstance(literal, str) and "valueFrom" not in entry:
            out.append((_as_name(entry.get("name")), bounded(literal)))
    return out


_STATUS_FIELDS = {
    "container": ("containers", "containerStatuses"),
    "initContainer": ("initContainers", "initContainerStatuses"),
    "ephemeralContainer": ("ephemeralContainers", "ephemeralContainerStatuses"),
}


def _image_ids(status: Mapping[str, Any], key: str) -> dict[str, str]:
    ids: dict[str, str] = {}
    for entry in _as_list(status.get(key), MAX_CONTAINERS):
        entry = _as_map(entry)
        name = entry.get("name")
        if isinstance(name, str) and name[:MAX_NAME_LEN] not in ids:
            ids[name[:MAX_NAME_LEN]] = _as_str(entry.get("imageID"))
    return ids


@dataclass
class _Text:
    """The text of one container before the pod's text budget is applied."""

    image: str
    command: list[str]
    args: list[str]
    env: list[tuple[str, str]]

    def size(self) -> int:
        items = self.command + self.args
        return len(self.image) + sum(map(len, items)) + len(items) + sum(len(n) + len(v) + 1 for n, v in self.env)

    def cut(self, allowance: int) -> None:
        """Keep at most ``allowance`` characters: the image, then command, args and env, in order."""
        self.image = self.image[:allowance]
        allowance -= len(self.image)
        self.command, allowance = _cut_items(self.command, allowance)
        self.args, allowance = _cut_items(self.args, allowance)
        env: list[tuple[str, str]] = []
        for name, value in self.env:
            cost = len(name) + len(value) + 1
            if cost > allowance:
                if allowance > len(name) + 1:
                    env.append((name, value[: allowance - len(name) - 1]))
                break
            env.append((name, value))
            allowance -= cost
        self.env = env


def _cut_items(items: list[str], allowance: int) -> tuple[list[str], int]:
    for index, item in enumerate(items):
        if len(item) + 1 > allowance:
            kept = items[:index] + ([item[: allowance - 1]] if allowance > 1 else [])
            return kept, 0
        allowance -= len(item) + 1
    return items, allowance


def fair_shares(demands: Sequence[int], budget: int) -> list[int]:
    """Max-min fair shares of ``budget``: every demand in full when they all fit, otherwise
    every demand up to one common cap, the largest that keeps the total within the budget."""
    if sum(demands) <= budget:
        return list(demands)
    remaining, left, cap = budget, len(demands), 0
    for demand in sorted(demands):
        share = remaining // left
        if demand > share:
            cap = share
            break
        remaining -= demand
        left -= 1
    return [min(demand, cap) for demand in demands]


def _containers(spec: Mapping[str, Any], status: Mapping[str, Any]) -> tuple[ContainerView, ...]:
    found: list[tuple[str, str, _Text, str]] = []
    for kind, (spec_key, status_key) in _STATUS_FIELDS.items():
        ids = _image_ids(status, status_key)
        for raw in _as_list(spec.get(spec_key), MAX_CONTAINERS - len(found)):
            container = _as_map(raw)
            name = _as_name(container.get("name"))
            text = _Text(
                image=_as_str(container.get("image")),
                command=_as_strs(container.get("command")),
                args=_as_strs(container.get("args")),
                env=_env(container.get("env")),
            )
            found.append((kind, name, text, ids.get(name, "")))
    sizes = [text.size() for _, _, text, _ in found]
    for (_, _, text, _), size, share in zip(found, sizes, fair_shares(sizes, MAX_POD_TEXT), strict=True):
        if share < size:
            text.cut(share)
    return tuple(
        ContainerView(
            kind=kind,
            name=name,
            image=text.image,
            command=tuple(text.command),
            args=tuple(text.args),
            env=tuple(text.env),
            image_id=image_id,
        )
        for kind, name, text, image_id in found
    )


_BINARY_SUFFIXES = {"Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40, "Pi": 2**50, "Ei": 2**60}
_DECIMAL_SUFFIXES = {
    "n": Decimal("1e-9"),
    "u": Decimal("1e-6"),
    "m": Decimal("1e-3"),
    "k": Decimal(10**3),
    "M": Decimal(10**6),
    "G": Decimal(10**9),
    "T": Decimal(10**12),
    "P": Decimal(10**15),
    "E": Decimal(10**18),
}


def _split_quantity(text: str) -> tuple[str, Decimal]:
    if text[-2:] in _BINARY_SUFFIXES:
        return text[:-2], Decimal(_BINARY_SUFFIXES[text[-2:]])
    if text[-1:] in _DECIMAL_SUFFIXES:
        return text[:-1], _DECIMAL_SUFFIXES[text[-1:]]
    return text, Decimal(1)


_NUMBER_CHARS = frozenset("0123456789.+-eE")


def parse_quantity(value: object) -> float | None:
    """A Kubernetes quantity ("500m", "2", "1.5", "100u", "1e3", "1Ki") as a float; None if invalid."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        try:
            cores = float(value)
        except OverflowError:  # an int beyond the float range
            return None
        return cores if cores >= 0 and math.isfinite(cores) else None
    if not isinstance(value, str) or not value or len(value) > 64:
        return None
    number, multiplier = _split_quantity(value.strip())
    if not number or not set(number) <= _NUMBER_CHARS:
        return None
    try:
        amount = Decimal(number) * multiplier
    except DecimalException:
        return None
    if not amount.is_finite() or amount < 0:
        return None
    result = float(amount)
    return result if math.isfinite(result) else None


def _cpu_sum(containers: Sequence[Any], kind: str) -> float | None:
    if not containers:
        return None
    total = 0.0
    for raw in containers:
        resources = _as_map(_as_map(raw).get("resources"))
        cores = parse_quantity(_as_map(resources.get(kind)).get("cpu"))
        if cores is None and kind == "requests":  # the API server defaults a missing request to the limit
            cores = parse_quantity(_as_map(resources.get("limits")).get("cpu"))
        if cores is None:
            return None
        total += cores
    return total


def _privileged(spec: Mapping[str, Any]) -> bool:
    for key in ("containers", "initContainers", "ephemeralContainers"):
        for raw in _as_list(spec.get(key), MAX_CONTAINERS):
            if _as_map(_as_map(raw).get("securityContext")).get("privileged") is True:
                return True
    return False


def _owner(metadata: Mapping[str, Any]) -> OwnerRef | None:
    refs = _as_list(metadata.get("ownerReferences"), MAX_CONTAINERS)
    ref = _first(refs, lambda r: _as_map(r).get("controller") is True)
    if ref is None:
        return None
    ref = _as_map(ref)
    return OwnerRef(
        api_version=_as_str(ref.get("apiVersion")),
        kind=_as_str(ref.get("kind")),
        name=_as_str(ref.get("name")),
        uid=_as_str(ref.get("uid")),
    )


def _labels(value: object) -> Mapping[str, str]:
    labels = _as_map(value)
    items = itertools.islice(labels.items(), MAX_LABELS)
    clean = {k: v for k, v in items if isinstance(k, str) and isinstance(v, str)}
    return MappingProxyType(clean)


def _build(
    kind: str,
    metadata: Mapping[str, Any],
    pod_meta: Mapping[str, Any],
    spec: Mapping[str, Any],
    status: Mapping[str, Any],
) -> Workload:
    """A Workload from the object's metadata, the pod's metadata/spec/status (same for a Pod)."""
    regular = _as_list(spec.get("containers"), MAX_CONTAINERS)
    volumes = _as_list(spec.get("volumes"), MAX_VOLUMES)
    return Workload(
        kind=kind,
        namespace=_as_str(metadata.get("namespace")) or "default",
        name=_as_str(metadata.get("name")),
        uid=_as_str(metadata.get("uid")),
        labels=_labels(pod_meta.get("labels")),
        node_name=_as_str(spec.get("nodeName")),
        containers=_containers(spec, status),
        host_network=spec.get("hostNetwork") is True,
        host_pid=spec.get("hostPID") is True,
        host_ipc=spec.get("hostIPC") is True,
        privileged=_privileged(spec),
        host_path=any(isinstance(_as_map(v).get("hostPath"), Mapping) for v in volumes),
        owner=_owner(pod_meta),
        cpu_limit_cores=_cpu_sum(regular, "limits"),
        cpu_request_cores=_cpu_sum(regular, "requests"),
        phase=_as_str(status.get("phase")),
        deleting=metadata.get("deletionTimestamp") is not None,
    )


def workload_from_pod(pod: Mapping[str, Any]) -> Workload:
    """The view of a Pod object (from the API or a manifest). Never raises."""
    pod = _as_map(pod)
    metadata = _as_map(pod.get("metadata"))
    return _build("Pod", metadata, metadata, _as_map(pod.get("spec")), _as_map(pod.get("status")))


_TEMPLATE_KINDS = ("Deployment", "StatefulSet", "DaemonSet", "ReplicaSet", "Job", "ReplicationController")
WORKLOAD_KINDS = ("Pod", *_TEMPLATE_KINDS, "CronJob")
"""The kinds :func:`workloads_from_manifest` reads a pod from."""


def _pod_template(doc: Mapping[str, Any], kind: str) -> Mapping[str, Any] | None:
    spec = _as_map(doc.get("spec"))
    if kind == "CronJob":
        spec = _as_map(_as_map(_as_map(spec.get("jobTemplate")).get("spec")))
    elif kind not in _TEMPLATE_KINDS:
        return None
    template = spec.get("template")
    return template if isinstance(template, Mapping) else None


def workloads_from_manifest(doc: Mapping[str, Any]) -> list[Workload]:
    """The Pod, or the pod template of a Deployment, StatefulSet, DaemonSet, ReplicaSet, Job,
    CronJob or ReplicationController, as workloads; [] for any other kind. Never raises.

    For a template the workload has the object's kind, namespace and name, and the template's
    labels; its ``uid`` is the object's (empty in a manifest) and it has no owner or status.
    """
    if not isinstance(doc, Mapping):
        return []
    kind = doc.get("kind")
    if kind == "Pod":
        return [workload_from_pod(doc)]
    if not isinstance(kind, str):
        return []
    template = _pod_template(doc, kind)
    if template is None:
        return []
    pod_meta = _as_map(template.get("metadata"))
    return [_build(kind, _as_map(doc.get("metadata")), pod_meta, _as_map(template.get("spec")), {})]
