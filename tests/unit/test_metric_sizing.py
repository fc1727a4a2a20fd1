"""Unit tests for how the CPU signals are sized from the policies' windows (issue #16, item 4).

Metric detection took ~3.9x the policy's window: the usage was a ``rate()`` over a fixed 1 minute,
which passes a 90 % threshold only ~54 s after a pod saturates, "sustained" then needed that rate
above the threshold for the whole window, and the cycle ran every 30 s whatever the window.

What these tests prove:

* the rate window is at most ``rate_window`` and half the signal window, and at least 4 scrapes;
* when 4 scrapes do not fit in the window the check is one instant rate() over 4 scrapes;
* the minimum runs over the window less one rate window, plus what a rate() at 90 % on a grid of
  samples lets slip (a fifth of the rate window and a scrape);
* replaying the query's arithmetic over a simulated counter, a pod saturated from t0 qualifies
  no later than t0 + window + one scrape, and a pod saturated for less than 94 % of the window
  never does (the old sizing needed ~2.8 windows: a 1 minute rate() before a 30 s minimum);
* the metric cycle is a quarter of the shortest window, no shorter than a scrape or 1 s, no
  longer than ``interval``: the cycle adds at most window / 4 (<= 30 s);
* the scrape interval is read from Prometheus' targets answer: the longest of the job's targets;
* the engine asks Prometheus for it once per 10 minutes, keeps the last good answer, and uses the
  setting instead when there is one; each cycle still asks one query per (signal kind, window).
"""

from __future__ import annotations

import math
from typing import Any

import pytest

from minerguard.config import PrometheusSettings, Settings
from minerguard.domain.promql import (
    FALLBACK_SCRAPE_S,
    Sizing,
    cycle_interval,
    duration,
    pod_cpu_query,
    scrape_interval,
    seconds,
    sizing_for,
)

pytestmark = pytest.mark.unit

DEFAULT = PrometheusSettings()


@pytest.mark.parametrize(
    ("secs", "text"), [(1, "1s"), (20, "20s"), (60, "1m"), (90, "90s"), (540, "9m"), (3600, "1h"), (0, "0s")]
)
def test_duration(secs: int, text: str) -> None:
    assert duration(secs) == text
    assert seconds(text) == secs


@pytest.mark.parametrize(
    ("window", "scrape", "expected"),
    [
        ("30s", 5, Sizing(rate_s=20, span_s=19, step_s=1)),  # the benchmark: 4 scrapes > half the window
        ("20s", 2, Sizing(rate_s=10, span_s=14, step_s=1)),  # the e2e tests
        ("10m", 15, Sizing(rate_s=60, span_s=567, step_s=28)),  # the pack on a 15 s scrape: rate_window caps it
        ("10m", 30, Sizing(rate_s=120, span_s=534, step_s=26)),  # a 30 s scrape needs 2 minutes for 4 samples
        ("2m", 5, Sizing(rate_s=60, span_s=77, step_s=3)),  # half the window
        ("30s", 30, Sizing(rate_s=120, span_s=0, step_s=1)),  # 4 scrapes do not fit: one instant rate()
    ],
)
def test_sizing_for(window: str, scrape: float, expected: Sizing) -> None:
    assert sizing_for(window, DEFAULT, scrape) == expected


@pytest.mark.parametrize("window", ["10s", "20s", "30s", "45s", "1m", "2m", "5m", "10m", "15m", "1h"])
@pytest.mark.parametrize("scrape", [1, 2, 5, 10, 15, 30, 60])
@pytest.mark.parametrize("rate_window", ["30s", "1m", "2m", "5m"])
def test_rate_windows_read_span_exactly_the_window(window: str, scrape: float, rate_window: str) -> None:
    s = PrometheusSettings(rate_window=rate_window)
    size = sizing_for(window, s, scrape)
    w = seconds(window)
    assert size.rate_s >= 4 * scrape  # a sound rate(): at least 4 samples
    if 2 * 4 * scrape <= w:
        assert size.rate_s <= w // 2 and size.rate_s <= max(seconds(rate_window), 4 * scrape)
        # The window, plus only what a 90 % rate() on a grid of samples lets slip: no rate-window lag on top.
        assert size.rate_s + size.span_s == w + math.ceil(0.2 * size.rate_s + scrape)
    elif size.rate_s >= w:
        assert size.span_s == 0
    assert 1 <= size.step_s <= 30


