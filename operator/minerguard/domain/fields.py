"""Checked readers of untrusted values: a MinerPolicy (or any object from a user) read field by field.

Each reader takes the value and the path it came from (``spec.signals.processes[2].regex``) and either
returns it typed or raises :class:`PolicyInvalid` naming that path, with a short, printable message
whatever the value (a 1 MB string or a control character never reaches a status condition as is).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

from minerguard.domain.kinds import STRENGTHS
from minerguard.domain.selectors import show


class PolicyInvalid(Exception):
    """A MinerPolicy that cannot be used, with a CamelCase ``reason`` and a human ``message``."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(f"{reason}: {message}")
        self.reason = reason
        self.message = message


def invalid(path: str, problem: str, reason: str = "InvalidSpec") -> PolicyInvalid:
    return PolicyInvalid(reason, f"{path}: {problem}")


def type_name(value: object) -> str:
    return "null" if value is None else type(value).__name__


def mapping(value: object, path: str) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise invalid(path, f"must be an object, got {type_name(value)}")
    return value


def opt_mapping(parent: Mapping[str, Any], key: str, path: str) -> Mapping[str, Any] | None:
    value = parent.get(key)
    return None if value is None else mapping(value, f"{path}.{key}")


def field_name(key: object) -> str:
    """A field name as it is written in a path: itself when it is a short printable string."""
    return key if isinstance(key, str) and len(key) <= 64 and key.isprintable() else show(key, 64)


def known_fields(value: Mapping[str, Any], allowed: Sequence[str], path: str) -> None:
    for key in value:
        if key not in allowed:
            raise invalid(f"{path}.{field_name(key)}", "unknown field")


def list_of(value: object, path: str, max_items: int) -> Sequence[Any]:
    if value is None:
        return ()
    if not isinstance(value, Sequence) or isinstance(value, str | bytes):
        raise invalid(path, f"must be a list, got {type_name(value)}")
    if len(value) > max_items:
        raise invalid(path, f"has {len(value)} items, more than the maximum {max_items}")
    return value


def string(value: object, path: str, max_len: int, min_len: int = 0) -> str:
    if not isinstance(value, str):
        raise invalid(path, f"must be a string, got {type_name(value)}")
    if len(value) > max_len:
        raise invalid(path, f"is longer than {max_len} characters")
    if len(value) < min_len:
        raise invalid(path, f"must have at least {min_len} character(s)")
    return value


def opt_string(parent: Mapping[str, Any], key: str, path: str, max_len: int, default: str = "") -> str:
    value = parent.get(key)
    return default if value is None else string(value, f"{path}.{key}", max_len)


def enum(value: object, path: str, allowed: Sequence[str], reason: str = "InvalidSpec") -> str:
    if not isinstance(value, str) or value not in allowed:
        raise invalid(path, f"must be one of {', '.join(allowed)}, got {show(value)}", reason)
    return value


def number(value: object, path: str, minimum: float, maximum: float | None = None) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise invalid(path, f"must be a number, got {type_name(value)}")
    try:
        number = float(value)
    except OverflowError:  # an int beyond the float range
        number = math.inf
    if not math.isfinite(number):
        raise invalid(path, f"must be a finite number, got {show(value)}")
    if number < minimum or (maximum is not None and number > maximum):
        bounds = f"between {minimum} and {maximum}" if maximum is not None else f"at least {minimum}"
        raise invalid(path, f"must be {bounds}, got {show(value)}")
    return number


def integer(value: object, path: str, minimum: int, maximum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise invalid(path, f"must be an integer, got {type_name(value)}")
    if not minimum <= value <= maximum:
        raise invalid(path, f"must be between {minimum} and {maximum}, got {show(value)}")
    return value


def window(parent: Mapping[str, Any], path: str) -> str:
    """The ``window`` duration of a CPU signal (``30s``, ``5m``, ``1h``); 5m when absent."""
    value = parent.get("window")
    if value is None:
        return "5m"
    text = string(value, f"{path}.window", 32)
    digits, unit = text[:-1], text[-1:]
    if unit not in ("s", "m", "h") or not digits or not (digits.isascii() and digits.isdigit()):
        raise invalid(f"{path}.window", f"must be a duration like 30s, 5m or 1h, got {show(text)}")
    return text


def strength(parent: Mapping[str, Any], path: str, default: str) -> str:
    """The ``strength`` of an indicator, Strong or Weak; ``default`` when absent."""
    value = parent.get("strength")
    return default if value is None else enum(value, f"{path}.strength", STRENGTHS)
