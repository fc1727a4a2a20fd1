"""Marks every test by its folder: tests/unit are ``unit``, tests/e2e are ``e2e``."""

from __future__ import annotations

from pathlib import Path

import pytest

HERE = Path(__file__).parent


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        parts = Path(str(item.fspath)).relative_to(HERE).parts
        if parts and parts[0] in ("unit", "e2e"):
            item.add_marker(getattr(pytest.mark, parts[0]))
