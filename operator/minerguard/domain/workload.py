"""Pods and workload manifests parsed into the :class:`Workload` view detection reads.

:func:`workload_from_pod` and :func:`workloads_from_manifest` turn a Pod, or the pod
template of a workload manifest, into a :class:`Workload`.

Workload parsing never raises: a missing or wrong-typed field counts as absent. It is also
bounded whatever the input, so that a hostile multi-megabyte pod costs detection no more
than about a megabyte of text:


* at most :data:`MAX_CONTAINERS` containers (all kinds together), :data:`MAX_ENV` env
  entries and :data:`MAX_ARGS` command/args items per container, :data:`MAX_VOLUMES`
  volumes and :data:`MAX_LABELS` labels;
* a string longer than :data:`~minerguard.domain.patterns.MAX_VALUE_LEN` characters (64 KiB)
  is kept as its head and its tail (32 KiB each, joined by a newline), so that padding
  cannot push an indicator out of view, and the container records it in ``oversized``
  (the Weak ``oversizedValue`` signal); container and env variable names are cut to
  :data:`MAX_NAME_LEN` (256);
* the ConfigMaps the pod references are read from a :class:`ConfigMapLookup` when one is
  given (the operator's cache, or the ConfigMaps in the files ``minerguard scan`` reads):
  ``envFrom`` (with its prefix) and ``valueFrom.configMapKeyRef`` become ``config_env``,
  and the keys of ``configMap`` and ``projected`` volumes mounted into a container become
  its ``files`` (path, text). Secrets are never read. The names of the ConfigMaps
  referenced are in ``Workload.config_maps`` whether or not they were found;
* the text detection reads (each container's image, command and args items, and literal
  env names and values; every item counting one character more than its length) at most
  :data:`MAX_POD_TEXT` characters (1 MiB) per pod. When a pod has more, it is shared out
  fairly (max-min) between its containers: a container is cut only if it has more than
  the others, and every container keeps all its text or at least ``MAX_POD_TEXT /
  containers`` characters of it (1 KiB with 1000 containers), so junk in one container
  cannot push another out of view.
  Within a container the image is kept first, then command, args, env, ConfigMap env and
  ConfigMap files in order; what does not fit is left out, and the container records that in
  ``oversized``.

This module has no kopf and no Kubernetes client imports: it is pure data.
"""

# size: pod parsing and ConfigMap resolution share the budgeted text model (_Text, fair shares);
# the ConfigMap part is the first candidate to move out.

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal, DecimalException
from types import MappingProxyType
from typing import Any, Protocol

from minerguard.domain.oci import ImageConfig
from minerguard.domain.patterns import MAX_VALUE_LEN

CREATED_BY_ANNOTATION = "minerguard.io/created-by"
"""The creator stamp's annotation (the chart's optional MutatingAdmissionPolicy); domain.foothold reads it too."""

