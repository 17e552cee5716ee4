"""Math functions and operators-as-functions."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import pytest

from mqferry._rules import RuleEvalError


@pytest.mark.parametrize(
    ("sql", "expected"),
    [
        ("abs(-3)", 3),
        ("ceil(1.2)", 2),
        ("ceil(-1.2)", -1),
        ("floor(1.8)", 1),
        ("floor(-1.2)", -2),
        ("round(2.5)", 3),
        ("round(-2.5)", -3),
        ("round(2.4)", 2),
        ("round(7)", 7),
        ("fmod(7, 3)", 1.0),
        ("fmod(-7, 3)", -1.0),
        ("power(2, 3)", 8.0),
        ("sqrt(16)", 4.0),
        ("exp(0)", 1.0),
        ("log(1)", 0.0),
        ("log10(100)", 2.0),
        ("log2(8)", 3.0),
        ("sin(0)", 0.0),
        ("cos(0)", 1.0),
        ("tan(0)", 0.0),
        ("asin(0)", 0.0),
        ("acos(1)", 0.0),
        ("atan(0)", 0.0),
        ("sinh(0)", 0.0),
        ("cosh(0)", 1.0),
        ("tanh(0)", 0.0),
        ("asinh(0)", 0.0),
        ("acosh(1)", 0.0),
        ("atanh(0)", 0.0),
        ("div(7, 2)", 3),
        ("mod(7, 2)", 1),
        ("eq(1, 1.0)", True),
        ("eq('a', 'b')", False),
    ],
)
def test_math(expr: Callable[..., Any], sql: str, expected: Any) -> None:
    result = expr(sql)
    assert result == expected
    assert type(result) is type(expected)


def test_random_is_in_unit_interval(expr: Callable[..., Any]) -> None:
    value = expr("random()")
    assert 0.0 <= value < 1.0


def test_ceil_of_pi_is_an_integer(expr: Callable[..., Any]) -> None:
    assert expr("ceil(3.14)") == math.ceil(3.14)


@pytest.mark.parametrize("sql", ["abs(-1.5)", "sqrt(-1)", "log(0)", "abs('x')", "power('a', 2)"])
def test_math_errors(expr: Callable[..., Any], sql: str) -> None:
    with pytest.raises(RuleEvalError):
        expr(sql)
