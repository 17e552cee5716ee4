"""FOREACH ... DO ... INCASE semantics."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from mqferry._rules import Outcome, compile_sql, evaluate_sql


def test_foreach_do_incase_as_in_the_emqx_docs(make_event: Callable[..., dict[str, Any]]) -> None:
    sql = 'FOREACH payload.sensors as s DO s.idx as idx, s.v as v INCASE s.idx >= 1 FROM "t/#"'
    assert evaluate_sql(sql, make_event()) == [{"idx": 1, "v": 2}, {"idx": 2, "v": 3}]


def test_foreach_item_is_named_item_without_alias(
    make_event: Callable[..., dict[str, Any]],
) -> None:
    sql = 'FOREACH payload.arr DO item * 10 as x FROM "t/#"'
    assert evaluate_sql(sql, make_event()) == [{"x": 10}, {"x": 20}, {"x": 30}]


def test_foreach_without_do_outputs_the_columns_and_the_item(
    make_event: Callable[..., dict[str, Any]],
) -> None:
    out = evaluate_sql('FOREACH payload.arr FROM "t/#"', make_event())
    assert isinstance(out, list)
    assert [row["item"] for row in out] == [1, 2, 3]
    assert all(row["clientid"] == "c_emqx" for row in out)


def test_foreach_earlier_expressions_bind_names(make_event: Callable[..., dict[str, Any]]) -> None:
    sql = 'FOREACH payload.nested as n, payload.sensors as s DO s.v as v FROM "t/#"'
    assert evaluate_sql(sql, make_event()) == [{"v": 1}, {"v": 2}, {"v": 3}]


def test_foreach_on_a_non_array_produces_nothing(make_event: Callable[..., dict[str, Any]]) -> None:
    rule = compile_sql('FOREACH payload.temp FROM "t/#"')
    assert rule.is_foreach
    # As EMQX: no result (counted as such), shown as the empty list.
    result = rule.run(make_event())
    assert result.outcome is Outcome.NO_RESULT
    assert result.output == []


def test_foreach_where_filters_before_iterating(make_event: Callable[..., dict[str, Any]]) -> None:
    sql = 'FOREACH payload.arr FROM "t/#" WHERE qos = 2'
    assert evaluate_sql(sql, make_event()) is None


def test_foreach_incase_sees_the_event_columns(make_event: Callable[..., dict[str, Any]]) -> None:
    sql = "FOREACH payload.arr as a DO a INCASE clientid = 'c_emqx' and a > 2 FROM \"t/#\""
    assert evaluate_sql(sql, make_event()) == [{"a": 3}]