__all__ = [
    "MAX_CONFIG_MAP_CHARS",
    "MAX_NAME_LEN",
    "MAX_POD_TEXT",
    "WORKLOAD_KINDS",
    "ConfigMapIndex",
    "ConfigMapLookup",
    "ContainerView",
    "OwnerRef",
    "Workload",
    "config_map_data",
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
    """What detection reads of one container. ``env`` holds literal values only;
    ``config_env`` the values taken from ConfigMaps, ``files`` the ConfigMap files mounted
    (path, text), ``oversized`` where a value or the container's text was cut."""

    kind: str
    name: str
    image: str = ""
    command: tuple[str, ...] = ()
    args: tuple[str, ...] = ()
    env: tuple[tuple[str, str], ...] = ()
    image_id: str = ""
    config_env: tuple[tuple[str, str], ...] = ()
    files: tuple[tuple[str, str], ...] = ()
    oversized: tuple[str, ...] = ()
    image_config: ImageConfig | None = None
    """The image's config, once read from its registry (see :mod:`minerguard.domain.detection.image`)."""
    command_from: str = "command"
    args_from: str = "args"
    """Where ``command`` and ``args`` come from, as evidence names it (the pod spec, or the image)."""
    image_env: tuple[tuple[str, str], ...] = ()
    """The image's env beneath the pod's; ``image_texts``: (where, text) of other image config fields."""
    image_texts: tuple[tuple[str, str], ...] = ()


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
    config_maps: frozenset[str] = frozenset()
    """Names of the ConfigMaps (in the workload's namespace) its containers reference."""
    service_account: str = ""
    """The pod's ServiceAccount name (empty when the spec names none)."""
    created_by: str = ""
    """The creator stamp's ``minerguard.io/created-by`` annotation on the pod (see domain.foothold)."""

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


_HEAD = MAX_VALUE_LEN // 2
_TAIL = MAX_VALUE_LEN - _HEAD - 1


def _clip(value: str) -> tuple[str, bool]:
    """A value within :data:`MAX_VALUE_LEN` (itself, or its head and tail joined by a newline), and if it was cut."""
    if len(value) <= MAX_VALUE_LEN:
        return value, False
    return value[:_HEAD] + "\n" + value[len(value) - _TAIL :], True


def _as_str(value: object) -> str:
    return _clip(value)[0] if isinstance(value, str) else ""


def _as_name(value: object) -> str:
    return value[:MAX_NAME_LEN] if isinstance(value, str) else ""


def _as_strs(value: object, where: str, oversized: list[str]) -> list[str]:
    out = []
    for item in _as_list(value, MAX_ARGS):
        if isinstance(item, str):
            text, cut = _clip(item)
            if cut:
                oversized.append(f"{where} item of {len(item)} characters")
            out.append(text)
    return out


def _first(items: Sequence[Any], predicate: Callable[[Any], bool]) -> Any:
    return next((item for item in items if predicate(item)), None)


def _env(value: object, oversized: list[str]) -> list[tuple[str, str]]:
    out = []
    for entry in _as_list(value, MAX_ENV):
        entry = _as_map(entry)
        literal = entry.get("value")
        if isinstance(literal, str) and "valueFrom" not in entry:
            name = _as_name(entry.get("name"))
            text, cut = _clip(literal)
            if cut:
                oversized.append(f"env {name} value of {len(literal)} characters")
            out.append((name, text))
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
    config_env: list[tuple[str, str]] = field(default_factory=list)
    files: list[tuple[str, str]] = field(default_factory=list)
    oversized: list[str] = field(default_factory=list)

    def size(self) -> int:
        items = self.command + self.args
        pairs = self.env + self.config_env + self.files
        return len(self.image) + sum(map(len, items)) + len(items) + sum(len(n) + len(v) + 1 for n, v in pairs)

    def cut(self, allowance: int) -> None:
        """Keep at most ``allowance`` characters: the image, then command, args, env, ConfigMap
        env and ConfigMap files, in order."""
        self.oversized.append("container text over the pod's text budget")
        self.image = self.image[:allowance]
        allowance -= len(self.image)
        self.command, allowance = _cut_items(self.command, allowance)
        self.args, allowance = _cut_items(self.args, allowance)
        self.env, allowance = _cut_pairs(self.env, allowance)
        self.config_env, allowance = _cut_pairs(self.config_env, allowance)
        self.files, allowance = _cut_pairs(self.files, allowance)


def _cut_pairs(pairs: list[tuple[str, str]], allowance: int) -> tuple[list[tuple[str, str]], int]:
    kept: list[tuple[str, str]] = []
    for name, value in pairs:
        cost = len(name) + len(value) + 1
        if cost > allowance:
            if allowance > len(name) + 1:
                kept.append((name, value[: allowance - len(name) - 1]))
            return kept, 0
        kept.append((name, value))
        allowance -= cost
    return kept, allowance


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


def _containers(
    spec: Mapping[str, Any], status: Mapping[str, Any], namespace: str, maps: ConfigMapLookup | None, names: set[str]
) -> tuple[ContainerView, ...]:
    found: list[tuple[str, str, _Text, str]] = []
    volumes: dict[str, list[tuple[str, list[tuple[str, str]] | None]]] = {}
    for volume in _as_list(spec.get("volumes"), MAX_VOLUMES):
        sources = _volume_sources(_as_map(volume))
        if sources:
            volumes[_as_str(_as_map(volume).get("name"))] = sources
            names.update(name for name, _ in sources)
    for kind, (spec_key, status_key) in _STATUS_FIELDS.items():
        ids = _image_ids(status, status_key)
        for raw in _as_list(spec.get(spec_key), MAX_CONTAINERS - len(found)):
            container = _as_map(raw)
            name = _as_name(container.get("name"))
            oversized: list[str] = []
            config_env, referenced = _config_env(container, namespace, maps)
            names.update(referenced)
            text = _Text(
                image=_as_str(container.get("image")),
                command=_as_strs(container.get("command"), "command", oversized),
                args=_as_strs(container.get("args"), "args", oversized),
                env=_env(container.get("env"), oversized),
                config_env=config_env,
                files=_config_files(container, volumes, namespace, maps) if volumes else [],
                oversized=oversized,
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
            config_env=tuple(text.config_env),
            files=tuple(text.files),
            oversized=tuple(text.oversized),
        )
        for kind, name, text, image_id in found
    )


