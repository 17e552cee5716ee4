"""Where mqferry deliberately differs from EMQX's rule engine (documented in docs/rules.md)."""

from __future__ import annotations

import pytest

from mqferry._rules import RuleCompileError, evaluate_sql


def event(payload: bytes) -> dict[str, object]:
    return {"topic": "t/a", "payload": payload, "clientid": "c1"}


@pytest.mark.parametrize(
    ("payload", "expected"),
    [(b'{"a": 0, "b": 0}', {"a": 0}), (b'{"a": 1, "b": 0}', None), (b'{"a": 0, "b": 1}', None)],
)
def test_not_of_a_parenthesised_or_is_its_negation(payload: bytes, expected: object) -> None:
    # emqx_rule_runtime.erl:387 match_conditions({'not', Var}) evaluates Var with eval/2, which
    # has no clause for 'or'/'and': EMQX fails the rule. mqferry negates.
    sql = 'SELECT payload.a as a FROM "t/#" WHERE NOT (payload.a = 1 OR payload.b = 1)'
    assert evaluate_sql(sql, event(payload)) == expected


def test_a_put_goes_into_the_selected_payload_not_the_cached_one() -> None:
    # emqx_rule_runtime.erl:768 maybe_decode_payload returns whatever payload was decoded
    # first in the evaluation; mqferry decodes the value that was selected.
    sql = "SELECT payload.x as x, '{\"a\":1}' as payload, 2 as payload.b FROM \"t/#\""
    assert evaluate_sql(sql, event(b'{"x": 5}')) == {"x": 5, "payload": {"a": 1, "b": 2}}


def test_a_range_from_zero_is_refused_when_compiling() -> None:
    # emqx_rule_maps.erl:182 index(0, _) raises on every message; mqferry refuses the rule.
    with pytest.raises(RuleCompileError, match="range index 0"):
        evaluate_sql('SELECT payload.a[0..2] as r FROM "t/#"', event(b'{"a": [1, 2]}'))
