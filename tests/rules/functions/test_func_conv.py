"""Type conversion, type checks and null handling."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from mqferry._rules import RuleEvalError


@pytest.mark.parametrize(
    ("sql", "expected"),
    [
        ("str(1)", "1"),
        ("str(1.5)", "1.5"),
        ("str(0.1 + 0.2)", "0.3"),
        ("str(2.0)", "2.0"),
        ("str(true)", "true"),
        ("str(payload.arr)", "[1,2,3]"),
        ("str(payload.nested)", '{"a":{"b":"deep"}}'),
        ("str_utf8('é')", "é"),
        ("str_utf16_le('a')", b"a\x00"),
        ("int('12')", 12),
        ("int('1.9')", 1),
        ("int(-1.5)", -2),
        ("int(true)", 1),
        ("int(7)", 7),
        ("float(1)", 1.0),
        ("float('1.5')", 1.5),
        ("float('2')", 2.0),
        ("float(3.14159, 2)", 3.14),
        ("float2str(3.14159, 2)", "3.14"),
        ("float2str(2.0, 5)", "2.0"),
        ("bool('true')", True),
        ("bool(0)", False),
        ("bool(1.0)", True),
        ("bool(false)", False),
        ("map('{\"a\": 1}')", {"a": 1}),
        ("map(payload.nested)", {"a": {"b": "deep"}}),
        ("bin2hexstr('ab')", "6162"),
        ("hexstr2bin('6162')", b"ab"),
        ("sqlserver_bin2hexstr('ab')", "0x6162"),
        ("is_null(payload.missing)", True),
        ("is_null(payload.nothing)", False),
        ("is_null_var(payload.nothing)", True),
        ("is_not_null(clientid)", True),
        ("is_not_null_var(payload.missing)", False),
        ("is_empty('')", True),
        ("is_empty(payload.arr)", False),
        ("is_empty(map_new())", True),
        ("is_str('a')", True),
        ("is_str(1)", False),
        ("is_bool(true)", True),
        ("is_bool(1)", False),
        ("is_int(1)", True),
        ("is_int(1.0)", False),
        ("is_int(true)", False),
        ("is_float(1.0)", True),
        ("is_float(1)", False),
        ("is_num(1)", True),
        ("is_num(1.5)", True),
        ("is_num('1')", False),
        ("is_map(payload.nested)", True),
        ("is_map(payload.arr)", False),
        ("is_array(payload.arr)", True),
        ("is_array('a')", False),
        ("coalesce(payload.missing, 'd')", "d"),
        ("coalesce(clientid, 'd')", "c_emqx"),
        ("coalesce([payload.missing, payload.nothing, 3])", 3),
        ("coalesce_ne('', 'x')", "x"),
        ("is_null(null())", True),
    ],
)
def test_conversions(expr: Callable[..., Any], sql: str, expected: Any) -> None:
    result = expr(sql)
    assert result == expected
    assert type(result) is type(expected)


@pytest.mark.parametrize(
    "sql",
    [
        "int('abc')",
        "int('1e3')",
        "float('x')",
        "bool('yes')",
        "bool(2)",
        "map('[1]')",
        "hexstr2bin('zz')",
        "float(1.5, 0)",
    ],
)
def test_conversion_errors(expr: Callable[..., Any], sql: str) -> None:
    with pytest.raises(RuleEvalError):
        expr(sql)
