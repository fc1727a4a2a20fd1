"""Cluster-scoped network policies of the admin tier, Cilium and Calico, and the discovery that finds them.

A mixin of :class:`minerguard.storage.kubernetes.KubeStorage` (which holds the plumbing): each method is one
API call on the custom-objects endpoints, plain dicts in and out, errors translated like every other call.
The resource is named by a :class:`minerguard.domain.admintier.PolicyKind`; the metric and RBAC label of a
call is the kind (``get AdminNetworkPolicy ...``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any, TypeVar

from kubernetes import client

from minerguard.domain.admintier import PolicyKind
from minerguard.errors import Invalid, KubeError, NotFound

T = TypeVar("T")


class ClusterPolicies:
    """The admin-tier policy calls; KubeStorage provides ``api``, ``custom`` and ``_call``."""

    api: client.ApiClient
    custom: client.CustomObjectsApi
    core: client.CoreV1Api

    def _call(self, what: str, fn: Callable[..., T], *args: Any, write: bool = False, **kwargs: Any) -> T:
        raise NotImplementedError

    def _plain(self, obj: Any) -> dict[str, Any]:
        raise NotImplementedError

    def served_resources(self, group_versions: Iterable[str]) -> set[str]:
        """Of the given ``group/version``s, the ``group/version/plural`` of each resource discovery lists.

        Discovery is open to every authenticated user (``system:discovery``): no RBAC rule needed.
        A group/version the cluster does not serve is simply absent.
        """
        served: set[str] = set()
        for gv in sorted(set(group_versions)):
            group, version = gv.split("/", 1)
            try:
                found = self._plain(
                    self._call(f"discover APIResources {gv}", self.custom.get_api_resources, group, version)
                )
            except NotFound:
                continue
            for res in found.get("resources") or []:
                served.add(f"{gv}/{res.get('name')}")
        return served

    def list_labelled_pods(self, label_selector: str) -> list[dict[str, Any]]:
        """Pods of every namespace with the label (the quarantined ones, when moving between backends)."""
        res = self._call(
            f"list Pods labelled {label_selector}", self.core.list_pod_for_all_namespaces, label_selector=label_selector
        )
        return [self._plain(p) for p in res.items]

    def get_cluster_policy(self, kind: PolicyKind, name: str) -> dict[str, Any]:
        return self._plain(
            self._call(
                f"get {kind.kind} {name}",
                self.custom.get_cluster_custom_object,
                kind.group,
                kind.version,
                kind.plural,
                name,
            )
        )

    def list_cluster_policies(self, kind: PolicyKind) -> list[dict[str, Any]]:
        res = self._call(
            f"list {kind.kind}", self.custom.list_cluster_custom_object, kind.group, kind.version, kind.plural
        )
        return [dict(i) for i in (res or {}).get("items") or []]

    def create_cluster_policy(self, kind: PolicyKind, body: Mapping[str, Any]) -> dict[str, Any]:
        """Create it with strict field validation: a field this version of the CRD does not have (the standard
        channel of AdminNetworkPolicy has no ``networks`` peer) is refused (Invalid), never silently pruned."""
        name = (body.get("metadata") or {}).get("name", "")
        try:
            created = self._call(
                f"create {kind.kind} {name}",
                self.custom.create_cluster_custom_object,
                kind.group,
                kind.version,
                kind.plural,
                dict(body),
                field_validation="Strict",
                write=True,
            )
        except KubeError as exc:
            if exc.status == 400:
                raise Invalid(str(exc), 422, exc.reason) from exc
            raise
        return self._plain(created)

    def patch_cluster_policy(
        self, kind: PolicyKind, name: str, patch: list[dict[str, Any]] | Mapping[str, Any]
    ) -> dict[str, Any]:
        """A JSON patch (a list) or a merge patch; no resourceVersion: restoring never loses to a tamperer's loop.
        Strict field validation, as on create (an unknown field is Invalid)."""
        body: Any = [dict(op) for op in patch] if isinstance(patch, list) else dict(patch)
        content = "application/json-patch+json" if isinstance(patch, list) else "application/merge-patch+json"
        try:
            patched = self._call(
                f"patch {kind.kind} {name}",
                self.custom.patch_cluster_custom_object,
                kind.group,
                kind.version,
                kind.plural,
                name,
                body,
                field_validation="Strict",
                write=True,
                _content_type=content,
            )
        except KubeError as exc:
            if exc.status == 400:
                raise Invalid(str(exc), 422, exc.reason) from exc
            raise
        return self._plain(patched)

    def delete_cluster_policy(self, kind: PolicyKind, name: str) -> None:
        self._call(
            f"delete {kind.kind} {name}",
            self.custom.delete_cluster_custom_object,
            kind.group,
            kind.version,
            kind.plural,
            name,
            write=True,
        )
