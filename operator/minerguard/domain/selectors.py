"""Kubernetes label selectors (``matchLabels`` and ``matchExpressions``), pure and offline.

Semantics are those of ``metav1.LabelSelector``:

* every ``matchLabels`` pair and every expression must hold (AND);
* ``In``: the label is present and its value is listed; ``NotIn``: the label is absent or its
  value is not listed; ``Exists``: present; ``DoesNotExist``: absent;
* an empty selector (``{}``) selects everything.

In minerguard a *missing* selector (``None``) means "no constraint", so :func:`matches`
returns True for it as well; callers that use a selector to *exclude* must check for None
themselves (see :func:`parse`, which returns None for a missing selector).

Malformed selectors (unknown fields or operators, ``In`` without values, ``Exists`` with
values, invalid label keys or values) are refused by :func:`parse` and :func:`validate`
with a :class:`ValueError` whose message says what is wrong and where.
"""

from __future__ import annotations

import reprlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import re2

__all__ = ["LabelSelector", "Requirement", "matches", "parse", "show"]

_REPR = reprlib.Repr()
_REPR.maxlevel, _REPR.maxlist, _REPR.maxdict, _REPR.maxstring, _REPR.maxother = 2, 4, 4, 80, 80


def show(value: object, limit: int = 80) -> str:
    """A value as error messages quote it: its repr (control characters escaped), nested
    and long values abridged, at most ``limit`` characters with an ellipsis in the middle.
    Never raises, whatever the value (an int of 5000 digits, a list nested 100000 deep)."""
    try:
        text = _REPR.repr(value)
    except (ValueError, RecursionError):  # e.g. an int too long to convert to decimal
        text = f"<{type(value).__name__}>"
    if len(text) <= limit:
        return text
    head = (limit - 1) // 2
    return text[:head] + "…" + text[len(text) - (limit - 1 - head) :]


def _sort_key(key: object) -> tuple[bool, str]:
    """Strings first, in order; anything else after (it is refused as a label key anyway)."""
    return (False, key) if isinstance(key, str) else (True, "")


OPERATORS = ("In", "NotIn", "Exists", "DoesNotExist")
_MAX_ITEMS = 256

_options = re2.Options()
_options.log_errors = False
_NAME = re2.compile(r"[A-Za-z0-9](?:[-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?", _options)
_DNS_SUBDOMAIN = re2.compile(r"[a-z0-9](?:[-a-z0-9.]{0,251}[a-z0-9])?", _options)


@dataclass(frozen=True)
class Requirement:
    """One ``matchExpressions`` entry (``matchLabels`` pairs become ``In`` with one value)."""

    key: str
    operator: str
    values: frozenset[str] = frozenset()

    def holds(self, labels: Mapping[str, str]) -> bool:
        """Whether the labels satisfy this requirement."""
        present = self.key in labels
        if self.operator == "Exists":
            return present
        if self.operator == "DoesNotExist":
            return not present
        if self.operator == "In":
            return present and labels[self.key] in self.values
        return not present or labels[self.key] not in self.values  # NotIn


@dataclass(frozen=True)
class LabelSelector:
    """A parsed selector: all requirements must hold; none at all selects everything."""

    requirements: tuple[Requirement, ...] = ()

    @property
    def is_empty(self) -> bool:
        """True for ``{}``, which selects everything."""
        return not self.requirements

    def matches(self, labels: Mapping[str, str]) -> bool:
        """Whether the labels satisfy every requirement."""
        return all(requirement.holds(labels) for requirement in self.requirements)


def _check_key(key: object, where: str) -> str:
    if not isinstance(key, str) or not key:
        raise ValueError(f"{where}: label key must be a non-empty string")
    prefix, slash, name = key.rpartition("/")
    if slash and (not prefix or len(prefix) > 253 or _DNS_SUBDOMAIN.fullmatch(prefix) is None):
        raise ValueError(f"{where}: invalid label key prefix in {show(key)} (a DNS subdomain is expected)")
    if len(name) > 63 or _NAME.fullmatch(name) is None:
        raise ValueError(f"{where}: invalid label key {show(key)}")
    return key