# ---------------------------------------------------------------------------------------
# ConfigMaps


class ConfigMapLookup(Protocol):
    """Where workload parsing finds the ConfigMaps a pod references: the operator's cache, or
    the ConfigMaps of the files ``minerguard scan`` reads. Never Secrets."""

    def get(self, namespace: str, name: str) -> Mapping[str, str] | None:
        """The ``data`` of ConfigMap namespace/name, or None when it is not known."""


MAX_CONFIG_MAP_CHARS = 1 << 20
"""Characters of one ConfigMap's data kept (keys and values; values cut like any value)."""


def config_map_data(body: Mapping[str, Any]) -> dict[str, str]:
    """The ``data`` of a ConfigMap object, bounded (binaryData is not read)."""
    data: dict[str, str] = {}
    budget = MAX_CONFIG_MAP_CHARS
    for key, value in itertools.islice(_as_map(body.get("data")).items(), MAX_ENV):
        if isinstance(key, str) and isinstance(value, str) and budget > 0:
            kept = _clip(value)[0][:budget]
            data[key[:MAX_NAME_LEN]] = kept
            budget -= len(kept) + len(key)
    return data


class ConfigMapIndex:
    """ConfigMaps by namespace and name, from objects (a List of ConfigMaps, the documents of files)."""

    def __init__(self, maps: Mapping[tuple[str, str], Mapping[str, str]] | None = None) -> None:
        self._maps: dict[tuple[str, str], Mapping[str, str]] = dict(maps or {})

    @classmethod
    def from_objects(cls, objects: Iterable[Mapping[str, Any]]) -> ConfigMapIndex:
        index = cls()
        for obj in objects:
            index.add(obj)
        return index

    def add(self, obj: Mapping[str, Any]) -> None:
        """Adds a ConfigMap object (anything else is ignored); a manifest without a namespace is in default."""
        if not isinstance(obj, Mapping) or obj.get("kind") != "ConfigMap":
            return
        meta = _as_map(obj.get("metadata"))
        name = meta.get("name")
        if isinstance(name, str) and name:
            self._maps[(_as_str(meta.get("namespace")) or "default", name)] = config_map_data(obj)

    def get(self, namespace: str, name: str) -> Mapping[str, str] | None:
        return self._maps.get((namespace, name))

    def __len__(self) -> int:
        return len(self._maps)


def _config_env(
    container: Mapping[str, Any], namespace: str, maps: ConfigMapLookup | None
) -> tuple[list[tuple[str, str]], set[str]]:
    """Env values a container takes from ConfigMaps (envFrom configMapRef with its prefix, and
    valueFrom.configMapKeyRef), and the names of the ConfigMaps referenced."""
    out: list[tuple[str, str]] = []
    names: set[str] = set()
    for entry in _as_list(container.get("envFrom"), MAX_ENV):
        entry = _as_map(entry)
        ref = _as_map(entry.get("configMapRef"))
        name = ref.get("name")
        if not isinstance(name, str) or not name:
            continue
        names.add(name)
        data = maps.get(namespace, name) if maps is not None else None
        prefix = _as_name(entry.get("prefix"))
        for key, value in (data or {}).items():
            out.append((prefix + key, value))
    for entry in _as_list(container.get("env"), MAX_ENV):
        entry = _as_map(entry)
        ref = _as_map(_as_map(entry.get("valueFrom")).get("configMapKeyRef"))
        ref_name, ref_key = ref.get("name"), ref.get("key")
        if not isinstance(ref_name, str) or not ref_name or not isinstance(ref_key, str):
            continue
        names.add(ref_name)
        data = maps.get(namespace, ref_name) if maps is not None else None
        if data is not None and ref_key in data:
            out.append((_as_name(entry.get("name")), data[ref_key]))
    return out, names


