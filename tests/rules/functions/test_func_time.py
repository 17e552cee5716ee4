"""Date and time functions, UUIDs and environment access."""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from typing import Any

import pytest

from mqferry._rules import RuleEvalError


@pytest.mark.parametrize(
    ("sql", "expected"),
    [
        ("rfc3339_to_unix_ts('2021-01-01T00:00:00Z')", 1609459200),
        ("rfc3339_to_unix_ts('2021-01-01T08:00:00+08:00')", 1609459200),
        ("rfc3339_to_unix_ts('2021-01-01T00:00:00.123Z', 'millisecond')", 1609459200123),
        ("format_date('second', 'Z', '%Y-%m-%d %H:%M:%S', 1609459200)", "2021-01-01 00:00:00"),
        (
            "format_date('millisecond', '+08:00', '%Y-%m-%dT%H:%M:%S.%3N%:z', 1609459200123)",
            "2021-01-01T08:00:00.123+08:00",
        ),
        ("format_date('second', 3600, '%H%z', 0)", "01+0100"),
        ("format_date('second', '-05:30', '%::z', 0)", "-05:30:00"),
        ("date_to_unix_ts('second', '%Y-%m-%d %H:%M:%S', '2021-01-01 00:00:00')", 1609459200),
        (
            "date_to_unix_ts('second', '+08:00', '%Y-%m-%d %H:%M:%S', '2021-01-01 08:00:00')",
            1609459200,
        ),
        (
            "date_to_unix_ts('millisecond', '%Y-%m-%d %H:%M:%S.%3N%:z', "
            "'2021-01-01 08:00:00.500+08:00')",
            1609459200500,
        ),
        ("timezone_to_offset_seconds('+08:00')", 28800),
        ("timezone_to_second('Z')", 0),
        ("timezone_to_offset_seconds('-01:30')", -5400),
    ],
)
def test_time(expr: Callable[..., Any], sql: str, expected: Any) -> None:
    assert expr(sql) == expected


def test_now_timestamp_units(expr: Callable[..., Any]) -> None:
    before = int(time.time())
    assert before - 1 <= expr("now_timestamp()") <= before + 2
    assert abs(expr("now_timestamp('millisecond')") - time.time() * 1000) < 5000


def test_rfc3339_round_trip(expr: Callable[..., Any]) -> None:
    text = expr("unix_ts_to_rfc3339(1609459200123, 'millisecond')")
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.123[+-]\d\d:\d\d", text)
    assert expr(f"rfc3339_to_unix_ts('{text}', 'millisecond')") == 1609459200123
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d[+-]\d\d:\d\d", expr("now_rfc3339()"))


def test_uuids(expr: Callable[..., Any]) -> None:
    assert re.fullmatch(
        r"[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[0-9a-f]{4}-[0-9a-f]{12}", expr("uuid_v4()")
    )
    assert re.fullmatch(r"[0-9a-f]{32}", expr("uuid_v4_no_hyphen()"))


def test_getenv_reads_only_prefixed_variables(
    expr: Callable[..., Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("EMQXVAR_SITE", "plant-7")
    monkeypatch.setenv("SITE", "secret")
    assert expr("getenv('SITE')") == "plant-7"
    assert expr("getenv('NOPE')") is None


@pytest.mark.parametrize(
    "sql",
    [
        "now_timestamp('hour')",
        "rfc3339_to_unix_ts('yesterday')",
        "date_to_unix_ts('second', '%Y', '20x1')",
        "timezone_to_offset_seconds('+8')",
    ],
)
def test_time_errors(expr: Callable[..., Any], sql: str) -> None:
    with pytest.raises(RuleEvalError):
        expr(sql)
