"""The PolicyReport calls (``wgpolicyk8s.io/v1alpha2``), beside the operator's own: get, create, update.

Made through :class:`~minerguard.storage.kubernetes.KubeStorage`'s call path (retries, errors,
``minerguard_api_calls_total``); granted by ``minerguard.rbac.POLICY_REPORT_RULES`` only when
the chart's ``policyReports.enabled`` adds them.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from minerguard.storage.kubernetes import KubeStorage

GROUP, VERSION, PLURAL = "wgpolicyk8s.io", "v1alpha2", "policyreports"


class PolicyReportStore:
    """PolicyReports in namespaces, through the operator's storage."""

    def __init__(self, storage: KubeStorage) -> None:
        self.storage = storage

    def get_policy_report(self, namespace: str, name: str) -> dict[str, Any]:
        s = self.storage
        what = f"get PolicyReport {namespace}/{name}"
        return s._plain(s._call(what, s.custom.get_namespaced_custom_object, GROUP, VERSION, namespace, PLURAL, name))

    def create_policy_report(self, namespace: str, body: Mapping[str, Any]) -> dict[str, Any]:
        s = self.storage
        what = f"create PolicyReport {namespace}/{body['metadata']['name']}"
        fn = s.custom.create_namespaced_custom_object
        return s._plain(s._call(what, fn, GROUP, VERSION, namespace, PLURAL, dict(body), write=True))

    def replace_policy_report(self, namespace: str, body: Mapping[str, Any]) -> dict[str, Any]:
        """Replace with the body's resourceVersion (Conflict when stale)."""
        s = self.storage
        name = body["metadata"]["name"]
        fn = s.custom.replace_namespaced_custom_object
        return s._plain(
            s._call(
                f"update PolicyReport {namespace}/{name}",
                fn,
                GROUP,
                VERSION,
                namespace,
                PLURAL,
                name,
                dict(body),
                write=True,
            )
        )
