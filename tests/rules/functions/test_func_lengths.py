"""Functions whose output size a caller chooses refuse sizes past their limits."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import pytest

from mqferry._rules import RuleEvalError
from mqferry._rules.functions._args import MAX_RESULT_SIZE
from mqferry._rules.functions.bits import MAX_INT_BITS, bitsl

Expr = Callable[..., Any]


@pytest.mark.parametrize(
    ("sql", "message"),
    [
        ("pad('a', 1000000000)", "padded length 1000000000 exceeds the limit of 16 MiB"),
        ("pad('a', 10000000, 'leading', 'xyz')", "padded length 30000000 exceeds"),
        ("sprintf('~999999999s', 'a')", "field width 999999999 exceeds the limit of 16 MiB"),
        ("sprintf('~-999999999s', 'a')", "field width 999999999 exceeds"),
        ("sprintf('~*c', 1000000000, 65)", "field width 1000000000 exceeds"),
        ("sprintf('~.999999999f', 1.5)", "precision 999999999 exceeds the limit of 16 MiB"),
        ("sprintf('~.300f', 1.5)", "precision 300 exceeds the limit of 253 digits"),
        ("sprintf('~*s', 'wide', 'a')", "expected an integer field width, got string"),
        ("float(1.5, 1000000000)", "1000000000 decimals exceeds the limit of 253"),
        ("float2str(1.5, 254)", "254 decimals exceeds the limit of 253"),
        ("bitsl(1, 1000000000000)", "would be 1000000000001 bits wide, over the limit of 4096"),
        ("bitsl(3, 4095)", "would be 4097 bits wide"),
    ],
)
def test_sizes_past_the_limits_are_clear_errors(expr: Expr, sql: str, message: str) -> None:
    with pytest.raises(RuleEvalError, match=message):
        expr(sql)


@pytest.mark.parametrize(
    ("sql", "size"),
    [
        (f"pad('a', {MAX_RESULT_SIZE})", MAX_RESULT_SIZE),
        (f"sprintf('~{MAX_RESULT_SIZE}s', 'a')", MAX_RESULT_SIZE),
        ("str(float(1.5, 253))", None),
    ],
)
def test_sizes_at_the_limits_are_built(expr: Expr, sql: str, size: int | None) -> None:
    out = expr(sql)
    assert size is None or len(out) == size


def test_shifts_within_the_limit() -> None:
    assert bitsl(1, MAX_INT_BITS - 1) == 1 << (MAX_INT_BITS - 1)
    assert bitsl(0, 10**12) == 0
    assert bitsl(5, 0) == 5


def test_unescape_is_linear(expr: Expr) -> None:
    # each \x escape sliced the rest of the text: 200,000 escapes copied 80 GB
    text = "\\x41" * 200_000
    began = time.monotonic()
    assert expr("unescape(payload)", payload=text.encode()) == "A" * 200_000
    assert time.monotonic() - began < 5


def test_a_date_format_cannot_backtrack(expr: Expr) -> None:
    # `%m` is one or two digits: a backtracking engine tries 2^30 splits before giving up
    fmt, text = "%m" * 30, "1" * 59 + "x"
    began = time.monotonic()
    with pytest.raises(RuleEvalError, match="does not match the format"):
        expr(f"date_to_unix_ts('second', '{fmt}', '{text}')")
    assert time.monotonic() - began < 5
    assert expr("date_to_unix_ts('second', '%Y-%m-%d %H:%M:%S', '2024-01-02 03:04:05')") \
        == 1704164645


def test_replace_refuses_a_result_past_the_limit_before_building_it(expr: Expr) -> None:
    # 6000 matches each replaced by 6000 characters: 36,000,000 characters
    payload = b'{"s": "' + b"a" * 6000 + b'", "r": "' + b"b" * 6000 + b'"}'
    began = time.process_time()
    with pytest.raises(RuleEvalError, match="replaced length 36000000 exceeds the limit of 16 MiB"):
        expr("strlen(replace(payload.s, 'a', payload.r))", payload=payload)
    assert time.process_time() - began < 1.0
    # the other modes replace one occurrence, the limit applies all the same
    assert expr("strlen(replace(payload.s, 'a', payload.r, 'leading'))", payload=payload) == 11999


@pytest.mark.parametrize("fn", ["replace", "regex_replace"])
def test_replacing_up_to_the_limit_is_built(expr: Expr, fn: str) -> None:
    count = 4096
    repl = "b" * (MAX_RESULT_SIZE // count)
    out = expr(f"{fn}(payload, 'a', '{repl}')", payload=b"a" * count)
    assert len(out) == MAX_RESULT_SIZE
    with pytest.raises(RuleEvalError, match=r"replaced length \d+ exceeds the limit of 16 MiB"):
        expr(f"{fn}(payload, 'a', '{repl}')", payload=b"a" * (count + 1))
