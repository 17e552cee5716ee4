"""Regular expressions: linear-time matching on RE2, PCRE features under a time limit."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import pytest

from mqferry._rules import RuleEvalError
from mqferry._rules.functions.regex import BACKTRACKING_TIMEOUT_S

Expr = Callable[..., Any]


def _seconds(call: Callable[[], Any], repeat: int = 1) -> float:
    began = time.perf_counter()
    for _ in range(repeat):
        call()
    return (time.perf_counter() - began) / repeat


def _trivial(expr: Expr) -> float:
    """Seconds for one trivial regex_match through the whole rule, the yardstick for bounds."""
    return _seconds(lambda: expr("regex_match(payload, 'ab')", payload=b"xxab"), repeat=50)


@pytest.mark.parametrize("size", [28, 40, 4000])
def test_a_catastrophic_pattern_returns_at_once(expr: Expr, size: int) -> None:
    # A backtracking engine doubles its work per character: 28 bytes took 7.7 s, 40 take hours.
    hostile = b"a" * (size - 1) + b"!"
    took = _seconds(lambda: expr("regex_match(payload, '^(a+)+$')", payload=hostile))
    assert expr("regex_match(payload, '^(a+)+$')", payload=hostile) is False
    assert took < 0.5 + 200 * _trivial(expr)


def test_pcre_features_re2_refuses_still_work(expr: Expr) -> None:
    assert expr("regex_match(payload, '^(\\w+)-\\1$')", payload=b"ab-ab") is True
    assert expr("regex_match(payload, '^(\\w+)-\\1$')", payload=b"ab-ba") is False
    assert expr("regex_extract(payload, '(?<=temp=)(\\d+)')", payload=b"id=7 temp=25") == ["25"]
    assert expr("regex_replace(payload, 'a(?!b)', 'X')", payload=b"ab ac") == "ab Xc"
    assert expr("regex_match(payload, '^a*+a')", payload=b"aaa") is False  # possessive


def test_a_backtracking_pattern_fails_cleanly_at_its_time_limit(expr: Expr) -> None:
    hostile = b"a" * 39 + b"!"
    began = time.perf_counter()
    with pytest.raises(RuleEvalError, match="exceeded its time limit of 100 ms"):
        expr("regex_match(payload, '^(a|aa)+\\1$')", payload=hostile)
    took = time.perf_counter() - began
    assert took < 20 * BACKTRACKING_TIMEOUT_S
    # the failure is per call: the next one works
    assert expr("regex_match(payload, '^(a|aa)+\\1$')", payload=b"aaaa") is True


def test_regex_replace_on_the_backtracking_engine_is_bounded_too(expr: Expr) -> None:
    with pytest.raises(RuleEvalError, match="exceeded its time limit"):
        expr("regex_replace(payload, '(a|aa)+\\1!', 'x')", payload=b"a" * 60)


@pytest.mark.parametrize(
    ("sql", "payload", "want"),
    [
        # PCRE's $ and \Z also match before a final newline; \z only at the very end
        ("regex_match(payload, 'c$')", b"abc\n", True),
        ("regex_match(payload, 'c\\Z')", b"abc\n", True),
        ("regex_match(payload, 'c\\z')", b"abc\n", False),
        ("regex_match(payload, 'c$')", b"abc\nd", False),
        ("regex_match(payload, '(?m)c$')", b"abc\nd", True),
        ("regex_extract(payload, '=(\\d+)$')", b"k=12\n", ["12"]),
        ("regex_extract(payload, '(\\d)(x)?$')", b"a1 b2\n", ["2", ""]),
        ("regex_match(payload, '^[0-9]+\\Z')", b"123\n", True),
        ("regex_match(payload, '^(\\w+)\\Z\\1')", b"ab", False),  # backtracking engine's \Z
        # groups: numbered, named, not taking part
        ("regex_extract(payload, '(?<y>\\d{4})-(?P<m>\\d{2})')", b"on 2024-05", ["2024", "05"]),
        ("regex_extract(payload, '(a)|(b)')", b"b", ["", "b"]),
        # offsets are characters, not UTF-8 bytes
        ("regex_replace(payload, '(\\d+)', '<\\1>')", "été 12 €".encode(), "été <12> €"),
        ("regex_replace(payload, '.', '&&')", "é€".encode(), "éé€€"),
        ("regex_replace(payload, 'x*', '-')", b"abxd", "-a-b--d-"),
        ("regex_replace(payload, '(a)(b)?', '[\\2\\1\\9]')", b"ab a", "[ba] [a]"),
        # PCRE classes and escapes RE2 reads
        ("regex_match(payload, '^[[:alpha:]]+\\d\\b')", b"abc1 x", True),
        ("regex_match(payload, '(?i)^ABC$')", b"abc", True),
        ("regex_match(payload, '\\d')", "٣".encode(), False),  # ASCII digits, as PCRE
    ],
)
def test_match_semantics(expr: Expr, sql: str, payload: bytes, want: Any) -> None:
    assert expr(sql, payload=payload) == want


def test_an_invalid_pattern_is_a_clear_error(expr: Expr) -> None:
    with pytest.raises(RuleEvalError, match="invalid regular expression '\\(': missing \\)"):
        expr("regex_match(payload, '(')")


def test_refused_patterns_write_nothing_to_stderr(
        expr: Expr, capfd: pytest.CaptureFixture[str]) -> None:
    expr("regex_match(payload, '(a)\\1 unlogged')")
    assert "Error parsing" not in capfd.readouterr().err


def test_a_long_replacement_template_is_read_in_linear_time(expr: Expr) -> None:
    # the template was sliced once per group reference: quadratic in its length
    template = "\\1" * 200_000
    took = _seconds(lambda: expr(f"regex_replace('a', '(a)', '{template}')"))
    assert expr(f"regex_replace('a', '(a)', '{template}')") == "a" * 200_000
    assert took < 5.0
