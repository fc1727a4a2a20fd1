"""CPU-saturation signals from Prometheus, one evaluation cycle at a time.

Each cycle asks Prometheus one query per (signal kind, window) over all policies
(:mod:`minerguard.domain.promql`), never one per pod or node; CPU limits, requests and
node allocatable come from the operator's own watch caches. The answers become
:class:`~minerguard.domain.detection.Evidence` per policy and pod (``podCpu``) or per policy
and node (``nodeCpu``, ``nodeUnaccountedCpu``), carrying the value, the window and
the query. Pods whose findings changed are evaluated again; node findings go to
node containment.

The rate window and the cycle are sized from the policies' windows and the kubelets' scrape
interval (:func:`~minerguard.domain.promql.sizing_for`), which comes from the setting or, when it
is empty, from Prometheus' own targets (read again every 10 minutes; 30 s when it does not say).

When Prometheus is down or answers garbage, the metric findings are dropped (stale
numbers never contain anything), spec detection carries on untouched, and each
policy with CPU signals gets ``MetricsAvailable=False`` and one Warning Event; the
first good cycle sets it back, with one Normal Event.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any

from minerguard import observability
from minerguard.config import PrometheusSettings
from minerguard.domain import promql
from minerguard.domain.detection import Evidence
from minerguard.domain.policy import PodCpuSpec, Policy
from minerguard.domain.workload import Workload
from minerguard.errors import KubeError, MetricsError
from minerguard.services.events import Events
from minerguard.services.policies import PolicyRegistry, condition, merge_conditions
from minerguard.services.state import ClusterState, PodKey
from minerguard.storage.kubernetes import KubeStorage
from minerguard.storage.prometheus import PrometheusStorage

log = logging.getLogger(__name__)

NodeFindings = dict[str, dict[str, list[Evidence]]]  # policy -> node -> evidence


def reference_cores(wl: Workload, spec: PodCpuSpec) -> tuple[float, str]:
    """What a pod's usage is compared to, and its name for the evidence."""
    if spec.relative_to == "Limit" and wl.cpu_limit_cores:
        return wl.cpu_limit_cores, "its CPU limit"
    if spec.relative_to in ("Limit", "Request") and wl.cpu_request_cores:
        return wl.cpu_request_cores, "its CPU request"
    return spec.cores, f"{spec.cores:g} cores"


