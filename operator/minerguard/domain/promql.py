"""Pure PromQL building and result reading for the CPU signals: no I/O.

One evaluation cycle asks Prometheus one query per (signal kind, window), whatever
the number of pods or nodes: each query returns a whole vector, by pod or by node.
"Sustained for the window" is the minimum of the usage over the window, and a
series only counts when it covers the window (so a pod younger than the window, or
a short spike, never qualifies).

Every series is selected by ``job`` and ``metrics_path`` as well as by name (see
:func:`series_matchers`): the kubelet's scrape, not whatever other target happens to expose a
series of the same name (a tenant's pod can).
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from minerguard.config import PrometheusSettings

_DURATION = re.compile(r"^([0-9]+)(s|m|h)\Z")
_UNITS = {"s": 1, "m": 60, "h": 3600}


def seconds(duration: str) -> int:
    m = _DURATION.match(duration)
    if not m:
        raise ValueError(f"not a duration: {duration!r}")
    return int(m.group(1)) * _UNITS[m.group(2)]


def step_for(window: str) -> int:
    """The subquery resolution: about 20 points per window, between 1s and 30s."""
    return max(1, min(30, seconds(window) // 20))


@dataclass(frozen=True)
class Query:
    """One PromQL query of the cycle and how to read its answer."""

    signal: str  # podCpu | nodeCpu | nodeUnaccountedCpu
    window: str
    promql: str
    keys: tuple[str, ...]  # the labels that identify a series: (namespace, pod) or (node,)


def _sustained(expr: str, window: str, by: str) -> str:
    step = step_for(window)
    needed = max(1, math.floor(seconds(window) / step * 0.9))
    return (
        f"min_over_time(({expr})[{window}:{step}s]) "
        f"and on({by}) (count_over_time(({expr})[{window}:{step}s]) >= {needed})"
    )


def _quoted(value: str) -> str:
    """A PromQL string literal."""
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'


def series_matchers(s: PrometheusSettings, metrics_path: str) -> list[str]:
    """The label matchers that keep only the kubelet's series: job and metrics_path (an empty setting drops one)."""
    out = []
    if s.series_job:
        out.append(f"job={_quoted(s.series_job)}")
    if metrics_path:
        out.append(f"metrics_path={_quoted(metrics_path)}")
    return out


def _containers(s: PrometheusSettings) -> str:
    """container_cpu_usage_seconds_total of real containers (not the pod sandbox), from the kubelet only."""
    matchers = [f'{s.container_label}!=""', f'{s.container_label}!="POD"']
    return f"{s.container_cpu_metric}{{{','.join(series_matchers(s, s.container_metrics_path) + matchers)}}}"


def _nodes(s: PrometheusSettings) -> str:
    matchers = series_matchers(s, s.node_metrics_path)
    return f"{s.node_cpu_metric}{{{','.join(matchers)}}}" if matchers else s.node_cpu_metric


def pod_cpu_query(s: PrometheusSettings, window: str) -> Query:
    by = f"{s.namespace_label}, {s.pod_label}"
    usage = f"sum by ({by}) (rate({_containers(s)}[{s.rate_window}]))"
    return Query("podCpu", window, _sustained(usage, window, by), (s.namespace_label, s.pod_label))


def node_cpu_query(s: PrometheusSettings, window: str) -> Query:
    usage = f"sum by ({s.node_label}) (rate({_nodes(s)}[{s.rate_window}]))"
    return Query("nodeCpu", window, _sustained(usage, window, s.node_label), (s.node_label,))


def unaccounted_query(s: PrometheusSettings, window: str) -> Query:
    node = f"sum by ({s.node_label}) (rate({_nodes(s)}[{s.rate_window}]))"
    pods = f"sum by ({s.node_label}) (rate({_containers(s)}[{s.rate_window}]))"
    usage = f"{node} - ({pods} or {node} * 0)"
    return Query("nodeUnaccountedCpu", window, _sustained(usage, window, s.node_label), (s.node_label,))


def queries_for(windows: Mapping[str, Iterable[str]], s: PrometheusSettings) -> list[Query]:
    """The cycle's queries: one per (signal kind, distinct window) over all policies."""
    builders = {"podCpu": pod_cpu_query, "nodeCpu": node_cpu_query, "nodeUnaccountedCpu": unaccounted_query}
    out = []
    for signal in ("podCpu", "nodeCpu", "nodeUnaccountedCpu"):
        for window in sorted(set(windows.get(signal, ()))):
            out.append(builders[signal](s, window))
    return out


class BadAnswer(ValueError):
    """Prometheus answered something that is not an instant vector of numbers."""


def read_vector(answer: Any, keys: Sequence[str]) -> dict[tuple[str, ...], float]:
    """{(label values...): value} from a prometheus-api-client ``custom_query`` answer."""
    if not isinstance(answer, list):
        raise BadAnswer(f"expected a vector, got {type(answer).__name__}")
    out: dict[tuple[str, ...], float] = {}
    for item in answer:
        if not isinstance(item, Mapping):
            raise BadAnswer("vector item is not an object")
        metric = item.get("metric")
        value = item.get("value")
        if not isinstance(metric, Mapping) or not isinstance(value, (list, tuple)) or len(value) != 2:
            raise BadAnswer("vector item lacks metric or value")
        try:
            number = float(value[1])
        except (TypeError, ValueError) as exc:
            raise BadAnswer(f"not a number: {value[1]!r}") from exc
        if math.isnan(number) or math.isinf(number):
            continue
        key = tuple(str(metric.get(k, "")) for k in keys)
        if all(key):
            out[key] = number
    return out


def pod_usage_query(s: PrometheusSettings, namespaces: Iterable[str]) -> Query:
    """The cores each pod of ``namespaces`` uses now (the rate over the rate window), in one query for the
    bill of every open incident (:mod:`minerguard.domain.cost`)."""
    names = sorted({n for n in namespaces if n})
    pattern = "|".join(re.escape(n) for n in names)
    matchers = [
        *series_matchers(s, s.container_metrics_path),
        f'{s.container_label}!=""',
        f'{s.container_label}!="POD"',
    ]
    matchers.append(f"{s.namespace_label}=~{_quoted(pattern)}")
    usage = f"sum by ({s.namespace_label}, {s.pod_label}) (rate({s.container_cpu_metric}{{{','.join(matchers)}}}"
    return Query("podUsage", s.rate_window, f"{usage}[{s.rate_window}]))", (s.namespace_label, s.pod_label))
