"""What detection finds and decides: :class:`Evidence` and :class:`Verdict`."""

from __future__ import annotations

from dataclasses import dataclass

from minerguard.domain.text import printable, shorten

MAX_DETAIL = 200
"""Longest evidence ``detail`` and ``value``, in characters."""


@dataclass(frozen=True)
class Evidence:
    """One finding: its signal kind, strength, container and a short human ``detail``.

    ``value`` is the matched value (spec signals) or the measured value (metric signals);
    ``query`` and ``window`` describe a metric signal. ``detail``, ``value`` and
    ``container`` are made :func:`printable` and shortened with an ellipsis in the middle:
    ``detail`` and ``value`` to at most :data:`MAX_DETAIL` (200) characters, ``container``
    to 253. Evidence only ever quotes what matched (a token, a host, a program name, a
    shortened wallet), never a whole value. Secret references are not read at all;
    ConfigMaps only by policies with ``signals.configMaps``.
    """

    signal: str
    strength: str
    container: str
    detail: str
    query: str = ""
    value: str = ""
    window: str = ""

    def __post_init__(self) -> None:
        object.__setattr__(self, "detail", shorten(printable(self.detail), MAX_DETAIL))
        object.__setattr__(self, "value", shorten(printable(self.value), MAX_DETAIL))
        object.__setattr__(self, "container", shorten(printable(self.container), 253))

    def to_dict(self) -> dict[str, str]:
        """The evidence as a dict, without empty optional keys."""
        out = {"signal": self.signal, "strength": self.strength, "container": self.container, "detail": self.detail}
        for key in ("query", "value", "window"):
            if getattr(self, key):
                out[key] = getattr(self, key)
        return out


@dataclass(frozen=True)
class Verdict:
    """The outcome of one policy on one workload."""

    policy: str
    matched: bool
    mode: str
    evidence: tuple[Evidence, ...]
    actions: tuple[str, ...]
    reason: str
