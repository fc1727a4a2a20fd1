"""The ``runtime`` findings of a policy: the Falco events of a pod that its ``signals.runtime`` counts.

The evidence of each keeps the rule, the priority, the output line (without Falco's time and
priority prefix) and the process command line, made printable and shortened like every
finding (:class:`~minerguard.domain.detection.evidence.Evidence`). The caller keeps the events
of each pod (:mod:`minerguard.services.runtime`) and passes them with the CPU findings.
"""

from __future__ import annotations

from collections.abc import Iterable

from minerguard.domain.detection.evidence import Evidence
from minerguard.domain.falco import FalcoEvent
from minerguard.domain.runtime import RUNTIME, RuntimeSignals

MAX_RUNTIME_FINDINGS = 5
"""Runtime findings kept per policy and pod (the first distinct rule and command lines)."""


def _message(event: FalcoEvent) -> str:
    """The output line without Falco's ``<time>: <Priority> `` prefix (both are in the evidence already)."""
    output = event.output.strip()
    head, sep, rest = output.partition(f": {event.priority} ")
    return rest if sep and len(head) <= 40 else output


def runtime_findings(signals: RuntimeSignals | None, events: Iterable[FalcoEvent]) -> tuple[Evidence, ...]:
    """The ``runtime`` findings of a policy among a pod's events, oldest first, one per rule and command line."""
    if signals is None:
        return ()
    found: dict[tuple[str, str], Evidence] = {}
    for event in events:
        if len(found) >= MAX_RUNTIME_FINDINGS or not signals.counts(event):
            continue
        found.setdefault(
            (event.rule, event.cmdline),
            Evidence(
                signal=RUNTIME,
                strength=signals.strength,
                container=event.container_name,
                detail=f"Falco {event.priority} {event.rule!r}: {_message(event)}",
                value=event.cmdline,
            ),
        )
    return tuple(found.values())
