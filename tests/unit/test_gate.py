"""Unit tests for minerguard.services.gate.active_by_peering: kopf's peering rule, offline.

What these tests prove: a replica acts unless a *live* peer has a higher priority or
the same priority (then every replica pauses, as kopf does); peers with a lower
priority, dead peers (``lastseen + lifetime`` in the past), the replica's own entry
and malformed entries do not stop it. ``lastseen`` is read in the forms kopf writes
(naive UTC, ``+00:00`` and ``Z``).
"""

from __future__ import annotations

import datetime
from typing import Any

import pytest

from minerguard.services.gate import active_by_peering

pytestmark = pytest.mark.unit

NOW = datetime.datetime(2024, 5, 1, 12, 0, 0, tzinfo=datetime.UTC)
ME = "me@host-a"


def peer(priority: int = 0, age: float = 1.0, lifetime: int = 60, fmt: str = "offset") -> dict[str, Any]:
    """A peering entry last seen ``age`` seconds before NOW."""
    seen = NOW - datetime.timedelta(seconds=age)
    if fmt == "offset":
        lastseen = seen.isoformat()
    elif fmt == "z":
        lastseen = seen.replace(tzinfo=None).isoformat() + "Z"
    else:  # naive UTC, as older kopf versions write it
        lastseen = seen.replace(tzinfo=None).isoformat()
    return {"priority": priority, "lifetime": lifetime, "lastseen": lastseen}


def active(status: dict[str, Any], priority: int = 0) -> bool:
    return active_by_peering(status, ME, priority, NOW)


def test_alone_is_active() -> None:
    assert active({})
    assert active({ME: peer(0)})


def test_live_peer_with_higher_priority_makes_us_passive() -> None:
    assert not active({ME: peer(0), "other": peer(10)}, priority=0)
    assert not active({"other": peer(1)}, priority=0)


def test_live_peer_with_same_priority_makes_us_passive() -> None:
    assert not active({ME: peer(5), "other": peer(5)}, priority=5)
    assert not active({"other": peer(0)}, priority=0)


def test_live_peer_with_lower_priority_leaves_us_active() -> None:
    assert active({ME: peer(10), "other": peer(5), "third": peer(-1)}, priority=10)


def test_one_higher_peer_among_lower_ones_wins() -> None:
    status = {ME: peer(5), "low1": peer(1), "low2": peer(2), "high": peer(6)}
    assert not active(status, priority=5)


@pytest.mark.parametrize("fmt", ["offset", "z", "naive"])
def test_lastseen_formats(fmt: str) -> None:
    assert not active({"other": peer(10, fmt=fmt)})
    assert active({"other": peer(10, age=120, fmt=fmt)})


def test_dead_peers_are_ignored() -> None:
    assert active({"other": peer(10, age=61, lifetime=60)})
    assert active({"other": peer(10, age=60, lifetime=60)})  # exactly at the deadline: dead
    assert not active({"other": peer(10, age=59, lifetime=60)})


def test_lifetime_is_the_peers_own() -> None:
    assert not active({"other": peer(10, age=100, lifetime=300)})
    assert active({"other": peer(10, age=10, lifetime=5)})


def test_lifetime_defaults_to_sixty_seconds() -> None:
    entry = peer(10, age=30)
    del entry["lifetime"]
    assert not active({"other": entry})
    entry = peer(10, age=90)
    del entry["lifetime"]
    assert active({"other": entry})


def test_priority_defaults_to_zero() -> None:
    entry = peer(0)
    del entry["priority"]
    assert not active({"other": entry}, priority=0)
    assert active({"other": entry}, priority=1)


def test_lifetime_and_priority_as_strings() -> None:
    entry = {"priority": "10", "lifetime": "60", "lastseen": peer()["lastseen"]}
    assert not active({"other": entry}, priority=5)


def test_self_is_ignored_whatever_it_says() -> None:
    assert active({ME: peer(100)}, priority=0)
    assert active({ME: {"garbage": True}}, priority=0)


def test_future_lastseen_counts_as_live() -> None:
    assert not active({"other": peer(10, age=-30)})


@pytest.mark.parametrize(
    "entry",
    [
        None,
        "a string",
        42,
        ["priority", 10],
        {"priority": 10},  # no lastseen
        {"priority": 10, "lastseen": None, "lifetime": 60},
        {"priority": 10, "lastseen": "yesterday", "lifetime": 60},
        {"priority": 10, "lastseen": "", "lifetime": 60},
        {"priority": 10, "lastseen": peer()["lastseen"], "lifetime": "forever"},
        {"priority": 10, "lastseen": peer()["lastseen"], "lifetime": None},
    ],
    ids=[
        "none",
        "string",
        "number",
        "list",
        "no-lastseen",
        "null-lastseen",
        "bad-lastseen",
        "empty-lastseen",
        "bad-lifetime",
        "null-lifetime",
    ],
)
def test_malformed_entries_are_ignored(entry: Any) -> None:
    assert active({ME: peer(0), "broken": entry}, priority=0)
    # A malformed entry does not hide a real one.
    assert not active({ME: peer(0), "broken": entry, "real": peer(1)}, priority=0)


@pytest.mark.parametrize("priority", ["high", None, "1.5"])
def test_malformed_priority_is_ignored(priority: Any) -> None:
    entry = {"priority": priority, "lifetime": 60, "lastseen": peer()["lastseen"]}
    assert active({ME: peer(0), "broken": entry}, priority=0)
