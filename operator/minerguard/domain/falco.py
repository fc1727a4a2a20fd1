"""Falco events: the JSON that Falco's ``http_output`` and falcosidekick's ``webhook`` output POST, checked.

Both send one event per request, the same object (Falco's JSON output, which falcosidekick
forwards as its ``FalcoPayload``): ``rule``, ``priority``, ``time`` (RFC 3339, nanoseconds),
``output``, ``tags``, ``source``, ``hostname``, falcosidekick's ``uuid``, and
``output_fields``, where the container plugin puts ``k8s.ns.name``, ``k8s.pod.name``,
``container.id``, ``container.name`` and the rule's own fields (``proc.cmdline``,
``fd.sip``, ``fd.sport``...). Sources: falcosecurity/falco userspace/engine/formats.cpp
(the JSON event), falcosecurity/falcosidekick types/types.go (``FalcoPayload``) and
types/priority.go (the priority names).

:func:`parse_event` turns the body of a request into a :class:`FalcoEvent` or raises
:class:`EventInvalid` with a one-line reason; nothing else about a request is trusted.
An event may name no pod (a process on the host): that is not an error, it simply
concerns no pod. :func:`staleness` says whether an event is too old (or from the future)
to be taken. Pure: no clock, no I/O.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from minerguard.domain.text import printable, shorten

__all__ = ["PRIORITIES", "EventInvalid", "FalcoEvent", "parse_event", "priority_rank", "staleness"]

PRIORITIES = ("Debug", "Informational", "Notice", "Warning", "Error", "Critical", "Alert", "Emergency")
"""Falco's priorities, lowest first (falcosidekick types/priority.go)."""
_PRIORITY_NAMES = {p.lower(): p for p in PRIORITIES} | {"info": "Informational"}

MAX_RULE = 1024
MAX_OUTPUT = 16 * 1024
MAX_TAGS = 64
MAX_TAG = 256
MAX_FIELD = 8 * 1024
MAX_FIELDS = 512

_DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_DNS_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
_TIME = re.compile(
    r"^(\d{4})-(\d{2})-(\d{2})[Tt](\d{2}):(\d{2}):(\d{2})(?:\.(\d{1,9}))?(?:([Zz])|([+-])(\d{2}):(\d{2}))$"
)
_ABSENT = ("", "<NA>", "<na>")


class EventInvalid(ValueError):
    """A request body that is not a Falco event; ``reason`` is one printable line."""

    def __init__(self, reason: str) -> None:
        self.reason = shorten(printable(" ".join(reason.split())), 200)
        super().__init__(self.reason)


@dataclass(frozen=True)
class FalcoEvent:
    """One Falco event, as far as minerguard reads it. Empty strings for what it does not carry."""

    rule: str
    priority: str
    time: float
    """Seconds since the epoch (UTC)."""
    output: str = ""
    tags: frozenset[str] = frozenset()
    namespace: str = ""
    pod: str = ""
    pod_uid: str = ""
    container_id: str = ""
    container_name: str = ""
    cmdline: str = ""
    uuid: str = ""
    source: str = ""
    hostname: str = ""

    @property
    def rank(self) -> int:
        return priority_rank(self.priority)

    @property
    def key(self) -> str:
        """What identifies the event for replay detection: falcosidekick's uuid, else a digest of its content."""
        if self.uuid:
            return f"uuid:{self.uuid}"
        parts = (repr(self.time), self.rule, self.hostname, self.namespace, self.pod, self.container_id, self.output)
        text = "\x00".join(parts).encode("utf-8", "surrogatepass")
        return "sha256:" + hashlib.sha256(text).hexdigest()


def priority_rank(priority: str) -> int:
    """The position of a priority name in :data:`PRIORITIES` (case-insensitive), -1 if unknown."""
    name = _PRIORITY_NAMES.get(priority.lower(), "")
    return PRIORITIES.index(name) if name else -1


def _text(value: object, key: str, limit: int, required: bool = False) -> str:
    if value is None and not required:
        return ""
    if not isinstance(value, str):
        raise EventInvalid(f"{key} must be a string, got {_type(value)}")
    if required and not value.strip():
        raise EventInvalid(f"{key} is empty")
    if len(value) > limit:
        raise EventInvalid(f"{key} is longer than {limit} characters")
    return value


def _type(value: object) -> str:
    if value is None:
        return "null"
    return {dict: "an object", list: "a list", str: "a string", bool: "a boolean"}.get(type(value), "a number")


