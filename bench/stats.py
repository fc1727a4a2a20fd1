"""Percentiles and the plain-text table the benchmark prints."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any


def percentile(values: Sequence[float], q: float) -> float:
    """The q-th percentile (0..100), linear between closest ranks (numpy's default)."""
    if not values:
        return math.nan
    ordered = sorted(values)
    pos = (len(ordered) - 1) * q / 100
    lo, hi = math.floor(pos), math.ceil(pos)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (pos - lo)


def summary(values: Sequence[float], censored: Sequence[float] = ()) -> dict[str, Any]:
    """n, p50, p95, p99, max and mean in seconds.

    ``censored`` are the samples that never completed, each with how long it was watched:
    they rank above every completed sample. A percentile that falls among them is None,
    with ``<q>_above`` set to the shortest such watch (the figure is at least that).
    """
    out: dict[str, Any] = {"n": len(values), "not_completed": len(censored)}
    ranked = sorted(values) + [math.inf] * len(censored)
    bound = min(censored) if censored else None
    for name, q in (("p50", 50.0), ("p95", 95.0), ("p99", 99.0), ("max", 100.0)):
        if not ranked:
            out[name] = None
            continue
        pos = (len(ranked) - 1) * q / 100
        if ranked[math.ceil(pos)] == math.inf:
            out[name] = None
            out[f"{name}_above"] = bound
        else:
            out[name] = percentile(values, q) if not censored else _at(ranked, pos)
    out["mean"] = sum(values) / len(values) if values and not censored else None
    return out


def _at(ranked: Sequence[float], pos: float) -> float:
    lo, hi = math.floor(pos), math.ceil(pos)
    return ranked[lo] + (ranked[hi] - ranked[lo]) * (pos - lo)


def cell(entry: dict[str, Any], name: str) -> str:
    """A summary's figure for the table: '> 60.0 s' when it lies among samples that never completed."""
    if entry.get(name) is None and entry.get(f"{name}_above") is not None:
        return f"> {fmt_s(entry[f'{name}_above'])}"
    return fmt_s(entry.get(name))


def fmt_s(seconds: float | None) -> str:
    """Milliseconds below 10 s, seconds above; '-' for nothing."""
    if seconds is None or (isinstance(seconds, float) and math.isnan(seconds)):
        return "-"
    if seconds < 10:
        return f"{seconds * 1000:.0f} ms"
    return f"{seconds:.1f} s"


def ratio(ours: float | None, theirs: float | None) -> str:
    if not ours or not theirs:
        return "-"
    return f"{ours / theirs:.2f}"


def table(headers: Sequence[str], rows: Sequence[Sequence[Any]], indent: str = "  ") -> str:
    cells = [[str(h) for h in headers]] + [[str(c) for c in row] for row in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]
    lines = []
    for n, row in enumerate(cells):
        lines.append(
            indent
            + "  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(row, widths, strict=True)))
        )
        if n == 0:
            lines.append(indent + "  ".join("-" * w for w in widths))
    return "\n".join(lines)
