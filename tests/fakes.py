"""FakeStorage: an in-memory implementation of the operator's storage interface, for service unit tests.

Not a mock of the Kubernetes client: it keeps objects, gives them resourceVersions, answers
404 and 409 like the apiserver (as the project's own errors), applies merge patches, and counts
every call by verb and resource the way ``minerguard_api_calls_total`` does. The e2e tests run the
same services against the real control plane.
"""

from __future__ import annotations

import copy
import itertools
from collections import Counter
from collections.abc import Iterable, Mapping
from typing import Any

from minerguard.domain.admintier import PolicyKind
from minerguard.errors import AlreadyExists, Conflict, Invalid, NotFound

Key = tuple[str, str, str]  # (resource, namespace, name)


def merge(target: dict[str, Any], patch: Mapping[str, Any]) -> dict[str, Any]:
    """JSON merge patch (RFC 7386): None removes a key, mappings merge, anything else replaces."""
    for key, value in patch.items():
        if value is None:
            target.pop(key, None)
        elif isinstance(value, Mapping) and isinstance(target.get(key), dict):
            merge(target[key], value)
        elif isinstance(value, Mapping):
            target[key] = merge({}, value)
        else:
            target[key] = copy.deepcopy(value)
    return target


def json_patch(doc: dict[str, Any], ops: list[dict[str, Any]]) -> dict[str, Any]:
    """The JSON patch operations (RFC 6902) the operator writes: test, add, replace, remove."""
    for op in ops:
        parts = [p.replace("~1", "/").replace("~0", "~") for p in str(op["path"]).split("/")[1:]]
        parent: Any = doc
        for part in parts[:-1]:
            parent = parent[int(part)] if isinstance(parent, list) else parent[part]
        last = parts[-1]
        if op["op"] == "test":
            current = parent[int(last)] if isinstance(parent, list) else parent.get(last)
            if current != op["value"]:
                raise ValueError(f"test failed at {op['path']}")
        elif op["op"] in ("add", "replace") and isinstance(parent, list):
            if last == "-":
                parent.append(copy.deepcopy(op["value"]))
            else:
                parent.insert(int(last), copy.deepcopy(op["value"]))
        elif op["op"] in ("add", "replace"):
            if op["op"] == "replace" and last not in parent:
                raise KeyError(op["path"])
            parent[last] = copy.deepcopy(op["value"])
        elif op["op"] == "remove":
            del parent[last]
        else:
            raise ValueError(f"unsupported op {op['op']}")
    return doc


