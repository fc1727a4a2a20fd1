"""Structured logs (python-json-logger): one JSON object per line, time zone in the time, and the
object, policy and incident when a line is about them."""

from __future__ import annotations

import datetime
import json
import logging
import sys

import pytest

from minerguard.runner import JsonFormatter

pytestmark = pytest.mark.unit


def line(record: logging.LogRecord) -> dict[str, object]:
    out = json.loads(JsonFormatter().format(record))
    assert isinstance(out, dict)
    return out


def test_json_lines_carry_object_policy_and_incident() -> None:
    record = logging.LogRecord(
        "minerguard.services.containment", logging.WARNING, __file__, 1, "Quarantined %s", ("Pod shop/x",), None
    )
    record.object, record.policy, record.incident = "Pod shop/x", "mining-pools", "shop/pod-x"
    data = line(record)
    assert data["message"] == "Quarantined Pod shop/x"
    assert (data["object"], data["policy"], data["incident"]) == ("Pod shop/x", "mining-pools", "shop/pod-x")
    assert data["level"] == "WARNING" and data["logger"] == "minerguard.services.containment"


def test_lines_about_nothing_in_particular_have_no_empty_fields() -> None:
    record = logging.LogRecord("minerguard", logging.INFO, __file__, 1, "Starting", (), None)
    record.policy = ""
    assert set(line(record)) == {"time", "level", "logger", "message"}


def test_time_has_its_time_zone_and_is_the_records() -> None:
    record = logging.LogRecord("minerguard", logging.INFO, __file__, 1, "x", (), None)
    record.created = 1_796_180_400.25  # 2026-12-02T03:00:00.250Z
    when = datetime.datetime.fromisoformat(str(line(record)["time"]))
    assert when.tzinfo is not None and when.utcoffset() is not None
    assert when == datetime.datetime(2026, 12, 2, 3, 0, 0, 250000, tzinfo=datetime.UTC)


def test_exceptions_and_odd_values_stay_one_json_line() -> None:
    try:
        raise ValueError("bad \x1b[31m value")
    except ValueError:
        exc_info = sys.exc_info()
    record = logging.LogRecord("minerguard", logging.ERROR, __file__, 1, "failed: %s", ("x\ny",), exc_info)
    record.owner = object()  # not JSON: written as its str, not a crash
    text = JsonFormatter().format(record)
    assert "\n" not in text
    data = json.loads(text)
    assert "ValueError: bad" in str(data["exception"]) and data["message"] == "failed: x\ny"
    assert str(data["owner"]).startswith("<object object")
