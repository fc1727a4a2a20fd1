"""User-supplied patterns, compiled once and matched in linear time.

Policies carry two kinds of pattern:

* ``glob``: shell style (``*``, ``?``, ``[abc]``, ``[!abc]``), case-insensitive, matched
  against the *whole* value, like :func:`fnmatch.fnmatch` (``*`` also crosses ``/``).
* ``regex``: an RE2 regular expression, case-insensitive, *searched* in the value.

Both are compiled to RE2 (the ``re2`` module), never to Python's ``re``: RE2 runs in time
linear in the input whatever the pattern, so a policy written as ``(a+)+$``, ``(a|aa)*b``
or ``(.*a){20}`` cannot stall the operator. What RE2 cannot do in linear time it refuses,
and so does :func:`compile_pattern`, with a :class:`PatternError` naming the pattern and
the problem (which :func:`~minerguard.domain.policy.parse_policy` turns into ``InvalidRegex``):

* backreferences (``(a)\\1``) and lookaround (``(?=``, ``(?<=``, ``(?!``);
* a counted repetition above 1000 (``x{1001}``), or nested ones that multiply past it;
* a pattern longer than :data:`MAX_PATTERN_LEN` (512) characters;
* a pattern whose compiled program has more than :data:`MAX_PROGRAM_SIZE` (4096)
  instructions (``[a-z]{1000}``, ``(.*a){1000}``), or needs more than 2 MiB to compile
  (RE2 ``max_mem``). Linear time is input length times program size at worst, so this
  bounds the constant: a 64 KiB value costs at most some tens of milliseconds per pattern
  even when the input is built to defeat RE2's DFA.

Matching is bounded as well: a value longer than :data:`MAX_VALUE_LEN` characters (64 KiB)
is cut to its first :data:`MAX_VALUE_LEN` characters before it is matched; nothing after
that point is ever scanned. A yes/no match (:meth:`Pattern.matches`, the pre-checks of
:class:`PatternSet`) runs a capture-free program, which RE2 runs on its fast DFA;
capture groups are computed only for the text of a match (:meth:`Pattern.find`). A value
holding lone UTF-16 surrogates (possible from JSON ``"\\ud800"``) is matched with each
of them read as U+FFFD.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

import re2

__all__ = [
    "MAX_PATTERN_LEN",
    "MAX_PROGRAM_SIZE",
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

MAX_PROGRAM_SIZE = 4096
"""Most RE2 program instructions one pattern may compile to."""

_MAX_PROGRAM_MEM = 2 << 20
"""Memory budget for one compiled RE2 program and its DFA cache (2 MiB)."""

_MAX_SET_MEM = 32 << 20
"""Memory budget for the combined program of a :class:`PatternSet` (32 MiB)."""

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


def _scrub(text: str) -> str:
    """``text`` with every lone surrogate (which UTF-8 cannot encode) replaced by U+FFFD."""
    return text.encode("utf-16", "surrogatepass").decode("utf-16", "replace")


def _run(method: Any, text: str) -> Any:
    """``method(text)``: a search or fullmatch of a compiled program, on the scrubbed text if need be."""
    try:
        return method(text)
    except UnicodeEncodeError:
        return method(_scrub(text))


def _options(max_mem: int = _MAX_PROGRAM_MEM, capture: bool = True) -> Any:
    options = re2.Options()
    options.case_sensitive = False
    options.log_errors = False
    options.dot_nl = True
    options.max_mem = max_mem
    options.never_capture = not capture
    return options


@dataclass(frozen=True)
class Pattern:
    """A compiled glob or regex. Equality and hashing use the kind and the source text."""

    kind: PatternKind
    source: str
    _compiled: Any = field(repr=False, compare=False, hash=False)
    _fast: Any = field(default=None, repr=False, compare=False, hash=False)

    def _program(self) -> Any:
        return self._compiled if self._fast is None else self._fast

    def matches(self, value: str) -> bool:
        """True when the glob matches the whole value, or the regex is found in it."""
        program = self._program()
        method = program.fullmatch if self.kind == "glob" else program.search
        return _run(method, bounded(value)) is not None

    def find(self, value: str, prefer_group: bool = False) -> str | None:
        """The matched text (the whole value for a glob), or None when there is no match.

        With ``prefer_group``, a regex with capture groups gives the text of its first group
        when that group took part in the match (``(?:^|\\W)(4\\w{94})`` gives the address).
        """
        text = bounded(value)
        if self.kind == "glob":
            return text if self.matches(text) else None
        groups = prefer_group and self._compiled.groups >= 1
        found = _run((self._compiled if groups else self._program()).search, text)
        if found is None:
            return None
        if groups and found.group(1) is not None:
            return str(found.group(1))
        return str(found.group(0))


def _join_safe(pattern: Pattern) -> bool:
    """Whether a search over values joined by newlines in multi-line mode finds every match of
    the pattern in one of the values: true unless the pattern anchors to the text itself
    (``\\A``, ``\\z``) or turns multi-line mode off (``(?-m)``, ``(?i-m:...)``)."""
    if pattern.kind == "glob":
        return True
    source = pattern.source
    if "\\A" in source or "\\z" in source:
        return False
    start = source.find("(?")
    while start >= 0:
        flags = source[start + 2 :].split(")", 1)[0].split(":", 1)[0]
        if "-" in flags and "m" in flags.split("-", 1)[1]:
            return False
        start = source.find("(?", start + 2)
    return True


class PatternSet:
    """A quick pre-check for many patterns: one RE2 pass over a value tells whether *any* of
    them can match, so the patterns are tried one by one only for the few values that pass.

    The check is exact (the alternation of all the patterns), never a false negative. When
    the combined program does not compile within its memory budget there is no pre-check,
    and :meth:`may_match` is always True.

    :meth:`may_match_lines` does the same for many values at once, joined by newlines: a
    single pass over them all, never a false negative, some false positives (a match
    across two values). It is True without looking when some pattern could anchor to the
    whole text (see :func:`_join_safe`).
    """

    def __init__(self, patterns: tuple[Pattern, ...]) -> None:
        self.patterns = patterns
        self._combined: Any = None
        self._lines: Any = None
        if patterns:
            parts = [f"^(?:{glob_to_re2(p.source)})$" if p.kind == "glob" else f"(?:{p.source})" for p in patterns]
            options = _options(_MAX_SET_MEM, capture=False)
            try:
                self._combined = re2.compile("|".join(parts), options)
                if all(_join_safe(p) for p in patterns):
                    self._lines = re2.compile("(?m)" + "|".join(parts), options)
            except re2.error:
                pass

    def may_match(self, value: str) -> bool:
        """False only when no pattern of the set matches ``value``."""
        if not self.patterns:
            return False
        return self._combined is None or _run(self._combined.search, bounded(value)) is not None

    def may_match_lines(self, lines: str) -> bool:
        """False only when no pattern of the set matches any of the values joined by newlines
        into ``lines`` (each value as :meth:`may_match` sees it). ``lines`` is not cut."""
        if not self.patterns:
            return False
        return self._lines is None or _run(self._lines.search, lines) is not None

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


def _escape(char: str) -> str:
    """One character as a literal in RE2 syntax (as ``re2.escape``, which cannot take a lone surrogate)."""
    if char == "\x00":
        return "\\x00"
    if char.isascii() and not (char.isalnum() or char == "_"):
        return "\\" + char
    return char


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
            out.append(_escape(char))
    return "".join(out)


def _re2_problem(exc: Exception) -> str:
    detail = exc.args[0] if exc.args else exc
    if isinstance(detail, bytes):
        detail = detail.decode("utf-8", "replace")
    if str(detail).startswith("pattern too large"):
        return f"too complex: compiles to more than {_MAX_PROGRAM_MEM >> 20} MiB of RE2 program"
    return str(detail)


def _compile(kind: PatternKind, source: str, expression: str) -> Pattern:
    if not source:
        raise PatternError(kind, source, "empty pattern")
    if len(source) > MAX_PATTERN_LEN:
        raise PatternError(kind, source[:40] + "...", f"longer than {MAX_PATTERN_LEN} characters")
    try:
        compiled = re2.compile(expression, _options())
        fast = re2.compile(expression, _options(capture=False)) if compiled.groups else None
    except re2.error as exc:
        raise PatternError(kind, source, _re2_problem(exc)) from None
    except UnicodeEncodeError:
        raise PatternError(kind, source, "not valid Unicode (a lone surrogate)") from None
    size = compiled.programsize
    if size > MAX_PROGRAM_SIZE:
        raise PatternError(
            kind,
            source,
            f"too complex: compiles to {size} RE2 instructions, more than {MAX_PROGRAM_SIZE}"
            " (use fewer or smaller counted repetitions such as {n})",
        )
    return Pattern(kind=kind, source=source, _compiled=compiled, _fast=fast)


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
