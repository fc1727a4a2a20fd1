"""kopf's settings as the operator sets them: what they rely on about the registered handlers."""

from __future__ import annotations

import kopf
import pytest

import minerguard.handlers  # noqa: F401 - registers the operator's handlers
from minerguard.config import Settings
from minerguard.runner import EventsOnlyDiffBase, kopf_settings

pytestmark = pytest.mark.unit


def test_the_operator_registers_event_handlers_only() -> None:
    """EventsOnlyDiffBase gives kopf no essence to find changes in: an on.create/update/field, daemon, timer,
    index or webhook handler would silently never see a change. Such a handler needs kopf's diff base back."""
    registry = kopf.get_default_registry()
    assert list(registry._watching.get_all_handlers()), "no event handler registered"
    for name in ("_changing", "_spawning", "_indexing", "_webhooks"):
        assert not list(getattr(registry, name).get_all_handlers()), f"a {name[1:]} handler is registered"


def test_kopf_builds_no_essence_and_keeps_no_body_long() -> None:
    settings = kopf_settings(Settings())
    storage = settings.persistence.diffbase_storage
    assert isinstance(storage, EventsOnlyDiffBase)
    body = kopf.Body({"metadata": {"name": "p", "annotations": {"x": "y" * 1000}}, "spec": {"a": 1}})
    assert storage.build(body=body) == {} and storage.fetch(body=body) is None
    assert settings.watching.chunk_size == 500  # the initial listing in pages, not one response
    assert settings.queueing.idle_timeout <= 1.0  # an idle per-object worker keeps its object's last body
