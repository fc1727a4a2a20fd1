"""Falco events in: the payload parser, with hostile payloads thrown at it (hypothesis, already a dev dependency).

Whatever the body, :func:`parse_event` returns an event or raises :class:`EventInvalid` whose
reason is one printable line; nothing else escapes it, so a malformed request is a 400 and
never reaches detection.
"""

from __future__ import annotations

import datetime
import json
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from minerguard.domain.falco import EventInvalid, FalcoEvent, parse_event, parse_time, priority_rank, staleness
from tests.falco_events import CMDLINE, STRATUM_RULE, STRATUM_TAGS, body, stratum_event

pytestmark = pytest.mark.unit

WHEN = datetime.datetime(2026, 12, 2, 5, 31, 2, 123456, tzinfo=datetime.UTC)


def test_falcosidekick_webhook_payload() -> None:
    raw = stratum_event("payments", "worker-6b7f", WHEN)
    event = parse_event(body(raw))
    assert event.rule == STRATUM_RULE and event.priority == "Critical" and event.tags == frozenset(STRATUM_TAGS)
    assert (event.namespace, event.pod, event.container_name, event.cmdline) == (
        "payments",
        "worker-6b7f",
        "app",
        CMDLINE,
    )
    assert event.container_id == "3ad7b26ded6d" and event.source == "syscall" and event.hostname == "node-1"
    assert event.time == pytest.approx(WHEN.timestamp(), abs=1e-6)
    assert event.key == f"uuid:{raw['uuid']}"


def test_falco_http_output_payload_has_no_uuid_and_is_keyed_by_its_content() -> None:
    raw = stratum_event("payments", "worker-6b7f", WHEN, sidekick=False)
    first, again = parse_event(body(raw)), parse_event(body(json.loads(json.dumps(raw))))
    assert first.uuid == "" and first.key.startswith("sha256:") and first.key == again.key
    raw["output"] += " "
    assert parse_event(body(raw)).key != first.key


def test_a_host_event_names_no_pod() -> None:
    raw = stratum_event("payments", "worker", WHEN)
    raw["output_fields"].update({"k8s.ns.name": None, "k8s.pod.name": "<NA>"})
    event = parse_event(body(raw))
    assert (event.namespace, event.pod) == ("", "")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2026-12-02T05:31:02.123456789Z", 1796189462.123456789),
        ("2026-12-02T05:31:02Z", 1796189462.0),
        ("2026-12-02T07:31:02.5+02:00", 1796189462.5),
        ("2026-12-02t05:31:02z", 1796189462.0),
    ],
)
def test_times(text: str, expected: float) -> None:
    assert parse_time(text) == pytest.approx(expected, abs=1e-6)


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"rule": None}, "rule must be a string, got null"),
        ({"rule": "  "}, "rule is empty"),
        ({"rule": ["x"]}, "rule must be a string, got a list"),
        ({"priority": "Urgent"}, "priority 'Urgent' is not one of Debug, Informational"),
        ({"time": "yesterday"}, "time 'yesterday' is not an RFC 3339 time"),
        ({"time": "2026-02-30T00:00:00Z"}, "time '2026-02-30T00:00:00Z': day is out of range"),
        ({"time": 1796189462}, "time must be a string, got a number"),
        ({"output_fields": []}, "output_fields must be an object, got a list"),
        ({"tags": "mitre_impact"}, "tags must be a list, got a string"),
        ({"tags": [1]}, "each tag must be a string, got a number"),
        ({"tags": ["t"] * 65}, "more than 64 tags"),
        ({"output": "x" * 20000}, "output is longer than 16384 characters"),
    ],
)
def test_malformed_events_have_one_line_reasons(change: dict[str, Any], reason: str) -> None:
    raw = stratum_event("payments", "worker", WHEN)
    raw.update(change)
    with pytest.raises(EventInvalid) as err:
        parse_event(body(raw))
    assert err.value.reason.startswith(reason), err.value.reason


