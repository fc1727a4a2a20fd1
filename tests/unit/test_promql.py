"""Unit tests for minerguard.domain.promql: the CPU queries and how their answers are read.

What these tests prove:

* durations parse as ``<n>s|m|h`` only, and the subquery step stays between 1 s and 30 s;
* every series is selected by the kubelet's ``job`` and ``metrics_path`` (configurable, each
  droppable), so a tenant's scraped endpoint exposing the same series name counts for nothing;
* every query builder uses the metric and label names configured in
  :class:`PrometheusSettings` (no hard-coded ``container_cpu_usage_seconds_total`` or
  ``pod`` when they are renamed), the rate window, and the signal window;
* "sustained" is a minimum over the window guarded by a coverage count of 90 % of the steps, and
  it is sized from the window (:func:`sizing_for`): the rate window is at most ``rate_window`` and
  half the window, at least 4 scrapes, and the minimum runs over the window less one rate window,
  so the rate windows read span exactly the signal window (no rate-window lag on top of it);
* the metric cycle is a quarter of the shortest window, between a scrape and ``interval``;
* the scrape interval is read from Prometheus' targets answer (the longest of the kubelet job's);
* :func:`queries_for` asks one query per (signal kind, distinct window), however many
  policies share a window: the number of queries is constant in the number of policies,
  pods and nodes;
* :func:`read_vector` reads good answers, skips NaN/Inf and series without the key labels,
  and raises :class:`BadAnswer` for anything that is not an instant vector of numbers.
"""

from __future__ import annotations

import math
from typing import Any

import pytest

from minerguard.config import PrometheusSettings
from minerguard.domain.promql import (
    BadAnswer,
    Query,
    duration,
    node_cpu_query,
    pod_cpu_query,
    queries_for,
    read_vector,
    seconds,
    series_matchers,
    sizing_for,
    step_for,
    unaccounted_query,
)

pytestmark = pytest.mark.unit

DEFAULT = PrometheusSettings()
CUSTOM = PrometheusSettings(
    container_cpu_metric="k_container_cpu_seconds",
    node_cpu_metric="k_node_cpu_seconds",
    namespace_label="kube_ns",
    pod_label="kube_pod",
    container_label="kube_ctr",
    node_label="instance_node",
    rate_window="2m",
    series_job="",
    container_metrics_path="",
    node_metrics_path="",
)


# --------------------------------------------------------------------------- durations


@pytest.mark.parametrize(
    ("text", "expected"),
    [("1s", 1), ("30s", 30), ("0s", 0), ("1m", 60), ("5m", 300), ("90m", 5400), ("1h", 3600), ("24h", 86400)],
)
def test_seconds(text: str, expected: int) -> None:
    assert seconds(text) == expected


@pytest.mark.parametrize("text", ["", "5", "m", "5d", "1.5m", "-5m", "5 m", " 5m", "5M", "5ms", "1h30m", "five m"])
def test_seconds_rejects_non_durations(text: str) -> None:
    with pytest.raises(ValueError, match="not a duration"):
        seconds(text)


@pytest.mark.parametrize(
    ("window", "expected"),
    [
        ("0s", 1),
        ("1s", 1),
        ("20s", 1),
        ("39s", 1),
        ("40s", 2),
        ("1m", 3),
        ("5m", 15),
        ("10m", 30),
        ("11m", 30),
        ("1h", 30),
        ("24h", 30),
    ],
)
def test_step_for(window: str, expected: int) -> None:
    assert step_for(window) == expected


@pytest.mark.parametrize("window", ["1s", "7s", "59s", "1m", "3m", "9m", "10m", "15m", "1h", "6h", "48h"])
def test_step_bounds_and_about_twenty_points(window: str) -> None:
    step = step_for(window)
    assert 1 <= step <= 30
    if 20 <= seconds(window) <= 600:
        assert seconds(window) // step >= 20


# --------------------------------------------------------------------------- builders


def test_pod_query_with_default_names() -> None:
    q = pod_cpu_query(DEFAULT, "5m", 15)
    assert q == Query("podCpu", "5m", q.promql, ("namespace", "pod"))
    assert 'rate(container_cpu_usage_seconds_total{job="kubelet",metrics_path="/metrics/cadvisor",' in q.promql
    assert 'container!=""' in q.promql and 'container!="POD"' in q.promql
    assert "sum by (namespace, pod)" in q.promql
    assert "on(namespace, pod)" in q.promql
    assert "[1m]" in q.promql  # the rate window
    assert "[267s:13s]" in q.promql  # the signal window less the rate window (plus 12 + 15 s), at its step
    assert q.promql.startswith("min_over_time(")
    assert ">= 18)" in q.promql  # 90 % of the 20 steps


