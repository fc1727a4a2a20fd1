"""The operator's own Prometheus metrics (served on ``/metrics`` by the standard client library)."""

from __future__ import annotations

import platform
from collections.abc import Mapping
from typing import Any

from prometheus_client import Counter, Gauge, Histogram, Info

from minerguard.domain.incidents import OpenIncidents

DETECTIONS = Counter("minerguard_detections_total", "Workloads newly detected, by policy and mode.", ["policy", "mode"])
CONTAINMENTS = Counter(
    "minerguard_containment_actions_total",
    "Containment actions taken, by policy, action and result.",
    ["policy", "action", "result"],
)
SUPPRESSED = Counter(
    "minerguard_actions_suppressed_total", "Actions held back by a blast-radius guard.", ["policy", "action", "guard"]
)
POLICIES = Gauge("minerguard_policies", "MinerPolicies known to the operator, by state.", ["state"])
EVALUATION_SECONDS = Histogram(
    "minerguard_evaluation_seconds",
    "Time to evaluate one pod against every ready policy.",
    buckets=(0.0001, 0.0005, 0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1.0),
)
PROMQL_QUERIES = Counter("minerguard_promql_queries_total", "PromQL queries issued, by signal kind.", ["signal"])
PROMQL_ERRORS = Counter("minerguard_promql_errors_total", "PromQL queries that failed, by signal kind.", ["signal"])
API_ERRORS = Counter("minerguard_api_errors_total", "Kubernetes API calls that failed, by error class.", ["error"])
TAMPERING = Counter("minerguard_tampering_restored_total", "Containment restored after tampering.", ["kind"])
PROMQL_CYCLE_QUERIES = Gauge("minerguard_promql_cycle_queries", "PromQL queries issued by the last evaluation cycle.")
PROMQL_CYCLE_SECONDS = Histogram(
    "minerguard_promql_cycle_seconds",
    "Time all PromQL queries of one evaluation cycle took.",
    buckets=(0.005, 0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0),
)
API_CALLS = Counter(
    "minerguard_api_calls_total",
    "Kubernetes API calls made by the operator, by verb and resource.",
    ["verb", "resource"],
)
API_WRITES = Counter("minerguard_api_writes_total", "Kubernetes API write calls made by the operator.", ["kind"])
ENFORCEMENT_BACKEND = Gauge(
    "minerguard_enforcement_backend", "The quarantine backend decided at start (1 for the one in use).", ["backend"]
)
STOLEN_CPU = Counter(
    "minerguard_stolen_cpu_core_seconds",
    "CPU core-seconds burned by the pods of open MinerIncidents (the bill, status.cost), by namespace.",
    ["namespace"],
)
IMAGE_CONFIG_READS = Counter(
    "minerguard_image_config_reads_total",
    "Image configs read from registries (one per image digest and platform; cache hits are not reads), by result:"
    " Read, or why not (Unreachable, Refused, TooLarge, Invalid, NotFound, NotAllowed, Unavailable, RateLimited).",
    ["result"],
)
EVALUATIONS_SKIPPED = Counter(
    "minerguard_evaluations_skipped_total",
    "Pod events not evaluated because what detection reads of the pod (its detection-input digest) was unchanged.",
)
EVALUATIONS_DEFERRED = Counter(
    "minerguard_evaluations_deferred_total",
    "Pod evaluations taken off the watch's event loop to the fair evaluation backlog (large pods).",
)
BACKLOG_PODS = Gauge("minerguard_evaluation_backlog_pods", "Large pods waiting for their evaluation.")
BACKLOG_READS_AGAIN = Counter(
    "minerguard_evaluation_backlog_over_budget_total",
    "Large pods that waited without their body (the backlog's memory budget was full) and were read again.",
)
PODS_COMPACT = Gauge(
    "minerguard_pods_compact", "Unmatched pods cached as a compact view (their container text dropped, digest kept)."
)
PODS_WATCHED = Gauge("minerguard_pods_watched", "Pods in the operator's watch cache.")
WORK_QUEUE_DEPTH = Gauge("minerguard_work_queue_depth", "Work items queued, running or waiting for a retry.")
BUILD = Info("minerguard_build", "The running minerguard: its version and Python's (always 1).")
OPEN_INCIDENTS = Gauge(
    "minerguard_open_incidents",
    "MinerIncidents neither released nor ended, by state, as the acting replica sees them.",
    ["state"],
)
RUNTIME_EVENTS = Counter(
    "minerguard_runtime_events_total",
    "Falco events at the operator's endpoint, by outcome (accepted, stale, future, replayed, no pod, unknown pod).",
    ["outcome"],
)
RUNTIME_REQUESTS = Counter(
    "minerguard_runtime_requests_total",
    "Requests to the Falco endpoint, by HTTP status code.",
    ["code"],
)
_open = OpenIncidents()


def announce_build(version: str) -> None:
    BUILD.info({"version": version, "python": platform.python_version()})
    _publish_open()


def observe_incident(event_type: str | None, body: Mapping[str, Any]) -> None:
    """Count a MinerIncident watch event into minerguard_open_incidents."""
    _open.observe(event_type, body)
    _publish_open()


def _publish_open() -> None:
    for state, count in _open.counts().items():
        OPEN_INCIDENTS.labels(state).set(count)
