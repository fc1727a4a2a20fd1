"""Unit tests for minerguard.domain.patterns: globs, RE2 regexes, linear time, bounded input."""

from __future__ import annotations

import fnmatch

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from minerguard.domain.patterns import (
    MAX_PROGRAM_SIZE,
    MAX_VALUE_LEN,
    Pattern,
    PatternError,
    PatternSet,
    bounded,
    compile_glob,
    compile_pattern,
    compile_regex,
)
from minerguard.domain.policy import PolicyInvalid, parse_policy

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


# Patterns that take a backtracking engine exponential (or high polynomial) time. RE2 accepts
# them and stays linear: the pytest timeout is only a guard against a hang.
CATASTROPHIC = [
    "(a+)+$",
    "(a|aa)*b",
    "(a|a)*b",
    "(.*a){20}",
    "((a*)*)*b",
    "(a*)*$",
    "(x+x+)+y",
    "(\\w+\\s?)*$",
    "^(([a-z])+.)+[A-Z]([a-z])+$",
    "(" + "|".join(f"w{i}x" for i in range(100)) + ")+$",  # a huge alternation
    "[ab]*a[ab]{200}",  # a DFA with 2^200 states
]
HOSTILE_INPUTS = ["a" * MAX_VALUE_LEN, "a" * 50000 + "!", "ab" * 30000, "x" * 40000 + "y" * 20000, "w1x" * 20000]


@pytest.mark.timeout(60)
@pytest.mark.parametrize("regex", CATASTROPHIC)
def test_catastrophic_regexes_are_accepted_and_stay_linear(regex: str) -> None:
    pattern = compile_regex(regex)
    for value in HOSTILE_INPUTS:
        pattern.matches(value)
        pattern.find(value, prefer_group=True)
        PatternSet((pattern,)).may_match(value)


@pytest.mark.parametrize(
    ("regex", "problem"),
    [
        ("(a)\\1", "invalid escape sequence: \\1"),  # backreference
        ("(?P<x>a)(?P=x)", "invalid perl operator: (?P"),  # named backreference
        ("(?P<x>a)\\k<x>", "invalid escape sequence: \\k"),
        ("(?=a)", "invalid perl operator: (?="),  # lookahead
        ("(?!a)b", "invalid perl operator: (?!"),
        ("(?<=a)b", "invalid perl operator: (?<"),  # lookbehind
        ("(?<!a)b", "invalid perl operator: (?<"),
        ("x{1001}", "invalid repetition size"),
        ("((a{100}){100}){100}", "invalid repetition size"),
        ("[a-z]{1000}", f"more than {MAX_PROGRAM_SIZE}"),
        ("(.*a){1000}", f"more than {MAX_PROGRAM_SIZE}"),
        ("(?:\\w+\\W+){500}", f"more than {MAX_PROGRAM_SIZE}"),
        ("\\pL{1000}", "more than 2 MiB"),
        ("a\ud800", "not valid Unicode"),
        ("a**", "bad repetition operator: **"),
    ],
)
def test_regexes_re2_cannot_run_in_linear_time_or_bounded_memory_are_refused(regex: str, problem: str) -> None:
    with pytest.raises(PatternError) as caught:
        compile_regex(regex)
    assert problem in caught.value.problem
    assert str(caught.value).startswith(f"invalid regex {regex[:40]!r}")


def test_refusals_reach_the_policy_as_invalid_regex_naming_the_field() -> None:
    policy = {
        "kind": "MinerPolicy",
        "metadata": {"name": "p"},
        "spec": {"mode": "Audit", "signals": {"arguments": [{"glob": "ok"}, {"regex": "(.*a){1000}"}]}},
    }
    with pytest.raises(PolicyInvalid) as caught:
        parse_policy(policy)
    assert caught.value.reason == "InvalidRegex"
    assert caught.value.message.startswith("spec.signals.arguments[1].regex: invalid regex '(.*a){1000}': too complex")


def test_globs_with_lone_surrogates_are_refused_not_crashed() -> None:
    with pytest.raises(PatternError, match="not valid Unicode"):
        compile_glob("x\udfff*")


def test_values_with_lone_surrogates_are_matched_as_replacement_characters() -> None:
    assert compile_regex("xmrig").matches("\ud800xmrig") is True
    assert compile_regex("a.b").find("a\udc80b") == "a\ufffdb"
    assert compile_glob("*xmrig").matches("\ud800xmrig") is True
    assert PatternSet((compile_regex("xmrig"),)).may_match("\ud800xmrig") is True
    assert PatternSet((compile_regex("xmrig"),)).may_match_lines("a\nb\ud800\nxmrig") is True


def test_groups_are_found_even_though_yes_no_matching_skips_them() -> None:
    pattern = compile_regex("(x+)(y)?z")
    assert pattern.matches("xxz") is True
    assert pattern.find("axxz") == "xxz"
    assert pattern.find("axxz", prefer_group=True) == "xx"


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


LINE_PATTERNS = (
    *SET_PATTERNS,
    compile_glob("*x*y"),
    compile_regex("\\bab\\b"),
    compile_regex("^c$"),
    compile_regex("(?s).a"),
)


@given(values=st.lists(st.text(alphabet="abcxy.\n ", max_size=6), max_size=6))
@settings(max_examples=400, deadline=None)
def test_pattern_set_lines_check_never_misses_a_value(values: list[str]) -> None:
    patterns = PatternSet(LINE_PATTERNS)
    if any(patterns.may_match(value) for value in values):
        assert patterns.may_match_lines("\n".join(values)) is True


@pytest.mark.parametrize("regex", ["\\Aab", "ab\\z", "(?-m)^ab", "(?i-m:^ab)", "(?-sm:ab$)"])
def test_pattern_set_lines_check_is_skipped_for_whole_text_anchors(regex: str) -> None:
    patterns = PatternSet((compile_regex(regex),))
    assert patterns.may_match("ab") is True
    assert patterns.may_match_lines("x\nab\ny") is True  # no pre-check: always "maybe"
    assert PatternSet((compile_regex("(?m)^ab"), compile_regex("(?i)ab"))).may_match_lines("x\ny") is False


def test_pattern_set_lines_check_examples() -> None:
    patterns = PatternSet(SET_PATTERNS)
    assert patterns.may_match_lines("nginx\nxmrig-6\nsh") is True
    assert patterns.may_match_lines("nginx\npool.supportxmr.com\nsh") is True
    assert patterns.may_match_lines("nginx\npool.supportxmr.com.evil\nsh") is False
    assert patterns.may_match_lines("nginx\nsh") is False
    assert PatternSet(()).may_match_lines("xmrig") is False