def test_pod_query_honours_configured_names() -> None:
    q = pod_cpu_query(CUSTOM, "10m", 15)
    assert q.keys == ("kube_ns", "kube_pod")
    assert "k_container_cpu_seconds{" in q.promql
    assert 'kube_ctr!=""' in q.promql and 'kube_ctr!="POD"' in q.promql
    assert "sum by (kube_ns, kube_pod)" in q.promql
    assert "on(kube_ns, kube_pod)" in q.promql
    assert "[2m]" in q.promql and "[519s:25s]" in q.promql
    for default in ("container_cpu_usage_seconds_total", "(namespace", " pod)", "container!=", "[1m]"):
        assert default not in q.promql, default


def test_node_query_with_default_names() -> None:
    q = node_cpu_query(DEFAULT, "5m", 15)
    assert (q.signal, q.window, q.keys) == ("nodeCpu", "5m", ("node",))
    selected = 'node_cpu_usage_seconds_total{job="kubelet",metrics_path="/metrics/resource"}'
    assert f"sum by (node) (rate({selected}[1m]))" in q.promql
    assert "on(node)" in q.promql
    assert "[267s:13s]" in q.promql


def test_node_query_honours_configured_names() -> None:
    q = node_cpu_query(CUSTOM, "1h", 15)
    assert q.keys == ("instance_node",)
    assert "sum by (instance_node) (rate(k_node_cpu_seconds[2m]))" in q.promql
    assert "on(instance_node)" in q.promql
    assert "[3519s:30s]" in q.promql
    assert "node_cpu_usage_seconds_total" not in q.promql
    assert "(node)" not in q.promql


def test_unaccounted_query_with_default_names() -> None:
    q = unaccounted_query(DEFAULT, "5m", 15)
    assert (q.signal, q.window, q.keys) == ("nodeUnaccountedCpu", "5m", ("node",))
    node = 'sum by (node) (rate(node_cpu_usage_seconds_total{job="kubelet",metrics_path="/metrics/resource"}[1m]))'
    pods = (
        'sum by (node) (rate(container_cpu_usage_seconds_total{job="kubelet",metrics_path="/metrics/cadvisor",'
        'container!="",container!="POD"}[1m]))'
    )
    # Node usage minus pod usage; a node without pod series counts as all unaccounted.
    assert f"{node} - ({pods} or {node} * 0)" in q.promql
    assert "[267s:13s]" in q.promql


@pytest.mark.parametrize("builder", [pod_cpu_query, node_cpu_query, unaccounted_query])
def test_every_series_is_selected_by_the_configured_job_and_path(builder: Any) -> None:
    settings = PrometheusSettings(
        series_job="kube-prometheus-stack-kubelet", container_metrics_path="/c", node_metrics_path="/n"
    )
    q = builder(settings, "5m").promql
    # Every selector of a CPU series names the job; none is left bare for a forged series to join.
    for metric in ("container_cpu_usage_seconds_total", "node_cpu_usage_seconds_total"):
        for at in [i for i in range(len(q)) if q.startswith(metric, i)]:
            assert q[at + len(metric)] == "{", (metric, q)
            assert q[at + len(metric) + 1 :].startswith('job="kube-prometheus-stack-kubelet",metrics_path="/'), q
    assert "/c" in q or "/n" in q


def test_series_selector_values_are_quoted_and_droppable() -> None:
    hostile = PrometheusSettings(series_job='a"} or vector(1) #', container_metrics_path="")
    q = pod_cpu_query(hostile, "5m").promql
    assert 'job="a\\"} or vector(1) #"' in q and "metrics_path" not in q
    assert series_matchers(PrometheusSettings(series_job="", node_metrics_path=""), "") == []
    assert series_matchers(PrometheusSettings(), "/metrics/cadvisor") == [
        'job="kubelet"',
        'metrics_path="/metrics/cadvisor"',
    ]


