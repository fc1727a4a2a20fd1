"""Shape checks: a workload with a wrong type where minerguard reads it is named, not silently skipped."""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence
from typing import Any

from minerguard.domain.policy import Policy
from minerguard.domain.workload import (
    MAX_ARGS,
    MAX_CONTAINERS,
    MAX_LABELS,
)
from minerguard.scan.reading import kind_of, plain


def has_pod_template(body: Mapping[str, Any]) -> bool:
    spec = body.get("spec")
    if not isinstance(spec, Mapping):
        return False
    return (
        "containers" in spec
        or isinstance(spec.get("template"), Mapping)
        or isinstance(spec.get("jobTemplate"), Mapping)
    )


_TYPES: dict[type, str] = {str: "a string", bool: "true or false", list: "a list", Mapping: "a mapping"}


class _Shape:
    """Problems with the types of the fields minerguard reads, each with its path."""

    def __init__(self) -> None:
        self.problems: list[str] = []

    def check(self, value: Any, expected: type, path: str, required: bool = False) -> bool:
        """Whether ``value`` is of the expected type; if not (or missing when required), a problem is recorded."""
        if value is None:
            if required:
                self.problems.append(f"{path} is missing")
            return False
        if isinstance(value, expected) and not (expected is list and isinstance(value, str)):
            return True
        self.problems.append(f"{path} must be {_TYPES[expected]}, got {kind_of(value)}")
        return False

    def mapping(
        self, parent: Mapping[str, Any] | None, key: str, path: str, required: bool = False
    ) -> Mapping[str, Any] | None:
        """The mapping at ``parent[key]``; None when the parent is None, or the value is missing or not a mapping."""
        if parent is None:
            return None
        value = parent.get(key)
        ok = self.check(value, Mapping, f"{path}.{key}" if path else key, required)
        return value if ok and isinstance(value, Mapping) else None

    def items(self, parent: Mapping[str, Any], key: str, path: str, required: bool = False) -> list[Any]:
        """The items of a list field (at most the workload view's cap), [] when it is not a list."""
        value = parent.get(key)
        ok = self.check(value, list, f"{path}.{key}", required)
        return list(value[:MAX_ARGS]) if ok and isinstance(value, list) else []

    def strings(self, parent: Mapping[str, Any], key: str, path: str) -> None:
        for index, item in enumerate(self.items(parent, key, path)):
            self.check(item, str, f"{path}.{key}[{index}]", required=True)

    def container(self, raw: Any, path: str) -> None:
        if not self.check(raw, Mapping, path, required=True):
            return
        for key in ("name", "image"):
            self.check(raw.get(key), str, f"{path}.{key}")
        self.strings(raw, "command", path)
        self.strings(raw, "args", path)
        for index, entry in enumerate(self.items(raw, "env", path)):
            where = f"{path}.env[{index}]"
            if self.check(entry, Mapping, where, required=True):
                self.check(entry.get("name"), str, f"{where}.name", required=True)
                self.check(entry.get("value"), str, f"{where}.value")
                self.check(entry.get("valueFrom"), Mapping, f"{where}.valueFrom")
        for key in ("securityContext", "resources"):
            self.mapping(raw, key, path)

    def pod_spec(self, spec: Mapping[str, Any], path: str) -> None:
        for key in ("containers", "initContainers", "ephemeralContainers"):
            for index, raw in enumerate(self.items(spec, key, path, required=key == "containers")[:MAX_CONTAINERS]):
                self.container(raw, f"{path}.{key}[{index}]")
        for key in ("hostNetwork", "hostPID", "hostIPC"):
            self.check(spec.get(key), bool, f"{path}.{key}")
        self.check(spec.get("nodeName"), str, f"{path}.nodeName")
        for index, volume in enumerate(self.items(spec, "volumes", path)):
            self.check(volume, Mapping, f"{path}.volumes[{index}]", required=True)

    def metadata(self, parent: Mapping[str, Any] | None, path: str) -> None:
        metadata = self.mapping(parent, "metadata", path) or {}
        for key in ("name", "namespace"):
            self.check(metadata.get(key), str, f"{path + '.' if path else ''}metadata.{key}")
        labels = self.mapping(metadata, "labels", f"{path + '.' if path else ''}metadata") or {}
        for key, value in itertools.islice(labels.items(), MAX_LABELS):
            self.check(value, str, f"{path + '.' if path else ''}metadata.labels[{plain(str(key))}]", required=True)


def shape_problems(body: Mapping[str, Any]) -> list[str]:
    """Wrong types (and missing parts) in the fields of a workload manifest that minerguard
    reads, each as ``path must be ..., got ...``; [] when all is well. Bounded by the
    workload view's caps: what is past them is never read, so it is not checked either."""
    shape = _Shape()
    kind = body.get("kind")
    shape.metadata(body, "")
    spec = shape.mapping(body, "spec", "", required=True)
    path = "spec"
    if kind == "CronJob":
        job = shape.mapping(spec, "jobTemplate", path, required=True)
        spec = shape.mapping(job, "spec", f"{path}.jobTemplate", required=True)
        path = "spec.jobTemplate.spec"
    if kind != "Pod":
        template = shape.mapping(spec, "template", path, required=True)
        shape.metadata(template, f"{path}.template")
        spec = shape.mapping(template, "spec", f"{path}.template", required=True)
        path = f"{path}.template.spec"
    if spec is not None:
        shape.pod_spec(spec, path)
    return shape.problems


def not_evaluable(policies: Sequence[Policy]) -> list[dict[str, Any]]:
    return [{"policy": p.name, "signals": list(p.caller_kinds)} for p in policies if p.caller_kinds]
