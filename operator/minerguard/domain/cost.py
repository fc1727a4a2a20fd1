"""The bill of an incident: CPU core-seconds its pods burned while it was open, and what that costs.

Every metric cycle the operator asks Prometheus once for the current CPU usage (cores) of the pods of
all open incidents; each incident's meter adds usage x the seconds since its last sample. A gap longer
than :data:`MAX_GAP_FACTOR` cycles (Prometheus down, the operator restarted) adds only that many cycles'
worth, so an outage never turns into an invented bill. The money is core-seconds / 3600 x the price of
a core-hour (:data:`DEFAULT_PRICE_PER_CORE_HOUR`, configurable).

Pure: the service runs the query and writes ``status.cost`` (:mod:`minerguard.services.canary`).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

NODE_MONTH_USD = 130.0
"""The article's figure: a node at full CPU costs about 130 USD a month (against about 20 at a normal 13% load)."""
HOURS_PER_MONTH = 730.0
NODE_CORES = 4
"""The node size the default assumes: a 4-vCPU general-purpose node."""
DEFAULT_PRICE_PER_CORE_HOUR = round(NODE_MONTH_USD / HOURS_PER_MONTH / NODE_CORES, 4)
"""130 USD / 730 h / 4 cores = 0.0445 USD per core-hour (chart value ``cost.pricePerCoreHour``)."""
DEFAULT_CURRENCY = "USD"
MAX_GAP_FACTOR = 3.0

GONE_STATES = ("Deleted", "Released")
"""Pod states in an incident whose pods no longer count."""


@dataclass(frozen=True)
class Meter:
    """One incident's running total: core-seconds and the time (epoch seconds) of the last sample."""

    core_seconds: float
    sampled: float

    def accrue(self, cores: float, now: float, interval: float) -> Meter:
        """The meter after a sample of ``cores`` at ``now``; the gap counts for at most a few cycles."""
        gap = max(0.0, now - self.sampled)
        if interval > 0:
            gap = min(gap, MAX_GAP_FACTOR * interval)
        return Meter(self.core_seconds + max(0.0, cores) * gap, now)


def counted_pods(incident: Mapping[str, Any]) -> list[str]:
    """Names of the incident's pods whose CPU counts (not deleted, not released)."""
    status = incident.get("status") or {}
    return [
        str(p.get("name"))
        for p in status.get("pods") or []
        if isinstance(p, Mapping) and p.get("name") and p.get("state") not in GONE_STATES
    ]


def usage_of(namespace: str, pods: Iterable[str], usage: Mapping[tuple[str, str], float]) -> float:
    """The cores the given pods of ``namespace`` use now, from the cycle's answer by (namespace, pod)."""
    return sum(usage.get((namespace, pod), 0.0) for pod in pods)


def money(core_seconds: float, price_per_core_hour: float) -> float:
    return core_seconds / 3600.0 * price_per_core_hour


def estimate(core_seconds: float, price_per_core_hour: float, currency: str) -> str:
    """The printer column's text: ``0.0123 USD``."""
    return f"{money(core_seconds, price_per_core_hour):.4f} {currency}"


def record(
    meter: Meter, price_per_core_hour: float, currency: str, since: str, sampled: str, cores: float
) -> dict[str, Any]:
    """The ``status.cost`` record."""
    return {
        "cpuCoreSeconds": round(meter.core_seconds, 1),
        "currentCores": round(max(0.0, cores), 3),
        "estimate": estimate(meter.core_seconds, price_per_core_hour, currency),
        "pricePerCoreHour": f"{price_per_core_hour:g}",
        "currency": currency,
        "since": since,
        "lastSampled": sampled,
    }


def worth_writing(old: Mapping[str, Any] | None, new: Mapping[str, Any], min_core_seconds: float = 1.0) -> bool:
    """Whether the record changed enough to write: a new estimate, a core-second more, or usage starting/stopping."""
    if not old:
        return True
    grown = float(new.get("cpuCoreSeconds") or 0) - float(old.get("cpuCoreSeconds") or 0)
    burning = (float(old.get("currentCores") or 0) > 0) != (float(new.get("currentCores") or 0) > 0)
    return burning or grown >= min_core_seconds or old.get("estimate") != new.get("estimate")