def _volume_sources(volume: Mapping[str, Any]) -> list[tuple[str, list[tuple[str, str]] | None]]:
    """(ConfigMap name, items) of a configMap volume, or of each configMap source of a projected volume."""
    found = []
    sources = [_as_map(volume.get("configMap"))] if isinstance(volume.get("configMap"), Mapping) else []
    for source in _as_list(_as_map(volume.get("projected")).get("sources"), MAX_VOLUMES):
        if isinstance(_as_map(source).get("configMap"), Mapping):
            sources.append(_as_map(_as_map(source).get("configMap")))
    for source in sources:
        name = source.get("name")
        if not isinstance(name, str) or not name:
            continue
        items = source.get("items")
        mapping = None
        if isinstance(items, Sequence) and not isinstance(items, str):
            mapping = [
                (str(_as_map(i).get("key")), str(_as_map(i).get("path") or _as_map(i).get("key")))
                for i in items[:MAX_ENV]
                if isinstance(_as_map(i).get("key"), str)
            ]
        found.append((name, mapping))
    return found


def _config_files(
    container: Mapping[str, Any],
    volumes: Mapping[str, list[tuple[str, list[tuple[str, str]] | None]]],
    namespace: str,
    maps: ConfigMapLookup | None,
) -> list[tuple[str, str]]:
    """(path, text) of every ConfigMap key mounted into the container (configMap and projected volumes)."""
    files: list[tuple[str, str]] = []
    for mount in _as_list(container.get("volumeMounts"), MAX_VOLUMES):
        mount = _as_map(mount)
        sources = volumes.get(_as_str(mount.get("name")))
        mount_path = _as_str(mount.get("mountPath")).rstrip("/")
        sub_path = _as_str(mount.get("subPath"))
        if not sources or not mount_path or maps is None:
            continue
        for name, items in sources:
            data = maps.get(namespace, name)
            if not data:
                continue
            pairs = items if items is not None else [(key, key) for key in data]
            for key, path in pairs:
                if key not in data:
                    continue
                if sub_path:
                    if path == sub_path:
                        files.append((mount_path, data[key]))
                else:
                    files.append((f"{mount_path}/{path}", data[key]))
    return files


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
    maps: ConfigMapLookup | None = None,
) -> Workload:
    """A Workload from the object's metadata, the pod's metadata/spec/status (same for a Pod)."""
    regular = _as_list(spec.get("containers"), MAX_CONTAINERS)
    volumes = _as_list(spec.get("volumes"), MAX_VOLUMES)
    namespace = _as_str(metadata.get("namespace")) or "default"
    names: set[str] = set()
    containers = _containers(spec, status, namespace, maps, names)
    return Workload(
        kind=kind,
        namespace=namespace,
        name=_as_str(metadata.get("name")),
        uid=_as_str(metadata.get("uid")),
        labels=_labels(pod_meta.get("labels")),
        node_name=_as_str(spec.get("nodeName")),
        containers=containers,
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
        config_maps=frozenset(itertools.islice(names, MAX_VOLUMES)),
        service_account=_as_name(spec.get("serviceAccountName")),
        created_by=_as_name(_as_map(pod_meta.get("annotations")).get(CREATED_BY_ANNOTATION)),
    )


def workload_from_pod(pod: Mapping[str, Any], config_maps: ConfigMapLookup | None = None) -> Workload:
    """The view of a Pod object (from the API or a manifest), reading the ConfigMaps it
    references from ``config_maps`` when given. Never raises."""
    pod = _as_map(pod)
    metadata = _as_map(pod.get("metadata"))
    return _build("Pod", metadata, metadata, _as_map(pod.get("spec")), _as_map(pod.get("status")), config_maps)


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


def workloads_from_manifest(doc: Mapping[str, Any], config_maps: ConfigMapLookup | None = None) -> list[Workload]:
    """The Pod, or the pod template of a Deployment, StatefulSet, DaemonSet, ReplicaSet, Job,
    CronJob or ReplicationController, as workloads; [] for any other kind. Never raises.

    For a template the workload has the object's kind, namespace and name, and the template's
    labels; its ``uid`` is the object's (empty in a manifest) and it has no owner or status.
    """
    if not isinstance(doc, Mapping):
        return []
    kind = doc.get("kind")
    if kind == "Pod":
        return [workload_from_pod(doc, config_maps)]
    if not isinstance(kind, str):
        return []
    template = _pod_template(doc, kind)
    if template is None:
        return []
    pod_meta = _as_map(template.get("metadata"))
    return [_build(kind, _as_map(doc.get("metadata")), pod_meta, _as_map(template.get("spec")), {}, config_maps)]
