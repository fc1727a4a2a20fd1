"""The ``signals.runtime`` part of a MinerPolicy, and the findings it makes of Falco events.

A policy's runtime signal names Falco rules (globs on the rule name, e.g. ``*crypto miner*``)
and/or tags (an event carrying all of them counts, e.g. ``[mitre_impact, T1496]``), a
minimum priority (default ``Warning``) and a strength (``Strong`` by default: a process seen
running is more than a spec that could run it). An event of a pod counts for a policy when
its priority is at least the minimum and its rule matches one of the globs or it carries
every listed tag. Each such event is one ``runtime`` finding, combined with the spec and CPU
findings by the same match rule (:mod:`minerguard.domain.detection`, whose
:mod:`~minerguard.domain.detection.runtime` makes the findings). Pure.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from minerguard.domain.falco import PRIORITIES, FalcoEvent, priority_rank
from minerguard.domain.fields import enum, invalid, known_fields, list_of, string
from minerguard.domain.fields import strength as read_strength
from minerguard.domain.kinds import DEFAULT_STRENGTH
from minerguard.domain.patterns import MAX_PATTERN_LEN, Pattern, PatternError, compile_glob

__all__ = ["RUNTIME", "RuntimeSignals", "parse_runtime"]

RUNTIME = "runtime"


@dataclass(frozen=True)
class RuntimeSignals:
    """Which Falco events count, and how strongly."""

    rules: tuple[Pattern, ...] = ()
    tags: frozenset[str] = frozenset()
    minimum_priority: str = "Warning"
    strength: str = DEFAULT_STRENGTH[RUNTIME]

    def counts(self, event: FalcoEvent) -> bool:
        """Whether the event is one this signal counts."""
        if event.rank < priority_rank(self.minimum_priority):
            return False
        if any(rule.matches(event.rule) for rule in self.rules):
            return True
        return bool(self.tags) and self.tags <= event.tags


def parse_runtime(raw: Mapping[str, Any] | None, path: str) -> RuntimeSignals | None:
    """``spec.signals.runtime``, checked as the CRD schema does (raises ``PolicyInvalid``)."""
    if raw is None:
        return None
    known_fields(raw, ("rules", "tags", "minimumPriority", "strength"), path)
    rules: list[Pattern] = []
    for i, item in enumerate(list_of(raw.get("rules"), f"{path}.rules", 64)):
        text = string(item, f"{path}.rules[{i}]", MAX_PATTERN_LEN, min_len=1)
        try:
            rules.append(compile_glob(text))
        except PatternError as exc:
            raise invalid(f"{path}.rules[{i}]", str(exc)) from None
    tags = frozenset(
        string(t, f"{path}.tags[{i}]", 256, min_len=1)
        for i, t in enumerate(list_of(raw.get("tags"), f"{path}.tags", 16))
    )
    if not rules and not tags:
        raise invalid(path, "give rules, tags or both")
    minimum = raw.get("minimumPriority")
    return RuntimeSignals(
        rules=tuple(rules),
        tags=tags,
        minimum_priority="Warning" if minimum is None else enum(minimum, f"{path}.minimumPriority", PRIORITIES),
        strength=read_strength(raw, path, DEFAULT_STRENGTH[RUNTIME]),
    )