class FakeStorage:
    """The storage methods the services and actions call, over a dict of objects."""

    def __init__(self) -> None:
        self.objects: dict[Key, dict[str, Any]] = {}
        self.events: list[dict[str, Any]] = []
        self.calls: Counter[tuple[str, str]] = Counter()
        self._versions = itertools.count(100)
        self.fail_next: dict[tuple[str, str], Exception] = {}
        self.allowed: set[tuple[str, str, str, str]] = set()
        self.order: list[tuple[str, str]] = []

    # ------------------------------------------------------------------ plumbing

    def _count(self, verb: str, resource: str) -> None:
        self.calls[(verb, resource)] += 1
        self.order.append((verb, resource))
        error = self.fail_next.pop((verb, resource), None)
        if error is not None:
            raise error

    def _stamp(self, body: dict[str, Any]) -> dict[str, Any]:
        body.setdefault("metadata", {})["resourceVersion"] = str(next(self._versions))
        return body

    def put(self, resource: str, body: Mapping[str, Any]) -> dict[str, Any]:
        """Store an object as a test fixture (no call counted)."""
        meta = body.get("metadata") or {}
        stored = self._stamp(copy.deepcopy(dict(body)))
        stored["metadata"].setdefault("uid", f"uid-{meta.get('name')}")
        self.objects[(resource, str(meta.get("namespace", "")), str(meta["name"]))] = stored
        return copy.deepcopy(stored)

    def _get(self, resource: str, namespace: str, name: str) -> dict[str, Any]:
        found = self.objects.get((resource, namespace, name))
        if found is None:
            raise NotFound(f"get {resource} {namespace}/{name}: 404 Not Found", 404, "NotFound")
        return found

    def _create(self, resource: str, namespace: str, body: Mapping[str, Any]) -> dict[str, Any]:
        name = str((body.get("metadata") or {}).get("name"))
        if (resource, namespace, name) in self.objects:
            raise AlreadyExists(f"create {resource} {namespace}/{name}: 409 already exists", 409, "AlreadyExists")
        stored = copy.deepcopy(dict(body))
        stored.setdefault("metadata", {})["namespace"] = namespace
        stored["metadata"].setdefault("uid", f"uid-{name}")
        self.objects[(resource, namespace, name)] = self._stamp(stored)
        return copy.deepcopy(stored)

    def _replace(self, resource: str, namespace: str, body: Mapping[str, Any], part: str = "") -> dict[str, Any]:
        meta = body.get("metadata") or {}
        name = str(meta.get("name"))
        live = self._get(resource, namespace, name)
        if meta.get("resourceVersion") not in (None, live["metadata"]["resourceVersion"]):
            raise Conflict(f"update {resource} {namespace}/{name}: 409 Conflict", 409, "Conflict")
        new = copy.deepcopy(live)
        if part:
            new[part] = copy.deepcopy(body.get(part))
        else:
            new = copy.deepcopy(dict(body))
            new["metadata"] = {**live["metadata"], **copy.deepcopy(dict(meta))}
        self.objects[(resource, namespace, name)] = self._stamp(new)
        return copy.deepcopy(new)

    def _patch(self, resource: str, namespace: str, name: str, patch: Mapping[str, Any]) -> dict[str, Any]:
        live = copy.deepcopy(self._get(resource, namespace, name))
        wanted = (patch.get("metadata") or {}).get("resourceVersion")
        if wanted is not None and wanted != live["metadata"]["resourceVersion"]:  # a precondition, as the apiserver
            raise Conflict(f"patch {resource} {namespace}/{name}: 409 Conflict", 409, "Conflict")
        self.objects[(resource, namespace, name)] = self._stamp(merge(live, patch))
        return copy.deepcopy(self.objects[(resource, namespace, name)])

    # ------------------------------------------------------------------ pods and owners

    def get_pod(self, namespace: str, name: str) -> dict[str, Any]:
        self._count("get", "Pod")
        return copy.deepcopy(self._get("Pod", namespace, name))

    def list_pods(self, namespace: str, label_selector: str = "") -> list[dict[str, Any]]:
        self._count("list", "Pod")
        wanted = dict(part.split("=", 1) for part in label_selector.split(",") if "=" in part)
        pods = [o for (r, ns, _), o in self.objects.items() if r == "Pod" and ns == namespace]
        labelled = [p for p in pods if wanted.items() <= ((p["metadata"].get("labels") or {}).items())]
        return copy.deepcopy(labelled)

    def list_labelled_pods(self, label_selector: str) -> list[dict[str, Any]]:
        self._count("list", "Pod")
        wanted = dict(part.split("=", 1) for part in label_selector.split(",") if "=" in part)
        pods = [o for (r, _, _), o in self.objects.items() if r == "Pod"]
        return copy.deepcopy([p for p in pods if wanted.items() <= ((p["metadata"].get("labels") or {}).items())])

    def patch_pod_metadata(
        self, namespace: str, name: str, labels: Mapping[str, str | None], annotations: Mapping[str, str | None]
    ) -> dict[str, Any]:
        self._count("patch", "Pod")
        return self._patch("Pod", namespace, name, {"metadata": {"labels": labels, "annotations": annotations}})

    def delete_pod(self, namespace: str, name: str, uid: str) -> None:
        self._count("delete", "Pod")
        live = self._get("Pod", namespace, name)
        if live["metadata"].get("uid") != uid:
            raise Conflict(f"delete Pod {namespace}/{name}: 409 precondition failed", 409, "Conflict")
        del self.objects[("Pod", namespace, name)]

    def get_owner(self, namespace: str, kind: str, name: str) -> dict[str, Any]:
        self._count("get", kind)
        return copy.deepcopy(self._get(kind, namespace, name))

    def scale_owner(self, namespace: str, kind: str, name: str, replicas: int) -> None:
        self._count("scale", kind)
        if kind not in ("Deployment", "StatefulSet", "ReplicaSet"):
            raise Invalid(f"cannot scale a {kind}", 422, "NotScalable")
        self._patch(kind, namespace, name, {"spec": {"replicas": replicas}})

    def patch_owner(
        self,
        namespace: str,
        kind: str,
        name: str,
        annotations: Mapping[str, str | None],
        spec: Mapping[str, Any] | None,
    ) -> None:
        self._count("patch", kind)
        self._patch(
            kind, namespace, name, {"metadata": {"annotations": annotations}, **({"spec": spec} if spec else {})}
        )

    # ------------------------------------------------------------------ network policies

    def list_network_policies(self, namespace: str) -> list[dict[str, Any]]:
        self._count("list", "NetworkPolicy")
        return copy.deepcopy([o for (r, ns, _), o in self.objects.items() if r == "NetworkPolicy" and ns == namespace])

    def get_network_policy(self, namespace: str, name: str) -> dict[str, Any]:
        self._count("get", "NetworkPolicy")
        return copy.deepcopy(self._get("NetworkPolicy", namespace, name))

    def create_network_policy(self, namespace: str, body: Mapping[str, Any]) -> dict[str, Any]:
        self._count("create", "NetworkPolicy")
        return self._create("NetworkPolicy", namespace, body)

    def replace_network_policy(self, namespace: str, body: Mapping[str, Any]) -> dict[str, Any]:
        self._count("update", "NetworkPolicy")
        return self._replace("NetworkPolicy", namespace, body)

    def patch_network_policy(
        self, namespace: str, name: str, patch: list[dict[str, Any]] | Mapping[str, Any]
    ) -> dict[str, Any]:
        """A merge patch (a mapping) or a JSON patch (a list); a failed ``test`` is a Conflict, as storage says."""
        self._count("patch", "NetworkPolicy")
        if not isinstance(patch, list):
            return self._patch("NetworkPolicy", namespace, name, patch)
        live = copy.deepcopy(self._get("NetworkPolicy", namespace, name))
        try:
            patched = json_patch(live, patch)
        except (KeyError, IndexError, ValueError) as exc:
            raise Conflict(f"patch NetworkPolicy {namespace}/{name}: 422 {exc}", 409, "PatchTestFailed") from exc
        self.objects[("NetworkPolicy", namespace, name)] = self._stamp(patched)
        return copy.deepcopy(self.objects[("NetworkPolicy", namespace, name)])

    def delete_network_policy(self, namespace: str, name: str) -> None:
        self._count("delete", "NetworkPolicy")
        self._get("NetworkPolicy", namespace, name)
        del self.objects[("NetworkPolicy", namespace, name)]

    # ------------------------------------------------------------------ cluster-wide policies (admin tier)

    served: frozenset[str] = frozenset()
    """The ``group/version/plural`` keys discovery lists (tests set it; none by default)."""

    def served_resources(self, group_versions: Iterable[str]) -> set[str]:
        wanted = set(group_versions)
        return {key for key in self.served if key.rsplit("/", 1)[0] in wanted}

    def get_cluster_policy(self, kind: PolicyKind, name: str) -> dict[str, Any]:
        self._count("get", kind.kind)
        return copy.deepcopy(self._get(kind.served_key, "", name))

    def list_cluster_policies(self, kind: PolicyKind) -> list[dict[str, Any]]:
        self._count("list", kind.kind)
        return copy.deepcopy([o for (r, _, _), o in self.objects.items() if r == kind.served_key])

    def create_cluster_policy(self, kind: PolicyKind, body: Mapping[str, Any]) -> dict[str, Any]:
        self._count("create", kind.kind)
        created = self._create(kind.served_key, "", body)
        del self.objects[(kind.served_key, "", created["metadata"]["name"])]["metadata"]["namespace"]
        return self._get(kind.served_key, "", created["metadata"]["name"])

    def patch_cluster_policy(
        self, kind: PolicyKind, name: str, patch: list[dict[str, Any]] | Mapping[str, Any]
    ) -> dict[str, Any]:
        self._count("patch", kind.kind)
        if not isinstance(patch, list):
            return self._patch(kind.served_key, "", name, patch)
        patched = json_patch(copy.deepcopy(self._get(kind.served_key, "", name)), patch)
        self.objects[(kind.served_key, "", name)] = self._stamp(patched)
        return copy.deepcopy(patched)

    def delete_cluster_policy(self, kind: PolicyKind, name: str) -> None:
        self._count("delete", kind.kind)
        self._get(kind.served_key, "", name)
        del self.objects[(kind.served_key, "", name)]

    # ------------------------------------------------------------------ namespaces

    def get_namespace(self, name: str) -> dict[str, Any]:
        self._count("get", "Namespace")
        return copy.deepcopy(self._get("Namespace", "", name))

    def patch_namespace_labels(self, name: str, labels: Mapping[str, str | None]) -> dict[str, Any]:
        self._count("patch", "Namespace")
        if ("Namespace", "", name) not in self.objects:
            self.put("Namespace", {"metadata": {"name": name}})
        return self._patch("Namespace", "", name, {"metadata": {"labels": dict(labels)}})

    def patch_namespace_annotations(
        self, name: str, annotations: Mapping[str, str | None], resource_version: str
    ) -> dict[str, Any]:
        self._count("patch", "Namespace")
        if self._get("Namespace", "", name)["metadata"]["resourceVersion"] != resource_version:
            raise Conflict(f"patch Namespace {name}: 409 Conflict", 409, "Conflict")
        return self._patch("Namespace", "", name, {"metadata": {"annotations": dict(annotations)}})

    # ------------------------------------------------------------------ nodes

    def list_nodes(self) -> list[dict[str, Any]]:
        self._count("list", "Node")
        return copy.deepcopy([o for (r, _, _), o in self.objects.items() if r == "Node"])

    def get_node(self, name: str) -> dict[str, Any]:
        self._count("get", "Node")
        return copy.deepcopy(self._get("Node", "", name))

    def patch_node(self, name: str, body: Mapping[str, Any]) -> dict[str, Any]:
        self._count("patch", "Node")
        return self._patch("Node", "", name, body)

    # ------------------------------------------------------------------ incidents, policies, peering

    def get_incident(self, namespace: str, name: str) -> dict[str, Any]:
        self._count("get", "MinerIncident")
        return copy.deepcopy(self._get("MinerIncident", namespace, name))

    def list_incidents(self) -> list[dict[str, Any]]:
        self._count("list", "MinerIncident")
        return [copy.deepcopy(b) for k, b in self.objects.items() if k[0] == "MinerIncident"]

    def create_incident(self, namespace: str, body: Mapping[str, Any]) -> dict[str, Any]:
        self._count("create", "MinerIncident")
        return self._create("MinerIncident", namespace, body)

    def replace_incident_status(self, namespace: str, body: Mapping[str, Any]) -> dict[str, Any]:
        self._count("update", "MinerIncident")
        return self._replace("MinerIncident", namespace, body, part="status")

    def patch_incident_spec(self, namespace: str, name: str, spec: Mapping[str, Any]) -> dict[str, Any]:
        self._count("patch", "MinerIncident")
        return self._patch("MinerIncident", namespace, name, {"spec": spec})

    def get_policy(self, name: str) -> dict[str, Any]:
        self._count("get", "MinerPolicy")
        return copy.deepcopy(self._get("MinerPolicy", "", name))

    def patch_policy_status(self, name: str, status: Mapping[str, Any]) -> dict[str, Any]:
        self._count("patch", "MinerPolicy")
        return self._patch("MinerPolicy", "", name, {"status": status})

    def get_secret_value(self, namespace: str, name: str, key: str) -> str:
        self._count("get", "Secret")
        data = self._get("Secret", namespace, name).get("stringData") or {}
        if key not in data:
            raise NotFound(f"Secret {namespace}/{name} has no key {key}", 404, "NotFound")
        return str(data[key]).strip()

    def get_policy_report(self, namespace: str, name: str) -> dict[str, Any]:
        self._count("get", "PolicyReport")
        return copy.deepcopy(self._get("PolicyReport", namespace, name))

    def create_policy_report(self, namespace: str, body: Mapping[str, Any]) -> dict[str, Any]:
        self._count("create", "PolicyReport")
        return self._create("PolicyReport", namespace, body)

    def replace_policy_report(self, namespace: str, body: Mapping[str, Any]) -> dict[str, Any]:
        self._count("update", "PolicyReport")
        return self._replace("PolicyReport", namespace, body)

    def get_peering(self, name: str) -> dict[str, Any]:
        self._count("get", "ClusterKopfPeering")
        return copy.deepcopy(self._get("ClusterKopfPeering", "", name))

    # ------------------------------------------------------------------ access reviews

    def review_access(self, user: str, groups: list[str], attributes: Mapping[str, str]) -> bool:
        """Allowed when ``self.allowed`` holds (user, verb, resource, namespace or "")."""
        self._count("create", "SubjectAccessReview")
        key = (user, attributes.get("verb", ""), attributes.get("resource", ""), attributes.get("namespace", ""))
        return key in self.allowed

    # ------------------------------------------------------------------ events

    def emit_event(
        self,
        regarding: Mapping[str, str],
        reason: str,
        note: str,
        *,
        warning: bool = True,
        action: str = "Detect",
        related: Mapping[str, str] | None = None,
    ) -> None:
        self._count("create", "Event")
        self.events.append(
            {"regarding": dict(regarding), "reason": reason, "note": note, "type": "Warning" if warning else "Normal"}
        )

    # ------------------------------------------------------------------ for assertions

    def total_calls(self) -> int:
        return sum(self.calls.values())

    def reasons(self) -> list[str]:
        return [e["reason"] for e in self.events]
