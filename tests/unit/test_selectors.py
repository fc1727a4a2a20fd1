"""Unit tests for minerguard.domain.selectors: Kubernetes label selector semantics and validation."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from minerguard.domain.selectors import LabelSelector, matches, parse

pytestmark = pytest.mark.unit

LABELS = {"app": "web", "tier": "front", "env": "prod"}


def expr(key: str, operator: str, *values: str) -> dict[str, Any]:
    out: dict[str, Any] = {"key": key, "operator": operator}
    if values:
        out["values"] = list(values)
    return out


def test_missing_selector_is_no_constraint() -> None:
    assert matches(None, LABELS) is True
    assert matches(None, {}) is True
    assert parse(None) is None


def test_empty_selector_selects_everything() -> None:
    assert matches({}, LABELS) is True
    assert matches({}, {}) is True
    parsed = parse({})
    assert parsed is not None and parsed.is_empty


@pytest.mark.parametrize(
    ("selector", "expected"),
    [
        ({"matchLabels": {"app": "web"}}, True),
        ({"matchLabels": {"app": "web", "tier": "front"}}, True),
        ({"matchLabels": {"app": "web", "tier": "back"}}, False),
        ({"matchLabels": {"missing": "x"}}, False),
        ({"matchLabels": {"app": ""}}, False),
        ({"matchExpressions": [expr("app", "In", "web", "api")]}, True),
        ({"matchExpressions": [expr("app", "In", "api")]}, False),
        ({"matchExpressions": [expr("missing", "In", "x")]}, False),
        ({"matchExpressions": [expr("app", "NotIn", "api")]}, True),
        ({"matchExpressions": [expr("app", "NotIn", "web")]}, False),
        ({"matchExpressions": [expr("missing", "NotIn", "x")]}, True),  # absent key satisfies NotIn
        ({"matchExpressions": [expr("app", "Exists")]}, True),
        ({"matchExpressions": [expr("missing", "Exists")]}, False),
        ({"matchExpressions": [expr("missing", "DoesNotExist")]}, True),
        ({"matchExpressions": [expr("app", "DoesNotExist")]}, False),
        ({"matchLabels": {"app": "web"}, "matchExpressions": [expr("env", "In", "dev")]}, False),  # AND
        ({"matchLabels": {"app": "web"}, "matchExpressions": [expr("env", "In", "prod")]}, True),
        ({"matchLabels": {}, "matchExpressions": []}, True),
        ({"matchExpressions": [expr("example.com/team", "Exists")]}, False),
    ],
)
def test_kubernetes_semantics(selector: dict[str, Any], expected: bool) -> None:
    parse(selector)
    assert matches(selector, LABELS) is expected


def test_prefixed_keys() -> None:
    selector = {"matchLabels": {"minerguard.io/approved-benchmark": "true"}}
    assert matches(selector, {"minerguard.io/approved-benchmark": "true"}) is True
    assert matches(selector, {"approved-benchmark": "true"}) is False


@pytest.mark.parametrize(
    ("selector", "message"),
    [
        ("app=web", "must be a mapping"),
        ({"matchLabel": {"app": "web"}}, "unknown field 'matchLabel'"),
        ({"matchLabels": ["app"]}, "matchLabels must be a mapping"),
        ({"matchLabels": {"app": 3}}, "label value must be a string"),
        ({"matchLabels": {"app": "has space"}}, "invalid label value"),
        ({"matchLabels": {"-bad": "x"}}, "invalid label key"),
        ({"matchLabels": {"Bad_Prefix/x": "y"}}, "invalid label key prefix"),
        ({"matchLabels": {"a" * 64: "x"}}, "invalid label key"),
        ({"matchExpressions": {"key": "app"}}, "matchExpressions must be a list"),
        ({"matchExpressions": ["app"]}, "must be a mapping"),
        ({"matchExpressions": [{"operator": "Exists"}]}, "label key must be a non-empty string"),
        ({"matchExpressions": [expr("app", "Equals", "web")]}, "unknown operator 'Equals'"),
        ({"matchExpressions": [expr("app", "in", "web")]}, "unknown operator 'in'"),
        ({"matchExpressions": [expr("app", "In")]}, "In needs at least one value"),
        ({"matchExpressions": [expr("app", "NotIn")]}, "NotIn needs at least one value"),
        ({"matchExpressions": [expr("app", "Exists", "web")]}, "Exists takes no values"),
        ({"matchExpressions": [expr("app", "DoesNotExist", "web")]}, "DoesNotExist takes no values"),
        ({"matchExpressions": [{"key": "app", "operator": "In", "values": "web"}]}, "values must be a list"),
        ({"matchExpressions": [{"key": "app", "operator": "Exists", "value": "x"}]}, "unknown field 'value'"),
    ],
)
def test_malformed_selectors_are_refused_with_a_clear_message(selector: Any, message: str) -> None:
    with pytest.raises(ValueError, match=message.replace("(", r"\(")):
        parse(selector, "spec.scope.podSelector")
    with pytest.raises(ValueError, match=r"spec\.scope\.podSelector"):
        parse(selector, "spec.scope.podSelector")
    with pytest.raises(ValueError):
        matches(selector, LABELS)


def test_the_error_names_the_expression() -> None:
    with pytest.raises(ValueError, match=r"sel\.matchExpressions\[1\]: unknown operator"):
        parse({"matchExpressions": [expr("a", "Exists"), expr("b", "Nope")]}, "sel")


def test_parsed_selector_is_immutable_and_hashable() -> None:
    parsed = parse({"matchLabels": {"app": "web"}})
    assert isinstance(parsed, LabelSelector)
    assert hash(parsed) == hash(parse({"matchLabels": {"app": "web"}}))
    assert parsed.matches({"app": "web"}) is True


label_values = st.sampled_from(["a", "b", "c"])
label_maps = st.dictionaries(st.sampled_from(["x", "y", "z"]), label_values, max_size=3)


@given(selector=label_maps, labels=label_maps)
def test_match_labels_is_a_subset_check(selector: dict[str, str], labels: dict[str, str]) -> None:
    expected = all(labels.get(key) == value for key, value in selector.items())
    assert matches({"matchLabels": selector}, labels) is expected


@given(values=st.sets(label_values, min_size=1), labels=label_maps)
def test_in_and_notin_are_complements(values: set[str], labels: dict[str, str]) -> None:
    in_ = matches({"matchExpressions": [expr("x", "In", *sorted(values))]}, labels)
    not_in = matches({"matchExpressions": [expr("x", "NotIn", *sorted(values))]}, labels)
    assert in_ is not not_in