class MetricsEngine:
    def __init__(
        self,
        settings: PrometheusSettings,
        state: ClusterState,
        policies: PolicyRegistry,
        storage: KubeStorage,
        events: Events,
        on_pods_changed: Callable[[set[PodKey]], None],
        on_node_findings: Callable[[Policy, str, list[Evidence]], None],
    ) -> None:
        self.settings = settings
        self.state = state
        self.policies = policies
        self.storage = storage
        self.events = events
        self.on_pods_changed = on_pods_changed
        self.on_node_findings = on_node_findings
        self._pod: dict[str, dict[PodKey, Evidence]] = {}
        self._lock = threading.Lock()
        self._available: bool | None = None
        self._reported: dict[str, tuple[bool, int]] = {}
        self.client = PrometheusStorage(settings) if settings.url else None
        self._scrape: tuple[float, float] | None = None  # (seconds, monotonic time it was read)

    # ------------------------------------------------------------------ sizing

    def scrape_interval(self) -> float:
        """The kubelets' scrape interval: the setting, else Prometheus' targets (kept 10 minutes), else 30 s."""
        if self.settings.scrape_interval:
            return float(promql.seconds(self.settings.scrape_interval))
        now = time.monotonic()
        if self._scrape is not None and now - self._scrape[1] < SCRAPE_REREAD_S:
            return self._scrape[0]
        found: float | None = None
        if self.client is not None:
            try:
                found = promql.scrape_interval(self.client.targets(), self.settings.series_job)
            except MetricsError as exc:
                log.info("Could not read the scrape interval from Prometheus' targets: %s", exc)
        previous = self._scrape[0] if self._scrape is not None else None
        value = found if found is not None else (previous or promql.FALLBACK_SCRAPE_S)
        if value != previous:
            log.info("Metric sizing: scrape interval %gs (%s)", value, "from Prometheus" if found else "assumed")
        self._scrape = (value, now)
        return value

    def next_interval(self) -> float:
        """Seconds to the next cycle: sized from the shortest window of the ready policies' CPU signals."""
        windows = [w for ws in _windows(self._metric_policies()).values() for w in ws]
        scrape = self.scrape_interval() if windows else promql.FALLBACK_SCRAPE_S
        return promql.cycle_interval(windows, self.settings, scrape)

    def _metric_policies(self) -> list[Policy]:
        return [p for p in self.policies.ready() if p.cpu is not None and p.metric_kinds]

    # ------------------------------------------------------------------ the hot path's question

    def findings(self, policy: Policy, wl: Workload) -> Sequence[Evidence]:
        with self._lock:
            found = self._pod.get(policy.name, {}).get((wl.namespace, wl.name))
        return (found,) if found is not None else ()

    # ------------------------------------------------------------------ one cycle

    def cycle(self) -> None:
        metric_policies = self._metric_policies()
        if not metric_policies:
            self._replace_pod_findings({})
            return
        if self.client is None:
            self._set_available(metric_policies, False, "NotConfigured", "no Prometheus URL is configured")
            return
        queries = promql.queries_for(_windows(metric_policies), self.settings, self.scrape_interval())
        started = time.perf_counter()
        answers: dict[tuple[str, str], tuple[promql.Query, dict[tuple[str, ...], float]]] = {}
        try:
            for q in queries:
                observability.PROMQL_QUERIES.labels(q.signal).inc()
                try:
                    raw: Any = self.client.query(q.promql)
                    answers[(q.signal, q.window)] = (q, promql.read_vector(raw, q.keys))
                except Exception:
                    observability.PROMQL_ERRORS.labels(q.signal).inc()
                    raise
        except Exception as exc:  # noqa: BLE001 - any failure is an outage of the metric signals
            self._replace_pod_findings({})
            self._set_available(metric_policies, False, "PrometheusUnavailable", _describe(exc))
            return
        observability.PROMQL_CYCLE_QUERIES.set(len(queries))
        observability.PROMQL_CYCLE_SECONDS.observe(time.perf_counter() - started)
        self._set_available(metric_policies, True, "PrometheusAnswering", "CPU signals are evaluated")
        self._replace_pod_findings(self._pod_findings(metric_policies, answers))
        for policy_name, by_node in self._node_findings(metric_policies, answers).items():
            current = self.policies.get(policy_name)
            if current is None:
                continue
            for node, evidence in by_node.items():
                self.on_node_findings(current, node, evidence)

    def _pod_findings(
        self, policies: list[Policy], answers: dict[tuple[str, str], tuple[promql.Query, dict[tuple[str, ...], float]]]
    ) -> dict[str, dict[PodKey, Evidence]]:
        out: dict[str, dict[PodKey, Evidence]] = {}
        for p in policies:
            spec = p.cpu.pod if p.cpu else None
            if spec is None or ("podCpu", spec.window) not in answers:
                continue
            q, vector = answers[("podCpu", spec.window)]
            found: dict[PodKey, Evidence] = {}
            for (namespace, pod), usage in vector.items():
                entry = self.state.pod((namespace, pod))
                if entry is None:
                    continue
                ref, what = reference_cores(entry.workload, spec)
                if ref > 0 and usage >= spec.threshold * ref:
                    found[(namespace, pod)] = Evidence(
                        signal="podCpu",
                        strength=spec.strength,
                        container="",
                        detail=f"CPU stayed at or above {usage / ref:.0%} of {what} ({usage:.2f} of {ref:g} cores) "
                        f"for {spec.window}; threshold {spec.threshold:.0%}",
                        query=q.promql,
                        value=f"{usage:.3f}",
                        window=spec.window,
                    )
            out[p.name] = found
        return out

    def _node_findings(
        self, policies: list[Policy], answers: dict[tuple[str, str], tuple[promql.Query, dict[tuple[str, ...], float]]]
    ) -> NodeFindings:
        out: NodeFindings = {}
        for p in policies:
            assert p.cpu is not None
            by_node: dict[str, list[Evidence]] = {}
            if p.cpu.node and ("nodeCpu", p.cpu.node.window) in answers:
                spec = p.cpu.node
                q, vector = answers[("nodeCpu", spec.window)]
                for (node,), usage in vector.items():
                    allocatable = self.state.node_cpu(node)
                    if allocatable and usage >= spec.threshold * allocatable:
                        by_node.setdefault(node, []).append(
                            Evidence(
                                signal="nodeCpu",
                                strength=spec.strength,
                                container="",
                                detail=f"Node {node} used {usage:.2f} of {allocatable:g} allocatable cores "
                                f"({usage / allocatable:.0%}) for {spec.window}; threshold {spec.threshold:.0%}",
                                query=q.promql,
                                value=f"{usage:.3f}",
                                window=spec.window,
                            )
                        )
            if p.cpu.unaccounted and ("nodeUnaccountedCpu", p.cpu.unaccounted.window) in answers:
                uspec = p.cpu.unaccounted
                q, vector = answers[("nodeUnaccountedCpu", uspec.window)]
                for (node,), usage in vector.items():
                    if usage >= uspec.cores:
                        by_node.setdefault(node, []).append(
                            Evidence(
                                signal="nodeUnaccountedCpu",
                                strength=uspec.strength,
                                container="",
                                detail=f"Node {node} burned {usage:.2f} cores that none of its pods accounts for, "
                                f"for {uspec.window}; threshold {uspec.cores:g} cores",
                                query=q.promql,
                                value=f"{usage:.3f}",
                                window=uspec.window,
                            )
                        )
            if by_node:
                out[p.name] = by_node
        return out

    def _replace_pod_findings(self, new: dict[str, dict[PodKey, Evidence]]) -> None:
        with self._lock:
            old = self._pod
            self._pod = new
        changed: set[PodKey] = set()
        for name in set(old) | set(new):
            a, b = old.get(name, {}), new.get(name, {})
            changed |= {k for k in set(a) | set(b) if (k in a) != (k in b)}
        if changed:
            self.on_pods_changed(changed)

    # ------------------------------------------------------------------ MetricsAvailable

    def _set_available(self, policies: list[Policy], available: bool, reason: str, message: str) -> None:
        """Report MetricsAvailable on each policy whose state changed; Events only on real transitions."""
        if self._available is not available:
            if available:
                log.info("Prometheus answers: CPU signals are evaluated")
            else:
                log.warning("CPU signals unavailable: %s", message)
            self._available = available
        for p in policies:
            previous = self._reported.get(p.name)
            if previous == (available, p.generation):
                continue
            self._reported[p.name] = (available, p.generation)
            transition = previous is not None and previous[0] != available
            self._report(p, available, reason, message, event=transition or (previous is None and not available))

    def _report(self, p: Policy, available: bool, reason: str, message: str, event: bool) -> None:
        try:
            body = self.storage.get_policy(p.name)
            conditions = merge_conditions(
                list((body.get("status") or {}).get("conditions") or []),
                [condition("MetricsAvailable", "True" if available else "False", reason, message, p.generation)],
            )
            self.storage.patch_policy_status(p.name, {"conditions": conditions})
            if event:
                uid = str((body.get("metadata") or {}).get("uid", ""))
                self.events.metrics_availability(p.name, uid, available, message)
        except KubeError as exc:
            log.warning("Could not report MetricsAvailable on MinerPolicy %s: %s", p.name, exc)


SCRAPE_REREAD_S = 600.0
"""How long a scrape interval read from Prometheus' targets is kept."""


def _windows(policies: list[Policy]) -> dict[str, set[str]]:
    """The windows of each CPU signal kind over ``policies``."""
    windows: dict[str, set[str]] = {"podCpu": set(), "nodeCpu": set(), "nodeUnaccountedCpu": set()}
    for p in policies:
        if p.cpu is None:
            continue
        if p.cpu.pod:
            windows["podCpu"].add(p.cpu.pod.window)
        if p.cpu.node:
            windows["nodeCpu"].add(p.cpu.node.window)
        if p.cpu.unaccounted:
            windows["nodeUnaccountedCpu"].add(p.cpu.unaccounted.window)
    return windows


def _describe(exc: Exception) -> str:
    if isinstance(exc, MetricsError):
        return str(exc)  # already described by the client
    text = f"{type(exc).__name__}: {exc}"
    return text if len(text) <= 300 else text[:297] + "..."
