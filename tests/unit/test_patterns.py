"""Unit tests for minerguard.patterns: globs, RE2 regexes, linear time, bounded input."""

from __future__ import annotations

import fnmatch

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from minerguard.patterns import (
    MAX_VALUE_LEN,
    Pattern,
    PatternError,
    PatternSet,
    bounded,
    compile_glob,
    compile_pattern,
    compile_regex,
)

pytestmark = pytest.mark.unit


@pytest.mark.parametrize(
    ("glob", "value", "expected"),
    [
        ("xmrig*", "xmrig", True),
        ("xmrig*", "XMRig-6.21.0", True),
        ("xmrig*", "my-xmrig", False),  # whole value, not a search
        ("*xmrig*", "docker.io/foo/xmrig:6.21", True),  # * crosses /
        ("xmrig:*", "xmrig:latest", True),
        ("t-rex", "T-Rex", True),
        ("t-rex", "t_rex", False),
        ("a?c", "abc", True),
        ("a?c", "ac", False),
        ("a.b", "axb", False),  # regex metacharacters are literal
        ("a+b", "a+b", True),
        ("[ab]x", "bx", True),
        ("[ab]x", "cx", False),
        ("[!ab]x", "cx", True),
        ("[!ab]x", "ax", False),
        ("[a-c]", "B", True),
        ("[z-a]", "a", False),  # empty range: never matches, as in fnmatch
        ("[abc", "[abc", True),  # unclosed bracket is a literal
        ("--donate-level*", "--donate-level=1", True),
        ("(x)", "(x)", True),
        ("a\\b", "a\\b", True),
    ],
)
def test_glob_matches_whole_value_case_insensitively(glob: str, value: str, expected: bool) -> None:
    assert compile_glob(glob).matches(value) is expected


@given(
    glob=st.text(alphabet="ab*?[]!", min_size=1, max_size=8),
    value=st.text(alphabet="abAB[]!", max_size=8),
)
@settings(max_examples=400, deadline=None)
def test_glob_agrees_with_fnmatch(glob: str, value: str) -> None:
    expected = fnmatch.fnmatchcase(value.lower(), glob.lower())
    assert compile_glob(glob).matches(value) is expected


@pytest.mark.parametrize(
    ("regex", "value", "expected"),
    [
        (r"rx/0", "-a RX/0 --threads 4", True),  # searched, case-insensitive
        (r"^xmrig$", "xmrig", True),
        (r"^xmrig$", "xmrig2", False),
        (r"(^|\.)supportxmr\.com$", "pool.SupportXMR.com", True),
        (r"(^|\.)supportxmr\.com$", "supportxmr.com.evil.example", False),
        (r"\d{4}", "port 3333", True),
    ],
)
def test_regex_is_searched_case_insensitively(regex: str, value: str, expected: bool) -> None:
    assert compile_regex(regex).matches(value) is expected


@pytest.mark.parametrize("bad", ["(", "(?<=a)b", "a{2,1}", "[z-a]", "x**", "\\"])
def test_bad_regex_raises_an_error_naming_the_pattern(bad: str) -> None:
    with pytest.raises(PatternError) as caught:
        compile_regex(bad)
    assert repr(bad) in str(caught.value)
    assert caught.value.pattern == bad
    assert caught.value.kind == "regex"
    assert caught.value.problem


def test_catastrophic_pattern_runs_in_linear_time() -> None:
    # A backtracking engine takes exponential time on these; RE2 returns at once.
    assert compile_regex("(a+)+$").matches("a" * 50000 + "!") is False
    assert compile_regex("(a+)+!$").matches("a" * 50000 + "!") is True
    assert compile_regex("(a|aa)*b").matches("a" * 50000) is False
    assert compile_glob("*a*a*a*a*a*a*a*b").matches("a" * 50000) is False


def test_values_are_scanned_up_to_64_kib_only() -> None:
    needle = compile_regex("needle")
    assert needle.matches("x" * (MAX_VALUE_LEN - 6) + "needle") is True
    assert needle.matches("x" * MAX_VALUE_LEN + "needle") is False
    assert len(bounded("y" * (MAX_VALUE_LEN * 2))) == MAX_VALUE_LEN
    assert bounded("short") == "short"


def test_find_returns_the_matched_text_or_the_first_group() -> None:
    pattern = compile_regex(r"(?:^|\s)(4[a-z]{3})(?:\s|$)")
    assert pattern.find("wallet 4abc here") == " 4abc "
    assert pattern.find("wallet 4abc here", prefer_group=True) == "4abc"
    assert pattern.find("nothing") is None
    assert compile_glob("x*").find("xyz") == "xyz"
    assert compile_glob("x*").find("abc") is None


def test_compile_pattern_needs_exactly_one_kind() -> None:
    assert compile_pattern("x*", None).kind == "glob"
    assert compile_pattern(None, "x").kind == "regex"
    with pytest.raises(PatternError, match="exactly one"):
        compile_pattern("x", "y")
    with pytest.raises(PatternError, match="exactly one"):
        compile_pattern(None, None)


def test_empty_and_overlong_patterns_are_refused() -> None:
    with pytest.raises(PatternError, match="empty"):
        compile_glob("")
    with pytest.raises(PatternError, match="longer than 512"):
        compile_regex("a" * 513)


def test_patterns_compare_by_kind_and_source() -> None:
    assert compile_glob("x*") == compile_glob("x*")
    assert compile_glob("x*") != compile_regex("x*")
    assert len({compile_glob("x*"), compile_glob("x*")}) == 1


SET_PATTERNS = (
    compile_glob("xmrig*"),
    compile_glob("[ab]?c"),
    compile_regex(r"(^|\.)supportxmr\.com$"),
    compile_regex("(?i)rx/0"),
    compile_regex("a|b$"),
)


@given(value=st.text(alphabet="xmrigabc.supportxmr.com/0", max_size=20))
@settings(max_examples=300, deadline=None)
def test_pattern_set_is_an_exact_any_check(value: str) -> None:
    assert PatternSet(SET_PATTERNS).may_match(value) is any(p.matches(value) for p in SET_PATTERNS)


def test_pattern_set_examples() -> None:
    patterns = PatternSet(SET_PATTERNS)
    assert patterns.may_match("XMRig-6") is True
    assert patterns.may_match("pool.supportxmr.com") is True
    assert patterns.may_match("nginx") is False
    assert PatternSet(()).may_match("anything") is False
    assert PatternSet(SET_PATTERNS) == PatternSet(SET_PATTERNS)
    assert hash(PatternSet(SET_PATTERNS)) == hash(PatternSet(SET_PATTERNS))


def test_pattern_set_without_a_combined_program_tries_everything() -> None:
    patterns: tuple[Pattern, ...] = (compile_regex("x"),)
    fallback = PatternSet(patterns)
    object.__setattr__(fallback, "_combined", None)  # as when the combined program is too big
    assert fallback.may_match("nothing") is True
