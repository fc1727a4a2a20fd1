"""User-supplied patterns, compiled once and matched in linear time.

Policies carry two kinds of pattern:

* ``glob``: shell style (``*``, ``?``, ``[abc]``, ``[!abc]``), case-insensitive, matched
  against the *whole* value, like :func:`fnmatch.fnmatch` (``*`` also crosses ``/``).
* ``regex``: an RE2 regular expression, case-insensitive, *searched* in the value.

Both are compiled to RE2 (the ``re2`` module), never to Python's ``re``: RE2 runs in time
linear in the input whatever the pattern, so a policy written as ``(a+)+$`` cannot stall the
operator. A value longer than :data:`MAX_VALUE_LEN` characters (64 KiB) is cut to its
first :data:`MAX_VALUE_LEN` characters before it is matched; nothing after that point is
ever scanned.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

import re2

__all__ = [
    "MAX_PATTERN_LEN",
    "MAX_VALUE_LEN",
    "Pattern",
    "PatternError",
    "PatternSet",
    "bounded",
    "compile_glob",
    "compile_pattern",
    "compile_regex",
    "glob_to_re2",
]

MAX_VALUE_LEN = 64 * 1024
"""Characters of one value that are scanned (64 KiB); the rest is ignored."""

MAX_PATTERN_LEN = 512
"""Longest accepted pattern, as in the MinerPolicy schema."""

_MAX_PROGRAM_MEM = 8 << 20
"""Memory budget for one compiled RE2 program (8 MiB)."""

_MAX_SET_MEM = 64 << 20
"""Memory budget for the combined program of a :class:`PatternSet` (64 MiB)."""

PatternKind = Literal["glob", "regex"]


class PatternError(ValueError):
    """A pattern that cannot be compiled; the message names the pattern and the problem."""

    def __init__(self, kind: PatternKind, pattern: str, problem: str) -> None:
        self.kind = kind
        self.pattern = pattern
        self.problem = problem
        super().__init__(f"invalid {kind} {pattern!r}: {problem}")


def bounded(value: str) -> str:
    """The part of ``value`` that is scanned: at most :data:`MAX_VALUE_LEN` characters."""
    return value if len(value) <= MAX_VALUE_LEN else value[:MAX_VALUE_LEN]


def _options(max_mem: int = _MAX_PROGRAM_MEM) -> Any:
    options = re2.Options()
    options.case_sensitive = False
    options.log_errors = False
    options.dot_nl = True
    options.max_mem = max_mem
    return options


@dataclass(frozen=True)
class Pattern:
    """A compiled glob or regex. Equality and hashing use the kind and the source text."""

    kind: PatternKind
    source: str
    _compiled: Any = field(repr=False, compare=False, hash=False)

    def matches(self, value: str) -> bool:
        """True when the glob matches the whole value, or the regex is found in it."""
        return self.find(value) is not None

    def find(self, value: str, prefer_group: bool = False) -> str | None:
        """The matched text (the whole value for a glob), or None when there is no match.

        With ``prefer_group``, a regex with capture groups gives the text of its first group
        when that group took part in the match (``(?:^|\\W)(4\\w{94})`` gives the address).
        """
        text = bounded(value)
        if self.kind == "glob":
            return text if self._compiled.fullmatch(text) is not None else None
        found = self._compiled.search(text)
        if found is None:
            return None
        if prefer_group and self._compiled.groups >= 1 and found.group(1) is not None:
            return str(found.group(1))
        return str(found.group(0))


class PatternSet:
    """A quick pre-check for many patterns: one RE2 pass over a value tells whether *any* of
    them can match, so the patterns are tried one by one only for the few values that pass.

    The check is exact (the alternation of all the patterns), never a false negative. When
    the combined program does not compile within its memory budget there is no pre-check,
    and :meth:`may_match` is always True.
    """

    def __init__(self, patterns: tuple[Pattern, ...]) -> None:
        self.patterns = patterns
        self._combined: Any = None
        if patterns:
            parts = [f"^(?:{glob_to_re2(p.source)})$" if p.kind == "glob" else f"(?:{p.source})" for p in patterns]
            try:
                self._combined = re2.compile("|".join(parts), _options(_MAX_SET_MEM))
            except re2.error:
                self._combined = None

    def may_match(self, value: str) -> bool:
        """False only when no pattern of the set matches ``value``."""
        if not self.patterns:
            return False
        return self._combined is None or self._combined.search(bounded(value)) is not None

    def __eq__(self, other: object) -> bool:
        return isinstance(other, PatternSet) and self.patterns == other.patterns

    def __hash__(self) -> int:
        return hash(self.patterns)

    def __repr__(self) -> str:
        return f"PatternSet({len(self.patterns)} patterns)"


def _class_to_re2(body: str) -> str:
    """An fnmatch bracket body (without the brackets) as an RE2 class, or a never-matching class."""
    negate = body.startswith("!")
    if negate:
        body = body[1:]
    items: list[str] = []
    i = 0
    while i < len(body):
        if i + 2 < len(body) and body[i + 1] == "-":
            low, high = body[i], body[i + 2]
            if low <= high:  # fnmatch drops empty ranges such as z-a
                items.append(f"{_class_char(low)}-{_class_char(high)}")
            i += 3
            continue
        items.append(_class_char(body[i]))
        i += 1
    if not items:
        return "[\\x00-\\x{10FFFF}]" if negate else "[^\\x00-\\x{10FFFF}]"
    return "[" + ("^" if negate else "") + "".join(items) + "]"


def _class_char(char: str) -> str:
    return "\\" + char if char in "\\]^-[" else char


def glob_to_re2(glob: str) -> str:
    """Translate an fnmatch-style glob into an RE2 expression for a whole-value match."""
    out: list[str] = []
    i, n = 0, len(glob)
    while i < n:
        char = glob[i]
        i += 1
        if char == "*":
            if not out or out[-1] != ".*":
                out.append(".*")
        elif char == "?":
            out.append(".")
        elif char == "[":
            j = i
            if j < n and glob[j] == "!":
                j += 1
            if j < n and glob[j] == "]":
                j += 1
            j = glob.find("]", j)
            if j < 0:  # no closing bracket: a literal '['
                out.append("\\[")
            else:
                out.append(_class_to_re2(glob[i:j]))
                i = j + 1
        else:
            out.append(re2.escape(char))
    return "".join(out)


def _compile(kind: PatternKind, source: str, expression: str) -> Pattern:
    if not source:
        raise PatternError(kind, source, "empty pattern")
    if len(source) > MAX_PATTERN_LEN:
        raise PatternError(kind, source[:40] + "...", f"longer than {MAX_PATTERN_LEN} characters")
    try:
        compiled = re2.compile(expression, _options())
    except re2.error as exc:
        detail = exc.args[0] if exc.args else exc
        if isinstance(detail, bytes):
            detail = detail.decode("utf-8", "replace")
        raise PatternError(kind, source, str(detail)) from None
    return Pattern(kind=kind, source=source, _compiled=compiled)


def compile_glob(glob: str) -> Pattern:
    """Compile a case-insensitive, whole-value glob. Raises :class:`PatternError`."""
    return _compile("glob", glob, glob_to_re2(glob))


def compile_regex(regex: str) -> Pattern:
    """Compile a case-insensitive RE2 regex for searching. Raises :class:`PatternError`."""
    return _compile("regex", regex, regex)


def compile_pattern(glob: str | None, regex: str | None) -> Pattern:
    """Compile exactly one of ``glob`` and ``regex``. Raises :class:`PatternError`."""
    if (glob is None) == (regex is None):
        raise PatternError(
            "glob" if glob is not None else "regex", glob or regex or "", "give exactly one of glob or regex"
        )
    if glob is not None:
        return compile_glob(glob)
    assert regex is not None
    return compile_regex(regex)
