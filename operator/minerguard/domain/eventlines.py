"""The Kubernetes Events minerguard emitted about one incident, as ``kubectl describe`` prints Events.

Pure: takes the incident and Events (events.k8s.io/v1, as plain dicts) read by the caller, keeps those the
operator reported (``reportingController`` ``minerguard.io/operator``) about the incident itself, its pods
(by UID, or name in its namespace) and the nodes it acted on, folds repeats (same type, reason, object and
message) into one line with their count, and prints them oldest first, newest last.
"""

from __future__ import annotations

import datetime
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from minerguard.domain.text import printable, shorten

REPORTING_CONTROLLER = "minerguard.io/operator"
SHOWN = 15
"""At most this many lines (the newest); older ones are counted."""


def _m(value: object) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def _l(value: object) -> list[Any]:
    return list(value) if isinstance(value, list | tuple) else []


@dataclass
class Line:
    """Events with the same type, reason, object and message: one line."""

    type: str
    reason: str
    object: str
    message: str
    count: int
    first: datetime.datetime | None
    last: datetime.datetime | None


def parse_time(value: object) -> datetime.datetime | None:
    """An RFC 3339 time (``Z`` or an offset, with or without fractions) as an aware datetime; None if not one."""
    if isinstance(value, datetime.datetime):
        return value if value.tzinfo else value.replace(tzinfo=datetime.UTC)
    if not isinstance(value, str) or not value:
        return None
    try:
        moment = datetime.datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=datetime.UTC)


def human_duration(seconds: float) -> str:
    """A duration the way kubectl prints ages (``45s``, ``5m3s``, ``12m``, ``3h7m``, ``2d4h``, ``30d``)."""
    s = max(0, int(seconds))
    m, h, d = s // 60, s // 3600, s // 86400
    if s < 120:
        return f"{s}s"
    if m < 10:
        return f"{m}m{s % 60}s" if s % 60 else f"{m}m"
    if m < 180:
        return f"{m}m"
    if h < 8:
        return f"{h}h{m % 60}m" if m % 60 else f"{h}h"
    if h < 48:
        return f"{h}h"
    if h < 192:
        return f"{d}d{h % 24}h" if h % 24 else f"{d}d"
    if d < 730:
        return f"{d}d"
    return f"{d // 365}y{d % 365}d" if d < 2920 and d % 365 else f"{d // 365}y"


def _subjects(incident: Mapping[str, Any]) -> tuple[str, set[str], set[str], set[str]]:
    """The incident's namespace, its pods' UIDs and names, and the nodes it is about or acted on."""
    meta, spec, status = _m(incident.get("metadata")), _m(incident.get("spec")), _m(incident.get("status"))
    pods = [_m(p) for p in _l(status.get("pods"))]
    uids = {str(p.get("uid")) for p in pods if p.get("uid")}
    names = {str(p.get("name")) for p in pods if p.get("name")}
    nodes = {
        str(a.get("target"))[len("Node ") :]
        for a in map(_m, _l(status.get("actions")))
        if str(a.get("target") or "").startswith("Node ")
    }
    workload = _m(spec.get("workload"))
    if workload.get("kind") == "Node" and workload.get("name"):
        nodes.add(str(workload.get("name")))
    return str(meta.get("namespace") or ""), uids, names, nodes


def event_namespaces(incident: Mapping[str, Any]) -> list[str]:
    """Where its Events are: the incident's namespace, and ``default`` (cluster-scoped objects) when nodes are in it."""
    namespace, _, _, nodes = _subjects(incident)
    return [namespace, *(["default"] if nodes and namespace != "default" else [])]


def about_incident(incident: Mapping[str, Any], events: Iterable[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    """The Events minerguard reported about ``incident``, its pods and the nodes it acted on."""
    namespace, uids, names, nodes = _subjects(incident)
    name = str(_m(incident.get("metadata")).get("name") or "")
    kept = []
    for event in events:
        if event.get("reportingController") != REPORTING_CONTROLLER:
            continue
        about = _m(event.get("regarding"))
        kind, where = about.get("kind"), about.get("namespace") or ""
        if kind == "Pod":
            ours = where == namespace and (about.get("uid") in uids or about.get("name") in names)
        elif kind == "MinerIncident":
            ours = where == namespace and about.get("name") == name
        elif kind == "Node":
            ours = about.get("name") in nodes
        else:
            ours = False
        if ours:
            kept.append(event)
    return kept


def _when(event: Mapping[str, Any]) -> tuple[datetime.datetime | None, datetime.datetime | None, int]:
    """First and last time an Event was seen, and how many times."""
    series = _m(event.get("series"))
    first = parse_time(event.get("eventTime")) or parse_time(event.get("deprecatedFirstTimestamp"))
    first = first or parse_time(_m(event.get("metadata")).get("creationTimestamp"))
    last = parse_time(series.get("lastObservedTime")) or parse_time(event.get("deprecatedLastTimestamp")) or first
    count = int(series.get("count") or event.get("deprecatedCount") or 1)
    return first, last, max(1, count)


def fold(events: Iterable[Mapping[str, Any]]) -> list[Line]:
    """Events with the same type, reason, object and message as one line each, oldest first."""
    lines: dict[tuple[str, str, str, str], Line] = {}
    for event in events:
        about = _m(event.get("regarding"))
        what = f"{about.get('kind') or '?'}/{about.get('name') or '?'}"
        key = (str(event.get("type") or "Normal"), str(event.get("reason") or ""), what, str(event.get("note") or ""))
        first, last, count = _when(event)
        line = lines.get(key)
        if line is None:
            lines[key] = Line(*key, count, first, last)
            continue
        line.count += count
        line.first = min((t for t in (line.first, first) if t), default=None)
        line.last = max((t for t in (line.last, last) if t), default=None)
    epoch = datetime.datetime.min.replace(tzinfo=datetime.UTC)
    return sorted(lines.values(), key=lambda x: (x.last or epoch, x.first or epoch))


def _age(line: Line, now: datetime.datetime) -> str:
    if line.last is None:
        return "<unknown>"
    age = human_duration((now - line.last).total_seconds())
    if line.count > 1 and line.first is not None:
        return f"{age} (x{line.count} over {human_duration((now - line.first).total_seconds())})"
    return age


def event_lines(events: Sequence[Mapping[str, Any]], now: datetime.datetime, width: int = 400) -> list[str]:
    """``Events:`` and a ``kubectl describe``-style table: Type, Reason, Count, Age, Object, Message; newest last."""
    lines = fold(events)
    if not lines:
        return ["Events:            <none>"]
    shown = lines[-SHOWN:]
    rows = [
        ["Type", "Reason", "Count", "Age", "Object", "Message"],
        ["----", "------", "-----", "---", "------", "-------"],
    ]
    rows += [
        [line.type, line.reason, str(line.count), _age(line, now), line.object, shorten(printable(line.message), width)]
        for line in shown
    ]
    widths = [max(len(r[i]) for r in rows) for i in range(5)]
    out = ["Events:"]
    if len(lines) > len(shown):
        out.append(f"  ({len(lines) - len(shown)} older not shown)")
    out += ["  " + "  ".join([*(c.ljust(w) for c, w in zip(r[:5], widths, strict=True)), r[5]]).rstrip() for r in rows]
    return out
