"""Regular expressions: linear-time matching on RE2, PCRE features under a time limit."""

from __future__ import annotations

import re
import resource
import time
from collections.abc import Callable
from typing import Any

import pytest

from mqferry._rules import RuleCompileError, RuleEvalError, compile_sql
from mqferry._rules.functions.regex import BACKTRACKING_TIMEOUT_S
from tests.rules.conftest import make_event

Expr = Callable[..., Any]


def _seconds(call: Callable[[], Any], repeat: int = 1) -> float:
    began = time.perf_counter()
    for _ in range(repeat):
        call()
    return (time.perf_counter() - began) / repeat


def _peak_kib() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


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


def test_an_invalid_literal_pattern_refuses_the_rule(expr: Expr) -> None:
    with pytest.raises(RuleCompileError, match="line 1, col 8: regex_match\\(\\): invalid "
                       "regular expression '\\(': missing \\)"):
        expr("regex_match(payload, '(')")


def test_a_pattern_from_the_message_fails_that_message_only(expr: Expr) -> None:
    rule = compile_sql('SELECT regex_match(payload.s, payload.p) AS r FROM "#"')
    with pytest.raises(RuleEvalError, match="invalid regular expression '\\(a'"):
        rule.apply(make_event(payload=b'{"s": "a", "p": "(a"}'))
    assert rule.apply(make_event(payload=b'{"s": "a", "p": "^a$"}')) == {"r": True}


@pytest.mark.parametrize("pattern", [
    "((a{1000}){1000}){1000}",  # asked the backtracking engine for 23 GB
    "((a{1000}){1000}){3}",  # 2.2 s and 1.1 GB to compile
    "(a{1000}){2}\\1",
    "a{1001}(?=a)",
    "(?:(?:a{10}){10}){11}\\1",
    "a{0,1001}\\1",
    "a{99999999999999999999999}\\1",
    "(?x)(a{ 1 0 0 0 }) {2}\\1",  # extended: spaces inside and before a quantifier
    "(?x)(a{1000}) # comment\n {2}\\1",
])
def test_nested_repetitions_over_1000_are_refused_at_once(pattern: str) -> None:
    began = time.process_time()  # CPU time: a busy machine pausing us is not the pattern
    peak = _peak_kib()
    with pytest.raises(RuleCompileError, match=f"regular expression {re.escape(repr(pattern))} "
                       "refused: its counted repetitions repeat a part \\d+ times, over the "
                       "limit of 1000"):
        compile_sql(f"SELECT regex_match(payload, '{pattern}') AS m FROM \"t/#\"")
    assert time.process_time() - began < 0.5
    assert _peak_kib() - peak < 50_000


@pytest.mark.parametrize(("pattern", "why"), [
    ("(x)\\1" + "a{1000}" * 11, "written out, its counted repetitions make more than 10000"),
    ("(x)\\1" + "a" * 10_000, "it is longer than 10000 characters"),
    ("[a-z]{1000}" * 1000, "it is longer than 10000 characters"),
    ("(x)\\1" + "(?:(?=a)b{100}){10}" * 11, "written out"),
    ("a(?x)b\\1", "the x flag is only supported at the start of the pattern"),
    ("(?-x:a)\\1", "the x flag is only supported at the start"),
])
def test_patterns_too_large_to_compile_are_refused(pattern: str, why: str) -> None:
    with pytest.raises(RuleCompileError, match=re.escape(why)):
        compile_sql(f"SELECT regex_match(payload, '{pattern}') AS m FROM \"t/#\"")


def test_a_pattern_re2_finds_too_large_is_not_handed_to_the_backtracking_engine() -> None:
    pattern = "(\\w{1000}){1}" * 200  # RE2: "pattern too large"
    with pytest.raises(RuleCompileError, match="refused: it is too large"):
        compile_sql(f"SELECT regex_match(payload, '{pattern}') AS m FROM \"t/#\"")


