"""PolicyReports: one ``wgpolicyk8s.io/v1alpha2`` PolicyReport per namespace with open incidents (optional).

With ``MINERGUARD_POLICY_REPORTS`` (the chart's ``policyReports.enabled``), the acting replica
writes, every ``MINERGUARD_POLICY_REPORTS_INTERVAL`` seconds, the report of each namespace whose
incidents changed (:func:`~minerguard.domain.policyreport.policy_report`, from the incident
cache): created when absent, replaced (with its resourceVersion) when different, emptied
(never deleted) when the namespace has no open incident left. A namespace without an open
incident and without a report gets none. The PolicyReport CRD is not minerguard's: the chart expects it served
(Kyverno, Policy Reporter or the wg-policy prototypes install it); while it is not, nothing is
written and one line is logged.
"""

from __future__ import annotations

import logging
from typing import Any

from minerguard.domain.policyreport import REPORT_NAME, policy_report
from minerguard.errors import KubeError, NotFound
from minerguard.services.state import ClusterState
from minerguard.storage.policyreports import PolicyReportStore

log = logging.getLogger(__name__)


class PolicyReports:
    """Writes each namespace's report when its open incidents changed."""

    def __init__(self, storage: PolicyReportStore, state: ClusterState) -> None:
        self.storage = storage
        self.state = state
        self._written: dict[str, dict[str, Any]] = {}
        self._unserved = False

    def _wanted(self) -> dict[str, dict[str, Any]]:
        with self.state.lock:
            by_namespace: dict[str, list[dict[str, Any]]] = {ns: [] for ns in self._written}
            for (namespace, _), entry in self.state.incidents.items():
                by_namespace.setdefault(namespace, []).append(entry.body)
        return {ns: policy_report(ns, bodies) for ns, bodies in by_namespace.items()}

    def sync(self) -> None:
        """Write every report that differs from the last one written."""
        for namespace, report in self._wanted().items():
            if self._written.get(namespace) == report:
                continue
            try:
                self._write(namespace, report)
            except NotFound as exc:
                if not self._unserved:
                    log.warning("PolicyReports are on but not served (install the wgpolicyk8s.io CRD): %s", exc)
                    self._unserved = True
                return
            except KubeError as exc:  # a conflict or an outage: written next round
                log.info("PolicyReport %s/%s not written: %s", namespace, REPORT_NAME, exc)
                continue
            self._unserved = False
            self._written[namespace] = report

    def _write(self, namespace: str, report: dict[str, Any]) -> None:
        """Create the report, or replace it when it differs; an empty one is only ever written over a live one
        (a namespace whose incidents all closed, also those of before a restart)."""
        try:
            live = self.storage.get_policy_report(namespace, REPORT_NAME)
        except NotFound:
            if report["results"]:
                self.storage.create_policy_report(namespace, report)
            return
        if {k: live.get(k) for k in ("summary", "results", "scope")} == {
            k: report[k] for k in ("summary", "results", "scope")
        }:
            return
        meta = {**report["metadata"], "resourceVersion": live["metadata"]["resourceVersion"]}
        self.storage.replace_policy_report(namespace, {**report, "metadata": meta})