def _check_value(value: object, where: str) -> str:
    if not isinstance(value, str):
        raise ValueError(f"{where}: label value must be a string, got {type(value).__name__}")
    if value and (len(value) > 63 or _NAME.fullmatch(value) is None):
        raise ValueError(f"{where}: invalid label value {show(value)}")
    return value


def _parse_match_labels(raw: object, where: str) -> list[Requirement]:
    if raw is None:
        return []
    if not isinstance(raw, Mapping):
        raise ValueError(f"{where}.matchLabels must be a mapping of label keys to values")
    if len(raw) > _MAX_ITEMS:
        raise ValueError(f"{where}.matchLabels has more than {_MAX_ITEMS} entries")
    out = []
    for key in sorted(raw, key=_sort_key):
        _check_key(key, f"{where}.matchLabels")
        value = _check_value(raw[key], f"{where}.matchLabels[{key}]")
        out.append(Requirement(key=key, operator="In", values=frozenset({value})))
    return out


def _parse_expression(raw: object, where: str) -> Requirement:
    if not isinstance(raw, Mapping):
        raise ValueError(f"{where} must be a mapping with key, operator and values")
    unknown = sorted((k for k in raw if k not in ("key", "operator", "values")), key=_sort_key)
    if unknown:
        raise ValueError(f"{where}: unknown field {show(unknown[0])}")
    key = _check_key(raw.get("key"), where)
    operator = raw.get("operator")
    if operator not in OPERATORS:
        raise ValueError(f"{where}: unknown operator {show(operator)} (expected one of {', '.join(OPERATORS)})")
    values = raw.get("values")
    if values is None:
        values = []
    if not isinstance(values, Sequence) or isinstance(values, str | bytes):
        raise ValueError(f"{where}.values must be a list of strings")
    checked = frozenset(_check_value(v, f"{where}.values") for v in values)
    if operator in ("In", "NotIn") and not checked:
        raise ValueError(f"{where}: operator {operator} needs at least one value")
    if operator in ("Exists", "DoesNotExist") and checked:
        raise ValueError(f"{where}: operator {operator} takes no values")
    return Requirement(key=key, operator=str(operator), values=checked)


def _parse_match_expressions(raw: object, where: str) -> list[Requirement]:
    if raw is None:
        return []
    if not isinstance(raw, Sequence) or isinstance(raw, str | bytes):
        raise ValueError(f"{where}.matchExpressions must be a list")
    if len(raw) > _MAX_ITEMS:
        raise ValueError(f"{where}.matchExpressions has more than {_MAX_ITEMS} entries")
    return [_parse_expression(item, f"{where}.matchExpressions[{i}]") for i, item in enumerate(raw)]


def parse(selector: Mapping[str, Any] | None, where: str = "selector") -> LabelSelector | None:
    """Parse a selector; None for a missing one. Raises ValueError (naming ``where``) if malformed."""
    if selector is None:
        return None
    if not isinstance(selector, Mapping):
        raise ValueError(f"{where} must be a mapping (a label selector)")
    unknown = sorted((k for k in selector if k not in ("matchLabels", "matchExpressions")), key=_sort_key)
    if unknown:
        raise ValueError(f"{where}: unknown field {show(unknown[0])} (expected matchLabels or matchExpressions)")
    requirements = _parse_match_labels(selector.get("matchLabels"), where)
    requirements += _parse_match_expressions(selector.get("matchExpressions"), where)
    return LabelSelector(requirements=tuple(requirements))


def matches(selector: Mapping[str, Any] | None, labels: Mapping[str, str]) -> bool:
    """Whether ``labels`` satisfy ``selector``. None and ``{}`` select everything.

    Raises ValueError for a malformed selector.
    """
    parsed = parse(selector)
    return parsed is None or parsed.matches(labels)
