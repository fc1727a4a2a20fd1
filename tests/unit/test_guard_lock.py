"""Unit tests for the node-action lock every replica shares (minerguard.domain.guards).

What these tests prove: the lock is free when absent, unreadable, expired or held by the asker
itself, and taken otherwise; a lock dated absurdly far ahead (a clock gone wrong) is not honoured.
"""

from __future__ import annotations

import pytest

from minerguard.domain.guards import LOCK_SECONDS, lock_free_for, lock_value

pytestmark = pytest.mark.unit

NOW = 1_000_000.0


@pytest.mark.parametrize("value", [None, "", "garbage", "replica-a", "replica-a not-a-time"])
def test_absent_or_unreadable_is_free(value: str | None) -> None:
    assert lock_free_for(value, "replica-b", NOW)


def test_held_by_another_replica_until_it_expires() -> None:
    value = lock_value("replica-a", NOW + LOCK_SECONDS)
    assert not lock_free_for(value, "replica-b", NOW)
    assert not lock_free_for(value, "replica-b", NOW + LOCK_SECONDS - 0.01)
    assert lock_free_for(value, "replica-b", NOW + LOCK_SECONDS)


def test_the_holder_may_take_it_again() -> None:
    assert lock_free_for(lock_value("replica-a", NOW + 5), "replica-a", NOW)


def test_holder_names_with_spaces_round_trip() -> None:
    value = lock_value("pod a b", NOW + 5)
    assert not lock_free_for(value, "pod a", NOW) and lock_free_for(value, "pod a b", NOW)


def test_a_lock_far_in_the_future_is_not_honoured() -> None:
    assert lock_free_for(lock_value("replica-a", NOW + 100 * LOCK_SECONDS), "replica-b", NOW)
