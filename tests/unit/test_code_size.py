"""House rules on the operator's code: no module over 500 lines, no function over 60, unless a comment says why.

A longer module or function is allowed only with a line ``# size: <why>`` in it (for a function: in its
body), so that every exception is a decision someone wrote down.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

pytestmark = pytest.mark.unit

PACKAGE = Path(__file__).resolve().parents[2] / "operator" / "minerguard"
MAX_MODULE_LINES = 500
MAX_FUNCTION_LINES = 60


def explained(lines: list[str]) -> bool:
    return any(line.strip().startswith("# size:") for line in lines)


def test_no_module_over_500_lines_without_a_reason() -> None:
    long = []
    for path in sorted(PACKAGE.rglob("*.py")):
        lines = path.read_text(encoding="utf-8").splitlines()
        if len(lines) > MAX_MODULE_LINES and not explained(lines):
            long.append(f"{path.relative_to(PACKAGE)}: {len(lines)} lines")
    assert not long, f"split these modules (or say why with '# size: ...'): {long}"


def test_no_function_over_60_lines_without_a_reason() -> None:
    long = []
    for path in sorted(PACKAGE.rglob("*.py")):
        source = path.read_text(encoding="utf-8")
        lines = source.splitlines()
        for node in ast.walk(ast.parse(source)):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                end = node.end_lineno or node.lineno
                body = lines[node.lineno - 1 : end]
                if end - node.lineno + 1 > MAX_FUNCTION_LINES and not explained(body):
                    long.append(f"{path.relative_to(PACKAGE)}:{node.lineno} {node.name}: {end - node.lineno + 1} lines")
    assert not long, f"split these functions (or say why with '# size: ...'): {long}"
