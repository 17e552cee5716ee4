"""Map and array functions."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from mqferry._rules import RuleEvalError


@pytest.mark.parametrize(
    ("sql", "expected"),
    [
        ("map_new()", {}),
        ("map_get('a', payload.nested)", {"b": "deep"}),
        ("map_get('a.b', payload.nested)", "deep"),
        ("map_get('x', payload.nested, 'd')", "d"),
        ("map_put('x', 1, map_new())", {"x": 1}),
        ("map_put('a.c', 1, payload.nested)", {"a": {"b": "deep", "c": 1}}),
        ("mget('a', map_put('a', 2, map_new()))", 2),
        ("mput('k', 'v', map_new())", {"k": "v"}),
        ("map_keys(payload.nested)", ["a"]),
        ("map_values(map_put('k', 1, map_new()))", [1]),
        ("map_to_entries(map_put('k', 1, map_new()))", [{"key": "k", "value": 1}]),
        ("map_size(payload.nested)", 1),
        ("nth(1, payload.arr)", 1),
        ("length(payload.arr)", 3),
        ("sublist(2, payload.arr)", [1, 2]),
        ("sublist(2, 5, payload.arr)", [2, 3]),
        ("first(payload.arr)", 1),
        ("last(payload.arr)", 3),
        ("contains(2, payload.arr)", True),
        ("contains(2.0, payload.arr)", False),
        ("contains(9, payload.arr)", False),
    ],
)
def test_collections(expr: Callable[..., Any], sql: str, expected: Any) -> None:
    assert expr(sql) == expected


@pytest.mark.parametrize(
    "sql",
    [
        "nth(0, payload.arr)",
        "nth(4, payload.arr)",
        "first([])",
        "last([])",
        "length('abc')",
        "map_get('a', 1)",
        "sublist(9, 1, payload.arr)",
    ],
)
def test_collection_errors(expr: Callable[..., Any], sql: str) -> None:
    with pytest.raises(RuleEvalError):
        expr(sql)