def test_unaccounted_query_honours_configured_names() -> None:
    q = unaccounted_query(CUSTOM, "15m", 15)
    assert q.keys == ("instance_node",)
    assert "k_node_cpu_seconds[2m]" in q.promql
    assert 'k_container_cpu_seconds{kube_ctr!="",kube_ctr!="POD"}[2m]' in q.promql
    assert "sum by (instance_node)" in q.promql and "on(instance_node)" in q.promql
    assert "[819s:30s]" in q.promql
    for default in ("node_cpu_usage_seconds_total", "container_cpu_usage_seconds_total", "(node)", "container!="):
        assert default not in q.promql, default


@pytest.mark.parametrize("builder", [pod_cpu_query, node_cpu_query, unaccounted_query])
@pytest.mark.parametrize("window", ["30s", "2m", "5m", "1h"])
def test_every_query_is_sustained_over_its_window(builder: Any, window: str) -> None:
    q = builder(DEFAULT, window, 5)
    size = sizing_for(window, DEFAULT, 5)
    step = size.step_s
    needed = max(1, math.floor(size.span_s / step * 0.9))
    assert q.window == window
    # The minimum over the window less one rate window, only where the series covers (almost) all of it.
    assert size.rate_s + size.span_s == seconds(window) + math.ceil(0.2 * size.rate_s + 5)
    assert q.promql.startswith("min_over_time((")
    assert q.promql.count(f"[{duration(size.span_s)}:{step}s]") == 2
    assert "count_over_time((" in q.promql
    assert q.promql.endswith(f">= {needed})")
    # Parentheses and braces balance.
    assert q.promql.count("(") == q.promql.count(")")
    assert q.promql.count("{") == q.promql.count("}")
    assert q.promql.count("[") == q.promql.count("]")


def test_coverage_needs_ninety_percent_of_steps() -> None:
    assert pod_cpu_query(DEFAULT, "10m", 15).promql.endswith(">= 18)")  # 567 s / 28 s = 20 steps
    assert pod_cpu_query(DEFAULT, "1h", 15).promql.endswith(">= 107)")  # 3567 s / 30 s = 118 steps
    assert pod_cpu_query(DEFAULT, "2s", 0.25).promql.endswith(">= 1)")  # never below one


# --------------------------------------------------------------------------- queries_for


def test_queries_for_one_per_kind_and_distinct_window() -> None:
    windows = {
        "podCpu": ["5m", "5m", "10m", "5m"],
        "nodeCpu": ["5m"],
        "nodeUnaccountedCpu": ["1h", "1h"],
    }
    qs = queries_for(windows, DEFAULT)
    assert [(q.signal, q.window) for q in qs] == [
        ("podCpu", "10m"),
        ("podCpu", "5m"),
        ("nodeCpu", "5m"),
        ("nodeUnaccountedCpu", "1h"),
    ]


@pytest.mark.parametrize("policies", [1, 10, 1000])
def test_queries_for_is_constant_in_the_number_of_policies(policies: int) -> None:
    windows = {
        "podCpu": [("5m", "10m")[i % 2] for i in range(policies)],
        "nodeCpu": ["5m"] * policies,
        "nodeUnaccountedCpu": ["5m"] * policies,
    }
    qs = queries_for(windows, DEFAULT)
    # One or two pod windows, one node window, one unaccounted window: never one query per policy.
    assert len(qs) == min(policies, 2) + 2
    assert len({(q.signal, q.window) for q in qs}) == len(qs)


def test_queries_for_accepts_any_iterables_and_ignores_unknown_kinds() -> None:
    windows = {"podCpu": iter(["5m"]), "nodeCpu": ("1m", "1m"), "nodeUnaccountedCpu": set(), "gpu": ["5m"]}
    qs = queries_for(windows, DEFAULT)
    assert [(q.signal, q.window) for q in qs] == [("podCpu", "5m"), ("nodeCpu", "1m")]


def test_queries_for_nothing() -> None:
    assert queries_for({}, DEFAULT) == []


def test_queries_for_uses_the_settings() -> None:
    qs = queries_for({"podCpu": ["5m"], "nodeCpu": ["5m"], "nodeUnaccountedCpu": ["5m"]}, CUSTOM, 15)
    assert [q.keys for q in qs] == [("kube_ns", "kube_pod"), ("instance_node",), ("instance_node",)]
    assert all("[2m]" in q.promql for q in qs)
    assert qs == [
        pod_cpu_query(CUSTOM, "5m", 15),
        node_cpu_query(CUSTOM, "5m", 15),
        unaccounted_query(CUSTOM, "5m", 15),
    ]


