"""Pure PromQL building and result reading for the CPU signals: no I/O.

One evaluation cycle asks Prometheus one query per (signal kind, window), whatever
the number of pods or nodes: each query returns a whole vector, by pod or by node.
"Sustained for the window" is the minimum of the usage over the window, and a
series only counts when it covers the window (so a pod younger than the window, or
a short spike, never qualifies).

Sized from the window (:func:`sizing_for`): the usage is a ``rate()`` over a rate window ``r`` (at
most ``rate_window`` and half the signal window, at least 4 scrape intervals), and the minimum is
taken over the last ``window - r`` (plus a fifth of ``r`` and a scrape, what a 90 % rate() on a
grid of samples lets slip), so the rate windows it reads together span the signal window: a pod
saturated from time t0 qualifies at about t0 + window, not t0 + window + r.
When 4 scrapes do not fit in half the window, the check is one instant ``rate()`` over
4 scrapes (the window cannot be resolved more finely than the data). The metric cycle is sized
from the shortest window too (:func:`cycle_interval`).

Every series is selected by ``job`` and ``metrics_path`` as well as by name (see
:func:`series_matchers`): the kubelet's scrape, not whatever other target happens to expose a
series of the same name (a tenant's pod can).
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
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
    return step_for_seconds(seconds(window))


def step_for_seconds(span: int) -> int:
    return max(1, min(30, span // 20))


def duration(secs: int) -> str:
    """A PromQL duration for whole seconds: 1h, 9m, 90s."""
    if secs > 0 and secs % 3600 == 0:
        return f"{secs // 3600}h"
    if secs > 0 and secs % 60 == 0:
        return f"{secs // 60}m"
    return f"{secs}s"


FALLBACK_SCRAPE_S = 30.0
"""The scrape interval assumed when neither the setting nor Prometheus tells it (a common kubelet scrape)."""
SCRAPES_PER_RATE = 4
"""rate() needs two samples; four per rate window tolerate a missed scrape and jitter."""


@dataclass(frozen=True)
class Sizing:
    """How a signal window is read: rate() over ``rate_s``, its minimum over the last ``span_s`` at ``step_s``."""

    rate_s: int
    span_s: int  # 0: a single instant rate() (the window is shorter than two sound rate windows)
    step_s: int


def sizing_for(window: str, s: PrometheusSettings, scrape_s: float) -> Sizing:
    """The rate window for a signal window (the longest allowed, at most half the window, at least 4 scrapes)
    and the span over which its minimum is taken: the window less one rate window (together they cover it),
    plus what a rate() at 90 % of its window and samples a scrape apart let slip (a fifth of the rate
    window and one scrape), so that a pod qualifies after about the window of saturation, not less."""
    w = seconds(window)
    floor = max(1, math.ceil(SCRAPES_PER_RATE * scrape_s))
    rate_s = max(floor, min(seconds(s.rate_window), w // 2))
    span = 0 if rate_s >= w else w - rate_s + math.ceil(0.2 * rate_s + scrape_s)
    return Sizing(rate_s, span, step_for_seconds(span))


def cycle_interval(windows: Iterable[str], s: PrometheusSettings, scrape_s: float) -> float:
    """Seconds between metric cycles: a quarter of the shortest window, at most ``s.interval``, and no shorter
    than a scrape (a faster cycle reads the same samples again) nor a second."""
    shortest = min((seconds(w) for w in windows), default=None)
    if shortest is None:
        return s.interval
    return min(s.interval, max(1.0, scrape_s, shortest / 4))


def scrape_interval(targets: Any, job: str) -> float | None:
    """The longest scrape interval of the active targets of ``job`` (any job if empty), from Prometheus'
    ``/api/v1/targets`` answer (``data``); None when it names none (an older Prometheus, or a proxy)."""
    if not isinstance(targets, Mapping) or not isinstance(targets.get("activeTargets"), list):
        return None
    found: list[float] = []
    for t in targets["activeTargets"]:
        if not isinstance(t, Mapping):
            continue
        labels = t.get("labels")
        if job and not (isinstance(labels, Mapping) and labels.get("job") == job):
            continue
        try:
            found.append(float(seconds(str(t.get("scrapeInterval", "")))))
        except ValueError:
            continue
    return max(found) if found else None


@dataclass(frozen=True)
class Query:
    """One PromQL query of the cycle and how to read its answer."""

    signal: str  # podCpu | nodeCpu | nodeUnaccountedCpu
    window: str
    promql: str
    keys: tuple[str, ...]  # the labels that identify a series: (namespace, pod) or (node,)


def _sustained(usage: Callable[[str], str], window: str, by: str, s: PrometheusSettings, scrape_s: float) -> str:
    """``usage(rate_window)`` at or above its minimum over the window, only where the series covers it."""
    size = sizing_for(window, s, scrape_s)
    expr = usage(duration(size.rate_s))
    if size.span_s == 0:
        return expr
    span, step = duration(size.span_s), size.step_s
    needed = max(1, math.floor(size.span_s / step * 0.9))
    return (
        f"min_over_time(({expr})[{span}:{step}s]) and on({by}) (count_over_time(({expr})[{span}:{step}s]) >= {needed})"
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


def pod_cpu_query(s: PrometheusSettings, window: str, scrape_s: float = FALLBACK_SCRAPE_S) -> Query:
    by = f"{s.namespace_label}, {s.pod_label}"

    def usage(rate: str) -> str:
        return f"sum by ({by}) (rate({_containers(s)}[{rate}]))"

    return Query("podCpu", window, _sustained(usage, window, by, s, scrape_s), (s.namespace_label, s.pod_label))


def node_cpu_query(s: PrometheusSettings, window: str, scrape_s: float = FALLBACK_SCRAPE_S) -> Query:
    def usage(rate: str) -> str:
        return f"sum by ({s.node_label}) (rate({_nodes(s)}[{rate}]))"

    return Query("nodeCpu", window, _sustained(usage, window, s.node_label, s, scrape_s), (s.node_label,))


def unaccounted_query(s: PrometheusSettings, window: str, scrape_s: float = FALLBACK_SCRAPE_S) -> Query:
    def usage(rate: str) -> str:
        node = f"sum by ({s.node_label}) (rate({_nodes(s)}[{rate}]))"
        pods = f"sum by ({s.node_label}) (rate({_containers(s)}[{rate}]))"
        return f"{node} - ({pods} or {node} * 0)"

    sustained = _sustained(usage, window, s.node_label, s, scrape_s)
    return Query("nodeUnaccountedCpu", window, sustained, (s.node_label,))


def queries_for(
    windows: Mapping[str, Iterable[str]], s: PrometheusSettings, scrape_s: float = FALLBACK_SCRAPE_S
) -> list[Query]:
    """The cycle's queries: one per (signal kind, distinct window) over all policies."""
    builders = {"podCpu": pod_cpu_query, "nodeCpu": node_cpu_query, "nodeUnaccountedCpu": unaccounted_query}
    out = []
    for signal in ("podCpu", "nodeCpu", "nodeUnaccountedCpu"):
        for window in sorted(set(windows.get(signal, ()))):
            out.append(builders[signal](s, window, scrape_s))
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
