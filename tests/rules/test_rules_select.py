"""SELECT semantics taken from EMQX's documented behaviour."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import orjson
import pytest

from mqferry._rules import Event, Outcome, RuleEvalError, compile_sql, evaluate_sql

SAMPLE_PAYLOAD = (
    b'{"temp": 25.5, "hum": 40, "name": "dev-1", "arr": [1, 2, 3], '
    b'"sensors": [{"idx": 0, "v": 1}, {"idx": 1, "v": 2}, {"idx": 2, "v": 3}], '
    b'"nested": {"a": {"b": "deep"}}, "flag": true, "nothing": null, "num_str": "12"}'
)

CASES: list[tuple[str, dict[str, Any] | None]] = [
    (
        'SELECT payload.temp as t, clientid FROM "t/#" WHERE payload.temp > 20',
        {"t": 25.5, "clientid": "c_emqx"},
    ),
    ('SELECT payload.temp as t FROM "t/#" WHERE payload.temp > 30', None),
    ('select payload.hum as h from "t/#" where payload.hum = 40.0', {"h": 40}),
    ('SELECT payload.nested.a.b as b FROM "t/#"', {"b": "deep"}),
    ('SELECT payload.arr[1] as first, payload.arr[-1] as last FROM "t/#"', {"first": 1, "last": 3}),
    ('SELECT payload.arr[2..3] as mid FROM "t/#"', {"mid": [2, 3]}),
    ('SELECT payload.arr[5] as missing FROM "t/#"', {"missing": None}),
    ('SELECT payload.nested.a FROM "t/#"', {"payload": {"nested": {"a": {"b": "deep"}}}}),
    ("SELECT pub_props.'User-Property'.foo as foo FROM \"t/#\"", {"foo": "bar"}),
    ('SELECT payload.x as x FROM "t/#"', {"x": None}),
    (
        'SELECT 1 + 2 as a, 1 + 2.0 as b, 4 / 2 as c, 7 div 2 as d, 7 mod 3 as e FROM "t/#"',
        {"a": 3, "b": 3.0, "c": 2.0, "d": 3, "e": 1},
    ),
    ('SELECT -7 div 2 as d, -7 mod 2 as m FROM "t/#"', {"d": -3, "m": -1}),
    (
        "SELECT 'a' + 'b' as s, 'n' + 1 as n, 1 + 'x' as m FROM \"t/#\"",
        {"s": "ab", "n": "n1", "m": "1x"},
    ),
    ("SELECT 'v=' + 1.5 as s FROM \"t/#\"", {"s": "v=1.5"}),
    (
        'SELECT 2 * 3 + 1 as a, 2 * (3 + 1) as b, 10 - 2 - 3 as c FROM "t/#"',
        {"a": 7, "b": 8, "c": 5},
    ),
    ('SELECT payload.temp * 2 as d FROM "t/#"', {"d": 51.0}),
    (
        "SELECT CASE WHEN payload.temp > 30 THEN 'hot' WHEN payload.temp > 20 THEN 'warm' "
        "ELSE 'cold' END as c FROM \"t/#\"",
        {"c": "warm"},
    ),
    ("SELECT CASE WHEN payload.temp > 30 THEN 'hot' END as c FROM \"t/#\"", {"c": None}),
    (
        "SELECT CASE payload.hum WHEN 40 THEN 'forty' ELSE 'other' END as c FROM \"t/#\"",
        {"c": "forty"},
    ),
    (
        "SELECT CASE payload.hum WHEN 40.0 THEN 'forty' ELSE 'other' END as c FROM \"t/#\"",
        {"c": "other"},
    ),
    ('SELECT clientid as cid, cid as again FROM "t/#"', {"cid": "c_emqx", "again": "c_emqx"}),
    ('SELECT payload.temp as t FROM "t/#" WHERE t > 25', {"t": 25.5}),
    ('SELECT payload.temp as a.b FROM "t/#"', {"a": {"b": 25.5}}),
    ('SELECT payload.temp as x[1] FROM "t/#"', {"x": [25.5]}),
    ("SELECT payload.temp as t FROM \"t/#\" WHERE topic =~ 't/+'", {"t": 25.5}),
    ("SELECT payload.temp as t FROM \"t/#\" WHERE topic =~ 'x/#'", None),
    ('SELECT qos FROM "t/#" WHERE qos IN (0, 1)', {"qos": 1}),
    ('SELECT qos FROM "t/#" WHERE qos NOT IN (0, 1)', None),
    ('SELECT qos FROM "t/#" WHERE qos IN (1.0)', None),
    ('SELECT qos FROM "t/#" WHERE qos = 1.0', {"qos": 1}),
    ("SELECT qos FROM \"t/#\" WHERE qos <> 1 or clientid = 'c_emqx'", {"qos": 1}),
    ("SELECT qos FROM \"t/#\" WHERE qos = 1 and not (clientid = 'x')", {"qos": 1}),
    ('SELECT qos FROM "t/#" WHERE not qos', None),
    ('SELECT qos FROM "t/#" WHERE payload.num_str > 10', {"qos": 1}),
    ('SELECT qos FROM "t/#" WHERE payload.missing = payload.other', {"qos": 1}),
    ('SELECT qos FROM "t/#" WHERE payload.missing != 1', None),
    ('SELECT qos FROM "t/#" WHERE payload.missing < 1', None),
    ("SELECT qos FROM \"t/#\" WHERE payload.flag = 'true'", {"qos": 1}),
    ("SELECT qos FROM \"t/#\" WHERE payload.name = 'dev-1'", {"qos": 1}),
    ("SELECT qos FROM \"t/#\" WHERE payload.name > 'dev-0'", {"qos": 1}),
    (
        "SELECT true as t, false as f, 1.5e3 as e, [1, 'b'] as l, [1..3] as r FROM \"t/#\"",
        {"t": True, "f": False, "e": 1500.0, "l": [1, "b"], "r": [1, 2, 3]},
    ),
    # An unaliased string constant is named after its value; backslashes stay as written.
    ("SELECT 'it', 'a\\nb' as raw FROM \"t/#\"", {"it": "it", "raw": "a\\nb"}),
    ('SELECT flags.retain as r FROM "t/#"', {"r": False}),
    ('SELECT payload FROM "t/#" WHERE payload.hum > 1', {"payload": SAMPLE_PAYLOAD.decode()}),
    ('SELECT payload.hum FROM "t/#" WHERE payload.temp > 1', None),
    ('SELECT clientid FROM "t/#", "x/#"', {"clientid": "c_emqx"}),
    ("SELECT clientid FROM 't/#'", {"clientid": "c_emqx"}),
    ('SELECT clientid FROM "x/#"', None),
    ('SELECT clientid FROM "t/#" -- a comment\nWHERE qos = 1', {"clientid": "c_emqx"}),
    ('SeLeCt clientid FrOm "t/#" WhErE qos = 1', {"clientid": "c_emqx"}),
    ('SELECT clientid c FROM "t/#"', {"c": "c_emqx"}),
    ('SELECT payload.temp > 20 as hot FROM "t/#"', {"hot": True}),
    ('SELECT payload.sensors[2].v as v FROM "t/#"', {"v": 2}),
    ('SELECT payload.arr[qos] as v FROM "t/#"', {"v": 1}),
]


@pytest.mark.parametrize(("sql", "expected"), CASES)
def test_select_matches_emqx(
    make_event: Callable[..., dict[str, Any]], sql: str, expected: dict[str, Any] | None
) -> None:
    assert evaluate_sql(sql, make_event()) == expected


def test_select_star_returns_columns_without_mqtt_headers(
    make_event: Callable[..., dict[str, Any]],
) -> None:
    out = evaluate_sql('SELECT * FROM "t/#"', make_event())
    assert isinstance(out, dict)
    assert out["payload"] == make_event()["payload"].decode()
    assert out["clientid"] == "c_emqx"
    assert "headers" not in out


def test_select_star_keeps_binary_payload_that_is_not_utf8(
    make_event: Callable[..., dict[str, Any]],
) -> None:
    out = evaluate_sql('SELECT * FROM "t/#"', make_event(payload=b"\xff\x00"))
    assert isinstance(out, dict)
    assert out["payload"] == b"\xff\x00"


def test_non_json_payload_is_forwarded_as_string(make_event: Callable[..., dict[str, Any]]) -> None:
    assert evaluate_sql('SELECT payload FROM "t/#"', make_event(payload=b"hello")) == {
        "payload": "hello"
    }


def test_payload_field_on_non_json_payload_is_an_exception(
    make_event: Callable[..., dict[str, Any]],
) -> None:
    with pytest.raises(RuleEvalError) as info:
        evaluate_sql('SELECT payload.x FROM "t/#"', make_event(payload=b"hello"))
    assert info.value.reason == "decode_json_failed"


@pytest.mark.parametrize(
    "sql",
    [
        'SELECT payload.missing + 1 as x FROM "t/#"',
        'SELECT -payload.missing as x FROM "t/#"',
        'SELECT payload.name * 2 as x FROM "t/#"',
        'SELECT 1 / 0 as x FROM "t/#"',
        'SELECT 1 div 0 as x FROM "t/#"',
        'SELECT 1.5 div 1 as x FROM "t/#"',
        'SELECT true + 1 as x FROM "t/#"',
        'SELECT qos FROM "t/#" WHERE payload.name > 1',
        'SELECT nth(9, payload.arr) as x FROM "t/#"',
    ],
)
def test_evaluation_errors_are_rule_eval_errors(
    make_event: Callable[..., dict[str, Any]], sql: str
) -> None:
    with pytest.raises(RuleEvalError):
        evaluate_sql(sql, make_event())


def test_int_and_float_stay_distinct_in_output(make_event: Callable[..., dict[str, Any]]) -> None:
    out = evaluate_sql('SELECT 2 as i, 2.0 as f FROM "t/#"', make_event())
    assert out == {"i": 2, "f": 2.0}
    assert isinstance(out, dict)
    assert type(out["i"]) is int
    assert type(out["f"]) is float


def test_where_false_and_foreach_empty_are_told_apart(
    make_event: Callable[..., dict[str, Any]],
) -> None:
    rule = compile_sql('SELECT 1 as x FROM "t/#" WHERE qos = 2')
    assert rule.run(make_event()).outcome is Outcome.FILTERED
    each = compile_sql('FOREACH payload.arr FROM "t/#" WHERE qos = 1')
    assert each.run(make_event(payload=b'{"arr": []}')).outcome is Outcome.NO_RESULT
    assert each.run(make_event()).outcome is Outcome.PASSED


def test_payload_is_decoded_once_for_several_rules(
    make_event: Callable[..., dict[str, Any]], monkeypatch: pytest.MonkeyPatch
) -> None:
    import mqferry._rules.event as event_module

    calls = []
    real = event_module._loads

    def counting(payload: Any) -> Any:
        calls.append(payload)
        return real(payload)

    # The JSON decoder behind the event's payload cache (orjson.loads).
    monkeypatch.setattr(event_module, "_loads", counting)
    rules = [compile_sql(f'SELECT payload.temp as t{i} FROM "t/#"') for i in range(3)]
    ev = Event(make_event())
    outs = [r.apply(ev) for r in rules]
    assert outs == [{"t0": 25.5}, {"t1": 25.5}, {"t2": 25.5}]
    assert len(calls) == 1


def test_apply_does_not_change_the_event(make_event: Callable[..., dict[str, Any]]) -> None:
    ev = make_event()
    before = dict(ev)
    compile_sql('SELECT payload.temp as payload FROM "t/#"').apply(ev)
    assert ev == before


def test_compiled_rule_describes_its_sources(make_event: Callable[..., dict[str, Any]]) -> None:
    rule = compile_sql('SELECT * FROM "t/#", "$bridges/kafka_consumer:in", "a/+/b"')
    assert rule.sources == ("t/#", "$bridges/kafka_consumer:in", "a/+/b")
    assert rule.topic_filters == ("t/#", "a/+/b")
    assert rule.event_topics == ("$bridges/kafka_consumer:in",)
    assert not rule.is_foreach
    assert rule.matches_topic("a/x/b")
    assert not rule.matches_topic("a/x/c")


def _run(sql: str, payload: Any) -> Any:
    """``sql`` on a message on ``t/a`` with ``payload`` (a map or list is sent as JSON)."""
    if isinstance(payload, dict | list):
        payload = orjson.dumps(payload)
    return evaluate_sql(sql, {"topic": "t/a", "payload": payload, "clientid": "c", "qos": 1})


@pytest.mark.parametrize(
    ("sql", "payload", "expected"),
    [
        # A one-key path through a field selected before it: the scoped value is the payload
        # (decoded once), a map, JSON text in another column, a list, or a number.
        ('select payload, payload.x as x from "t/#"', {"x": 7}, {"payload": '{"x":7}', "x": 7}),
        ('select payload, payload.y as y from "t/#"', {"x": 7}, {"payload": '{"x":7}',
                                                                 "y": None}),
        ('select payload as p, p.x as x from "t/#"', {"x": [1, 2]}, {"p": '{"x":[1,2]}',
                                                                     "x": [1, 2]}),
        ('select json_decode(payload) as m, m.x as x from "t/#"', {"x": "v"},
         {"m": {"x": "v"}, "x": "v"}),
        ('select topic as p, p.x as x from "t/#"', {"x": 1}, {"p": "t/a", "x": None}),
        ('select payload.x as p, p.y as y from "t/#"', {"x": [1]}, {"p": [1], "y": None}),
        ('select payload.x as p, p.y as y from "t/#"', {"x": 3}, {"p": 3, "y": None}),
        ('select payload.x as p, p.y as y from "t/#"', {"x": '{"y": 4}'},
         {"p": '{"y": 4}', "y": 4}),
    ],
)
def test_one_key_through_a_selected_field(sql: str, payload: Any, expected: Any) -> None:
    assert _run(sql, payload) == expected


def test_one_key_through_the_selected_payload_of_a_non_json_message_fails_the_rule() -> None:
    with pytest.raises(RuleEvalError, match="decode_json_failed"):
        _run('select payload, payload.x as x from "t/#"', b"not json")
