"""Structured logs: one JSON object per line, with the object, policy and incident when a line is about them."""

from __future__ import annotations

import json
import logging

import pytest

from minerguard.runner import JsonFormatter

pytestmark = pytest.mark.unit


def test_json_lines_carry_object_policy_and_incident() -> None:
    record = logging.LogRecord(
        "minerguard.services.containment", logging.WARNING, __file__, 1, "Quarantined %s", ("Pod shop/x",), None
    )
    record.object, record.policy, record.incident = "Pod shop/x", "mining-pools", "shop/pod-x"
    line = json.loads(JsonFormatter().format(record))
    assert line["message"] == "Quarantined Pod shop/x"
    assert (line["object"], line["policy"], line["incident"]) == ("Pod shop/x", "mining-pools", "shop/pod-x")
    assert line["level"] == "WARNING" and line["logger"] == "minerguard.services.containment"


def test_lines_about_nothing_in_particular_have_no_empty_fields() -> None:
    record = logging.LogRecord("minerguard", logging.INFO, __file__, 1, "Starting", (), None)
    assert set(json.loads(JsonFormatter().format(record))) == {"time", "level", "logger", "message"}