def parse_time(value: object) -> float:
    """An RFC 3339 time (Falco's ``2026-12-02T05:31:02.123456789Z``) as seconds since the epoch."""
    text = _text(value, "time", 64, required=True)
    match = _TIME.match(text)
    if match is None:
        raise EventInvalid(f"time {text!r} is not an RFC 3339 time such as 2026-01-02T03:04:05.123456789Z")
    year, month, day, hour, minute, second, fraction, zulu, sign, off_h, off_m = match.groups()
    try:
        moment = datetime(int(year), int(month), int(day), int(hour), int(minute), int(second), tzinfo=UTC)
    except ValueError as exc:
        raise EventInvalid(f"time {text!r}: {exc}") from None
    if not zulu:
        offset = timedelta(hours=int(off_h), minutes=int(off_m))
        if offset > timedelta(hours=24):
            raise EventInvalid(f"time {text!r}: offset out of range")
        moment = moment - offset if sign == "+" else moment + offset
    return moment.timestamp() + (int(fraction) / 10 ** len(fraction) if fraction else 0.0)


def _tags(value: object) -> frozenset[str]:
    if value is None:
        return frozenset()
    if not isinstance(value, list):
        raise EventInvalid(f"tags must be a list, got {_type(value)}")
    if len(value) > MAX_TAGS:
        raise EventInvalid(f"more than {MAX_TAGS} tags")
    return frozenset(_text(tag, "each tag", MAX_TAG, required=True) for tag in value)


def _field(fields: Mapping[str, Any], key: str) -> str:
    """A string output field; Falco writes a field it cannot resolve as null or <NA>."""
    value = fields.get(key)
    if value is None or isinstance(value, bool):
        return ""
    if isinstance(value, int | float):
        return str(value)
    text = _text(value, f"output_fields[{key}]", MAX_FIELD)
    return "" if text in _ABSENT else text


def _name(fields: Mapping[str, Any], key: str, pattern: re.Pattern[str], limit: int) -> str:
    name = _field(fields, key)
    if name and (len(name) > limit or not pattern.match(name)):
        raise EventInvalid(f"output_fields[{key}] {name!r} is not a Kubernetes name")
    return name


def _fields(value: object) -> Mapping[str, Any]:
    if not isinstance(value, dict):
        raise EventInvalid(f"output_fields must be an object, got {_type(value)}")
    if len(value) > MAX_FIELDS:
        raise EventInvalid(f"more than {MAX_FIELDS} output_fields")
    return value


def _load(body: bytes) -> dict[str, Any]:
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise EventInvalid(f"not UTF-8 (byte {exc.start})") from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise EventInvalid(f"not JSON: {exc.msg} at line {exc.lineno}, column {exc.colno}") from None
    except RecursionError:
        raise EventInvalid("not JSON: nested too deeply") from None
    except ValueError as exc:  # e.g. an integer of more than 4300 digits
        raise EventInvalid(f"not JSON: {exc}") from None
    if not isinstance(data, dict):
        raise EventInvalid(f"the body must be a JSON object (one Falco event), got {_type(data)}")
    return data


def parse_event(body: bytes) -> FalcoEvent:
    """The Falco event in a request body. Raises :class:`EventInvalid` (one line) when it is not one."""
    data = _load(body)
    rule = _text(data.get("rule"), "rule", MAX_RULE, required=True)
    priority_text = _text(data.get("priority"), "priority", 32, required=True)
    if priority_rank(priority_text) < 0:
        raise EventInvalid(f"priority {priority_text!r} is not one of {', '.join(PRIORITIES)}")
    fields = _fields(data.get("output_fields"))
    namespace = _name(fields, "k8s.ns.name", _DNS_LABEL, 63)
    pod = _name(fields, "k8s.pod.name", _DNS_SUBDOMAIN, 253)
    if bool(namespace) != bool(pod):
        raise EventInvalid("output_fields has one of k8s.ns.name and k8s.pod.name without the other")
    return FalcoEvent(
        rule=rule,
        priority=_PRIORITY_NAMES[priority_text.lower()],
        time=parse_time(data.get("time")),
        output=_text(data.get("output"), "output", MAX_OUTPUT),
        tags=_tags(data.get("tags")),
        namespace=namespace,
        pod=pod,
        pod_uid=_field(fields, "k8s.pod.uid")[:64],
        container_id=_field(fields, "container.id")[:128],
        container_name=_field(fields, "container.name")[:253],
        cmdline=_field(fields, "proc.cmdline"),
        uuid=_text(data.get("uuid"), "uuid", 128),
        source=_text(data.get("source"), "source", 128),
        hostname=_text(data.get("hostname"), "hostname", 253),
    )


def staleness(event: FalcoEvent, now: float, max_age: float, max_skew: float = 60.0) -> str:
    """Why the event is not taken at time ``now``: ``stale`` (older than ``max_age`` seconds), ``future``
    (more than ``max_skew`` seconds ahead: a clock that cannot be trusted), or empty when it is fresh."""
    if event.time < now - max_age:
        return "stale"
    if event.time > now + max_skew:
        return "future"
    return ""