@pytest.mark.parametrize(
    ("fields", "reason"),
    [
        ({"k8s.pod.name": "Worker_1"}, "output_fields[k8s.pod.name] 'Worker_1' is not a Kubernetes name"),
        ({"k8s.ns.name": "a" * 64}, "output_fields[k8s.ns.name]"),
        ({"k8s.ns.name": "../etc"}, "output_fields[k8s.ns.name] '../etc' is not a Kubernetes name"),
        ({"k8s.pod.name": None}, "output_fields has one of k8s.ns.name and k8s.pod.name without the other"),
        ({"proc.cmdline": {"a": 1}}, "output_fields[proc.cmdline] must be a string, got an object"),
    ],
)
def test_malformed_pod_references(fields: dict[str, Any], reason: str) -> None:
    with pytest.raises(EventInvalid) as err:
        parse_event(body(stratum_event("payments", "worker", WHEN, **fields)))
    assert err.value.reason.startswith(reason), err.value.reason


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        (b"", "not JSON: Expecting value at line 1, column 1"),
        (b"\xff\xfe", "not UTF-8 (byte 0)"),
        (b"[]", "the body must be a JSON object (one Falco event), got a list"),
        (b"[" * 100_000, "not JSON: nested too deeply"),
        (b'{"rule": "r", "priority": "Critical", "time": "2026-12-02T05:31:02Z", "output_fields": 1}', "output_fields"),
        (b"1" * 5000, "not JSON: Exceeds the limit"),
    ],
)
def test_bodies_that_are_not_events(raw: bytes, reason: str) -> None:
    with pytest.raises(EventInvalid) as err:
        parse_event(raw)
    assert err.value.reason.startswith(reason), err.value.reason


def test_priorities_are_read_as_falcosidekick_reads_them() -> None:
    assert (
        priority_rank("critical") > priority_rank("Warning") > priority_rank("info") == priority_rank("Informational")
    )
    assert priority_rank("") == priority_rank("bogus") == -1


def test_staleness() -> None:
    event = FalcoEvent(rule="r", priority="Critical", time=1000.0)
    assert staleness(event, now=1200.0, max_age=300) == ""
    assert staleness(event, now=1301.0, max_age=300) == "stale"
    assert staleness(event, now=939.0, max_age=300) == "future"
    assert staleness(event, now=950.0, max_age=300) == ""


# --------------------------------------------------------------------------- hostile payloads

JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=True) | st.text(max_size=50),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=20), inner, max_size=4),
    max_leaves=20,
)
KEYS = ("rule", "priority", "time", "output", "tags", "output_fields", "uuid", "source", "hostname")
FIELDS = ("k8s.ns.name", "k8s.pod.name", "k8s.pod.uid", "container.id", "container.name", "proc.cmdline")


def outcome(raw: bytes) -> FalcoEvent | None:
    try:
        return parse_event(raw)
    except EventInvalid as exc:
        assert exc.reason and "\n" not in exc.reason and exc.reason.isprintable() and len(exc.reason) <= 200
        return None


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=2000))
def test_any_bytes_are_an_event_or_one_line_reason(raw: bytes) -> None:
    outcome(raw)


@settings(max_examples=300, deadline=None)
@given(JSON)
def test_any_json_is_an_event_or_one_line_reason(value: Any) -> None:
    outcome(json.dumps(value).encode())


@settings(max_examples=400, deadline=None)
@given(st.sampled_from(KEYS), JSON, st.sampled_from(FIELDS), JSON)
def test_a_valid_event_with_any_field_replaced(key: str, value: Any, field: str, field_value: Any) -> None:
    raw = stratum_event("payments", "worker", WHEN)
    raw[key] = value
    if isinstance(raw.get("output_fields"), dict):
        raw["output_fields"][field] = field_value
    event = outcome(json.dumps(raw).encode())
    if event is not None:  # what is taken is well-formed
        assert event.rule.strip() and priority_rank(event.priority) >= 0
        assert bool(event.namespace) == bool(event.pod)


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=300), st.text(max_size=300))
def test_names_and_command_lines_of_any_text(pod: str, cmdline: str) -> None:
    raw = stratum_event("payments", "worker", WHEN)
    raw["output_fields"].update({"k8s.pod.name": pod, "proc.cmdline": cmdline})
    event = outcome(json.dumps(raw).encode())
    if event is not None and event.pod:
        assert len(event.pod) <= 253 and event.pod == event.pod.lower() and event.pod.isascii()