def test_queries_are_deterministic() -> None:
    windows = {"podCpu": ["5m", "1m", "1h"], "nodeCpu": ["10m", "5m"]}
    assert queries_for(windows, DEFAULT) == queries_for(dict(reversed(list(windows.items()))), DEFAULT)


# --------------------------------------------------------------------------- read_vector


def series(value: Any, ts: float = 1700000000.0, **labels: str) -> dict[str, Any]:
    return {"metric": labels, "value": [ts, value]}


def test_read_vector_good_answer() -> None:
    answer = [
        series("0.5", namespace="a", pod="p1", container="x"),
        series("2", namespace="a", pod="p2"),
        series("1e-3", namespace="b", pod="p1"),
    ]
    assert read_vector(answer, ("namespace", "pod")) == {
        ("a", "p1"): 0.5,
        ("a", "p2"): 2.0,
        ("b", "p1"): 0.001,
    }


def test_read_vector_by_node_and_custom_labels() -> None:
    answer = [series("3.25", instance_node="n1"), series("0", instance_node="n2")]
    assert read_vector(answer, ("instance_node",)) == {("n1",): 3.25, ("n2",): 0.0}


def test_read_vector_accepts_numeric_values_and_tuples() -> None:
    answer = [{"metric": {"node": "n1"}, "value": (1.0, 4)}, {"metric": {"node": "n2"}, "value": [1.0, 1.5]}]
    assert read_vector(answer, ("node",)) == {("n1",): 4.0, ("n2",): 1.5}


def test_read_vector_empty() -> None:
    assert read_vector([], ("node",)) == {}


@pytest.mark.parametrize("bad", ["NaN", "nan", "+Inf", "-Inf", "inf", float("nan"), float("inf")])
def test_read_vector_skips_nan_and_inf(bad: Any) -> None:
    answer = [series(bad, node="n1"), series("1", node="n2")]
    assert read_vector(answer, ("node",)) == {("n2",): 1.0}


@pytest.mark.parametrize(
    "labels",
    [{}, {"namespace": "a"}, {"pod": "p"}, {"namespace": "", "pod": "p"}, {"namespace": "a", "pod": ""}],
)
def test_read_vector_skips_series_missing_key_labels(labels: dict[str, str]) -> None:
    answer = [series("1", **labels), series("2", namespace="a", pod="ok")]
    assert read_vector(answer, ("namespace", "pod")) == {("a", "ok"): 2.0}


@pytest.mark.parametrize(
    "answer",
    [None, {}, {"resultType": "vector", "result": []}, "[]", 3, ("tuple",)],
    ids=["none", "dict", "raw-api-object", "string", "number", "tuple"],
)
def test_read_vector_rejects_non_lists(answer: Any) -> None:
    with pytest.raises(BadAnswer, match="expected a vector"):
        read_vector(answer, ("node",))


@pytest.mark.parametrize(
    "item",
    [
        "n1",
        ["metric", "value"],
        None,
        {"metric": {"node": "n1"}},
        {"value": [1, "1"]},
        {"metric": None, "value": [1, "1"]},
        {"metric": ["node"], "value": [1, "1"]},
        {"metric": {"node": "n1"}, "value": None},
        {"metric": {"node": "n1"}, "value": [1]},
        {"metric": {"node": "n1"}, "value": [1, "1", "extra"]},
        {"metric": {"node": "n1"}, "value": 5},
        {"metric": {"node": "n1"}, "values": [[1, "1"]]},  # a range vector
    ],
)
def test_read_vector_rejects_malformed_items(item: Any) -> None:
    with pytest.raises(BadAnswer):
        read_vector([series("1", node="ok"), item], ("node",))


@pytest.mark.parametrize("value", ["abc", "", None, [1], {"v": 1}, "1,5"])
def test_read_vector_rejects_non_numeric_values(value: Any) -> None:
    with pytest.raises(BadAnswer, match="not a number"):
        read_vector([series(value, node="n1")], ("node",))


def test_bad_answer_is_a_value_error() -> None:
    assert issubclass(BadAnswer, ValueError)


def test_read_vector_rejects_a_string_value_pair() -> None:
    with pytest.raises(BadAnswer):
        read_vector([{"metric": {"node": "n1"}, "value": "12"}], ("node",))


def test_read_vector_label_values_are_strings() -> None:
    answer = [{"metric": {"node": 7}, "value": [0, "1"]}]
    assert read_vector(answer, ("node",)) == {("7",): 1.0}