def test_a_refused_pattern_from_the_message_fails_fast(expr: Expr) -> None:
    rule = compile_sql('SELECT regex_match(payload.s, payload.p) AS r FROM "#"')
    began = time.process_time()
    with pytest.raises(RuleEvalError, match="refused: its counted repetitions"):
        rule.apply(make_event(payload=b'{"s": "a", "p": "((a{1000}){1000}){1000}"}'))
    assert time.process_time() - began < 0.5


@pytest.mark.parametrize("pattern", [
    "(a{1000})\\1", "(?<=x)a{1000}", "[[:alpha:]]{500}(?!b)", "\\p{L}{3}(?=x)",
    "(?x) (a {3}) # three\n \\1", "(?i)(ab){10}\\1", "(\\d{1,3})(?:\\.\\1){3}",
])
def test_pcre_patterns_within_the_bounds_compile(pattern: str) -> None:
    rule = compile_sql(f"SELECT regex_match(payload, '{pattern}') AS m FROM \"t/#\"")
    assert rule.blocking  # the backtracking engine runs them


def test_only_rules_that_may_need_the_backtracking_engine_leave_the_loop() -> None:
    def blocking(sql: str) -> bool:
        return compile_sql(f'SELECT {sql} AS r FROM "#"').blocking
    assert not blocking("regex_match(payload, '^a+$')")
    assert not blocking("regex_replace(payload, '(\\d+)', '<\\1>')")
    assert not blocking("regex_extract(payload, 'a{1000}')")
    assert blocking("regex_match(payload, '(a)\\1')")
    assert blocking("regex_replace(payload, '(?=a)(a|aa)+b', 'X')")
    assert blocking("regex_extract(payload, payload.p)")
    assert blocking("regex_match(payload, concat('a', 'b'))")


def test_regex_replace_refuses_an_oversized_result(expr: Expr) -> None:
    payload = b"a" * 6000
    repl = "b" * 6000
    began = time.perf_counter()
    with pytest.raises(RuleEvalError, match=r"replaced length \d+ exceeds the limit of 16 MiB"):
        expr(f"regex_replace(payload, 'a', '{repl}')", payload=payload)
    with pytest.raises(RuleEvalError, match="exceeds the limit of 16 MiB"):
        expr("regex_replace(payload, '(a+)', '" + "\\1" * 3000 + "')", payload=payload)
    with pytest.raises(RuleEvalError, match="exceeds the limit of 16 MiB"):  # backtracking
        expr(f"regex_replace(payload, 'a(?!x)', '{repl}')", payload=payload)
    assert time.perf_counter() - began < 5
    # up to the limit the result is built
    assert expr("regex_replace(payload, 'a', 'bb')", payload=payload) == "bb" * 6000


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


def test_a_pattern_from_the_message_holding_all_letters_a_hundred_times_is_refused(
        expr: Expr) -> None:
    # ~5 MiB on RE2 each: with a new one in every message the pattern cache grew to 1.2 GB
    rule = compile_sql('SELECT regex_match(payload.s, payload.p) AS r FROM "#"')
    with pytest.raises(RuleEvalError, match=re.escape("too large (RE2 needs more than its 1 MiB")):
        rule.apply(make_event(payload=b'{"s": "abc", "p": "\\\\pL{100}"}'))


def test_the_compiled_patterns_kept_are_bounded() -> None:
    from mqferry._rules.functions import regex

    rule = compile_sql('SELECT regex_match(payload.s, payload.p) AS r FROM "#"')
    for i in range(200):
        rule.apply(make_event(payload=b'{"s": "abc", "p": "<%d>.{100}"}' % i))
    assert regex._compile_re2.cache_info().currsize <= 64


def test_regex_replace_with_a_match_at_every_character_fails_at_its_time_limit(
        expr: Expr) -> None:
    # each replacement is Python work: 500,000 of them held the loop for 2.3 s
    began = time.perf_counter()
    with pytest.raises(RuleEvalError, match="exceeded its time limit of 100 ms after"):
        expr("regex_replace(payload, 'a', 'b')", payload=b"a" * 500_000)
    assert time.perf_counter() - began < 20 * BACKTRACKING_TIMEOUT_S
    assert expr("regex_replace(payload, 'a', 'b')", payload=b"a" * 1000) == "b" * 1000
