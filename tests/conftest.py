"""Marks every test by its folder: tests/unit are ``unit``, tests/e2e are ``e2e``.

Tests marked ``realnode`` (they run pods on the real node ``real-0``, see hack/realnode.py) run
last, so that the node's first build (``hack/tools.sh real-node``, started in the background by
``make test``) overlaps the rest of the suite. On a machine that cannot run the node (not root,
or MINERGUARD_REAL_NODE=0) they are left out and the session says why.
"""

from __future__ import annotations

from pathlib import Path

import pytest

HERE = Path(__file__).parent
_left_out: list[str] = []


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        parts = Path(str(item.fspath)).relative_to(HERE).parts
        if parts and parts[0] in ("unit", "e2e"):
            item.add_marker(getattr(pytest.mark, parts[0]))
    real = [i for i in items if i.get_closest_marker("realnode")]
    if not real:
        return
    from tests.e2e.realnode import unavailable

    reason = unavailable()
    if reason:
        config.hook.pytest_deselected(items=real)
        _left_out.append(f"{len(real)} real-node tests left out: {reason} (the KWOK-only suite runs)")
        items[:] = [i for i in items if not i.get_closest_marker("realnode")]
        return
    items[:] = [i for i in items if not i.get_closest_marker("realnode")] + real


def pytest_report_collectionfinish(config: pytest.Config) -> list[str]:
    return list(_left_out)


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    for line in _left_out:
        terminalreporter.write_line(line, yellow=True)