def test_a_short_window_on_a_slow_scrape_is_one_instant_rate() -> None:
    q = pod_cpu_query(DEFAULT, "30s", 30).promql
    assert q.startswith("sum by (namespace, pod) (rate(") and q.endswith("[2m]))")
    assert "min_over_time" not in q and "count_over_time" not in q


# --------------------------------------------------------------------------- the query's arithmetic, replayed


def _counter(t: float, onset: float, until: float, usage: float) -> float:
    """CPU seconds used by time t: ``usage`` cores between onset and until, idle otherwise."""
    return usage * max(0.0, min(t, until) - onset)


def _rate(t: float, r: int, scrape: float, onset: float, until: float) -> float | None:
    """Prometheus' rate() at t over [t - r, t] from samples every ``scrape`` s (no extrapolation: a lower bound)."""
    times = [k * scrape for k in range(math.ceil((t - r) / scrape), math.floor(t / scrape) + 1) if k * scrape > t - r]
    if len(times) < 2:
        return None
    first, last = times[0], times[-1]
    return (_counter(last, onset, until, 1.0) - _counter(first, onset, until, 1.0)) / (last - first)


def _qualifies(t: float, size: Sizing, scrape: float, onset: float, until: float, threshold: float) -> bool:
    points = [t - k * size.step_s for k in range(size.span_s // size.step_s)] if size.span_s else [t]
    rates = [_rate(p, size.rate_s, scrape, onset, until) for p in points]
    return all(r is not None and r >= threshold for r in rates)


@pytest.mark.parametrize(("window", "scrape"), [("30s", 5), ("20s", 2), ("2m", 5), ("10m", 15), ("10m", 30)])
def test_a_saturated_pod_qualifies_within_the_window_and_one_scrape(window: str, scrape: float) -> None:
    size = sizing_for(window, DEFAULT, scrape)
    onset = 1000.0
    first = next(
        t for t in range(int(onset), int(onset) + 3 * seconds(window)) if _qualifies(t, size, scrape, onset, 1e9, 0.9)
    )
    assert first - onset <= seconds(window) + scrape, (first - onset, size)
    assert first - onset >= 0.8 * seconds(window), (first - onset, size)  # still sustained: not a spike


@pytest.mark.parametrize(("window", "scrape"), [("30s", 5), ("20s", 2), ("2m", 5), ("10m", 15), ("10m", 30)])
def test_saturation_shorter_than_the_window_never_qualifies(window: str, scrape: float) -> None:
    size = sizing_for(window, DEFAULT, scrape)
    onset, w = 1000.0, seconds(window)
    until = onset + 0.94 * w - 1
    assert not any(_qualifies(t, size, scrape, onset, until, 0.9) for t in range(int(onset), int(onset) + 3 * w))


# --------------------------------------------------------------------------- the cycle


@pytest.mark.parametrize(
    ("windows", "scrape", "interval", "expected"),
    [
        (["30s"], 5, 30, 7.5),  # the benchmark: a quarter of the window
        (["20s"], 2, 2, 2),  # the e2e tests: their 2 s setting caps it
        (["10m", "5m"], 15, 30, 30),  # the pack: the 30 s default caps it
        (["30s"], 15, 30, 15),  # never faster than a scrape
        (["2s"], 0.5, 30, 1),  # nor than a second
        ([], 5, 30, 30),  # no metric policy: the longest
    ],
)
def test_cycle_interval(windows: list[str], scrape: float, interval: float, expected: float) -> None:
    assert cycle_interval(windows, PrometheusSettings(interval=interval), scrape) == expected


def test_the_default_cycle_adds_at_most_a_quarter_of_the_window_and_30s() -> None:
    for window in ("30s", "1m", "2m", "5m", "10m", "1h"):
        assert cycle_interval([window], DEFAULT, 5) <= min(30, seconds(window) / 4)


# --------------------------------------------------------------------------- the scrape interval


def target(job: str, interval: str) -> dict[str, Any]:
    return {"labels": {"job": job}, "scrapeInterval": interval, "health": "up"}


def test_scrape_interval_is_the_longest_of_the_jobs_targets() -> None:
    data = {"activeTargets": [target("kubelet", "5s"), target("kubelet", "10s"), target("tenant", "1h")]}
    assert scrape_interval(data, "kubelet") == 10.0
    assert scrape_interval(data, "") == 3600.0  # no job selector: every target


@pytest.mark.parametrize(
    "data",
    [
        None,
        [],
        {},
        {"activeTargets": None},
        {"activeTargets": [target("other", "5s")]},
        {"activeTargets": [{"labels": {"job": "kubelet"}}]},  # an older Prometheus: no scrapeInterval
        {"activeTargets": [target("kubelet", "5 seconds"), "junk", {"labels": None}]},
    ],
)
def test_scrape_interval_unknown(data: Any) -> None:
    assert scrape_interval(data, "kubelet") is None


def test_scrape_interval_setting_is_validated() -> None:
    assert Settings.from_env({"MINERGUARD_PROMETHEUS_SCRAPE_INTERVAL": "15s"}).prometheus.scrape_interval == "15s"
    assert Settings.from_env({}).prometheus.scrape_interval == ""
    assert Settings.from_env({"MINERGUARD_RATE_WINDOW": " "}).prometheus.rate_window == "1m"
    for bad in ("15", "0s", "1.5m", "15 s"):
        with pytest.raises(ValueError, match="not a duration"):
            Settings.from_env({"MINERGUARD_PROMETHEUS_SCRAPE_INTERVAL": bad})
    assert FALLBACK_SCRAPE_S == 30.0


# --------------------------------------------------------------------------- the engine, over FakeStorage


class FakePrometheus:
    def __init__(self, targets: Any) -> None:
        self.queries: list[str] = []
        self.target_reads = 0
        self._targets = targets

    def query(self, promql: str) -> Any:
        self.queries.append(promql)
        return []

    def targets(self) -> Any:
        self.target_reads += 1
        if isinstance(self._targets, Exception):
            raise self._targets
        return self._targets


def engine(settings: PrometheusSettings, prom: FakePrometheus, window: str = "30s") -> Any:
    from minerguard.services.events import Events
    from minerguard.services.metrics import MetricsEngine
    from minerguard.services.policies import PolicyRegistry
    from minerguard.services.state import ClusterState
    from tests.unit.test_containment_service import FakeStorage, policy_body

    storage = FakeStorage()
    body = policy_body()
    body["spec"]["signals"] = {"cpu": {"pod": {"threshold": 0.9, "window": window, "strength": "Strong"}}}
    storage.put("MinerPolicy", body)
    events = Events(storage)  # type: ignore[arg-type]
    policies = PolicyRegistry(storage, events)  # type: ignore[arg-type]
    policies.observe(storage.objects[("MinerPolicy", "", "miners")])
    e = MetricsEngine(settings, ClusterState(), policies, storage, events, lambda _: None, lambda *_: None)  # type: ignore[arg-type]
    e.client = prom
    return e


def test_the_engine_sizes_its_query_and_cycle_from_the_window_and_prometheus_scrape_interval() -> None:
    prom = FakePrometheus({"activeTargets": [target("kubelet", "5s"), target("tenant-pods", "1m")]})
    e = engine(PrometheusSettings(url="http://prometheus.invalid"), prom)
    assert e.next_interval() == 7.5  # a quarter of the 30 s window
    for _ in range(3):
        e.cycle()
    assert len(prom.queries) == 3  # one query per cycle (one signal kind, one window)
    assert "[20s]" in prom.queries[0] and "[19s:1s]" in prom.queries[0]  # 4 scrapes; the window's rest
    assert prom.target_reads == 1  # read once, kept 10 minutes


def test_the_engine_uses_the_setting_or_assumes_30s_when_prometheus_does_not_say() -> None:
    prom = FakePrometheus({"activeTargets": []})
    e = engine(PrometheusSettings(url="http://prometheus.invalid", scrape_interval="2s"), prom, window="20s")
    e.cycle()
    assert prom.target_reads == 0 and "[10s]" in prom.queries[0] and e.next_interval() == 5
    from minerguard.errors import MetricsError

    prom = FakePrometheus(MetricsError("404 Not Found"))  # a proxy without the targets API
    e = engine(PrometheusSettings(url="http://prometheus.invalid"), prom)
    e.cycle()
    assert prom.target_reads == 1 and e.scrape_interval() == FALLBACK_SCRAPE_S
    assert prom.queries[0].endswith("[2m]))") and "min_over_time" not in prom.queries[0]  # 4 scrapes > the window
