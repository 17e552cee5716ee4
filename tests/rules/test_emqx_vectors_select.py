"""SELECT and FOREACH vectors ported from EMQX's rule engine suite.

Each case names the test function and line of
``apps/emqx_rule_engine/test/emqx_rule_engine_SUITE.erl`` (emqx/emqx at 50e04386de) it comes from;
the expected values follow from
``emqx_rule_runtime.erl`` (``select_and_transform``, ``select_and_collect``, ``filter_collection``,
``nested_put``/``ensure_decoded_payload``) and ``emqx_rule_maps.erl`` (``nested_put``, ``setnth``,
``getnth``), and from rulesql's parser, which reads an index ``0`` as the head of a list and ``-0``
as its tail.
"""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from mqferry._rules import Outcome, RuleEvalError, compile_sql, evaluate_sql

SUITE = "emqx_rule_engine_SUITE.erl"


def run(sql: str, payload: Any, **columns: Any) -> Any:
    """Run ``sql`` as EMQX's SQL tester does: an MQTT message on ``t/a`` with ``payload``."""
    if isinstance(payload, dict | list):
        payload = orjson.dumps(payload)
    event = {"topic": "t/a", "payload": payload, "clientid": "c_emqx", "qos": 1, **columns}
    return evaluate_sql(sql, event)


# --------------------------------------------------------------------------- class 1: undefined


@pytest.mark.parametrize(
    ("source", "sql", "payload", "expected"),
    [
        # select_and_transform puts every field with nested_put, whatever its value: undefined
        # values keep their key (null in the JSON output).
        (f"{SUITE}:3941 t_sqlparse_undefined_variable", 'select a, b from "t/#" where a = b',
         b"", {"a": None, "b": None}),
        (f"{SUITE}:3967 t_sqlparse_undefined_variable", 'select a < b as c from "t/#"',
         b'{"b":1}', {"c": False}),
        # CASE without ELSE and no branch taken is undefined (eval_case_clauses).
        (f"{SUITE}:3379 t_sqlparse_case_when_3",
         'select case when payload.x < 0 then 0 when payload.x > 7 then 7 end as y from "t/#"',
         b'{"x": 1}', {"y": None}),
        (f"{SUITE}:3379 t_sqlparse_case_when_3",
         'select case when payload.x < 0 then 0 when payload.x > 7 then 7 end as y from "t/#"',
         b'{"x": -1}', {"y": 0}),
        (f"{SUITE}:3379 t_sqlparse_case_when_3",
         'select case when payload.x < 0 then 0 when payload.x > 7 then 7 end as y from "t/#"',
         b'{"x": 8}', {"y": 7}),
        # p is a map, so p[1] (general_find index on a non-list) is undefined.
        (f"{SUITE}:3461 t_sqlparse_array_index_1",
         'select json_decode(payload) as p, p[1] as a from "t/#"', b'{"x": 1}',
         {"p": {"x": 1}, "a": None}),
        (f"{SUITE}:3461 t_sqlparse_array_index_1",
         'select json_decode(payload) as p, p[1] as a from "t/#"', b'[{"x": 1}]',
         {"p": [{"x": 1}], "a": {"x": 1}}),
        # A missing payload path, a missing column, a missing map key.
        ("emqx_rule_runtime.erl:313 select_and_transform", 'select payload.nope, nope from "t/#"',
         b'{"x": 1}', {"payload": {"nope": None}, "nope": None}),
        ("emqx_rule_runtime.erl:313 select_and_transform",
         "select map_get('k', payload) as m from \"t/#\"", b'{"x": 1}', {"m": None}),
        ("emqx_rule_runtime.erl:313 select_and_transform",
         'select null() as n, payload.x.y as k, payload.m[1] as i from "t/#"',
         b'{"x": [1], "m": {"a": 1}}', {"n": None, "k": None, "i": None}),
        # Unaliased reads of [0] and [-0] are undefined and their key path puts at the ends.
        ("emqx_rule_maps.erl:128 setnth(head)", 'select payload.l[0], payload.l[-0] from "t/#"',
         b'{"l": [1, 2]}', {"payload": {"l": [None, None]}}),
    ],
)
def test_undefined_keeps_its_key(source: str, sql: str, payload: Any, expected: Any) -> None:
    assert run(sql, payload) == expected, source


def test_undefined_alias_does_not_hide_the_column() -> None:
    # emqx_rule_runtime.erl:619 eval/2: a name undefined among the fields selected so far is
    # looked up in the event next.
    out = run("select nope as clientid, clientid as c from \"t/#\"", b"{}")
    assert out == {"clientid": None, "c": "c_emqx"}


def test_where_sees_the_undefined_field_over_the_column() -> None:
    # emqx_rule_runtime.erl:266 evaluate_select: WHERE runs on maps:merge(Columns, Selected), so
    # a selected undefined hides the column of the same name.
    assert run("select nope as clientid from \"t/#\" where clientid = 'c_emqx'", b"{}") is None
    assert run("select nope as clientid from \"t/#\" where clientid = nope", b"{}") == {
        "clientid": None}


# --------------------------------------------------------------------------- class 2: payload put


def test_as_put_updates_the_selected_payload() -> None:
    # t_sqlselect_as_put, SUITE:2592.
    payload = {"f1": "f1", "f2": "f2",
               "data": [{"name": "n1", "idx": 1}, {"name": "n2", "idx": 2}]}
    out = run("select payload, 'STEVE' as payload.data[1].name from \"t/#\"", payload)
    assert out == {"payload": {"f1": "f1", "f2": "f2", "data": [
        {"name": "STEVE", "idx": 1}, {"name": "n2", "idx": 2}]}}


@pytest.mark.parametrize(
    ("payload", "expected"),
    [
        # t_sqlparse_payload_as, SUITE:4007 (EMQX issue 3866): re-putting a value that is there
        # leaves it, a missing one is added.
        ({"msgId": 1002, "params": {"convertTemp": 20, "engineSpeed": 42, "hydOilTem": 30}},
         {"msgId": 1002, "params": {"convertTemp": 20, "engineSpeed": 42,
                                    "engineWorkTime": -1, "hydOilTem": 30}}),
        ({"msgId": 1002, "params": {"convertTemp": 20, "engineSpeed": 42}},
         {"msgId": 1002, "params": {"convertTemp": 20, "engineSpeed": 42,
                                    "engineWorkTime": -1, "hydOilTem": -1}}),
    ],
)
def test_payload_as_keeps_and_adds(payload: Any, expected: Any) -> None:
    sql = ("SELECT payload, map_get('engineWorkTime', payload.params, -1) as "
           "payload.params.engineWorkTime, map_get('hydOilTem', payload.params, -1) as "
           "payload.params.hydOilTem FROM \"t/#\"")
    assert run(sql, payload) == {"payload": expected}


def test_put_into_a_list_element_of_the_payload() -> None:
    # The issue's `'new' as payload.a[1]` (emqx_rule_maps.erl:45 do_nested_put, setnth):
    # the first element is replaced, the rest of the payload stays.
    out = run("select payload, 'new' as payload.a[1] from \"t/#\"", b'{"a": [1, 2], "b": 0}')
    assert out == {"payload": {"a": ["new", 2], "b": 0}}


@pytest.mark.parametrize(
    ("source", "sql", "expected"),
    [
        # t_sqlparse_array_index_4: without `payload` selected the put builds a new map and the
        # index into a missing list makes a one-element list (setnth on a non-list).
        (f"{SUITE}:3680", 'select 0 as payload.x[2].y from "t/#"',
         {"payload": {"x": [{"y": 0}]}}),
        # With payload.x selected first, the put goes into that selection.
        (f"{SUITE}:3697", 'select payload.x, 0 as payload.x[2].y from "t/#"',
         {"payload": {"x": [1, {"y": 0}, 3]}}),
        # t_sqlparse_array_index_3: unaliased paths build the same shape in the output.
        (f"{SUITE}:3626", 'select payload, payload.x[2].y from "t/#"',
         {"payload": {"x": [1, {"y": [1, 2]}, 3]}}),
        (f"{SUITE}:3644", 'select payload.x[2].y as b from "t/#"', {"b": [1, 2]}),
        (f"{SUITE}:3661", 'select payload.x[2].y as b.c from "t/#"', {"b": {"c": [1, 2]}}),
    ],
)
def test_array_index_put(source: str, sql: str, expected: Any) -> None:
    assert run(sql, b'{"x": [1,{"y": [1,2]},3]}') == expected, source


def test_a_payload_that_is_not_json_fails_the_put() -> None:
    # emqx_rule_runtime.erl:663 ensure_decoded_payload: a payload that does not decode raises
    # decode_json_failed.
    with pytest.raises(RuleEvalError, match="decode_json_failed"):
        run("select payload, 1 as payload.a from \"t/#\"", b"not json")


# --------------------------------------------------------------------------- class 3: [0], [-0]


@pytest.mark.parametrize(
    ("source", "sql", "payload", "expected"),
    [
        # t_sqlparse_array_index_2: `-0` appends (setnth tail), `0` prepends (setnth head).
        (f"{SUITE}:3564", 'select payload.x as b, 1 as c[-0], 2 as c[-0], b as c[0] from "t/#"',
         b'{"x": 0}', {"b": 0, "c": [0, 1, 2]}),
        (f"{SUITE}:3584", 'select [] as c, 1 as c[-0], 2 as c[-0], 0 as c[0] from "t/#"',
         b"", {"c": [0, 1, 2]}),
        (f"{SUITE}:3604",
         "select [payload.a, \"topic\", 'c'] as c, 1 as c[-0], 2 as c[-0], 0 as c[0] "
         'from "t/#"', b'{"a":11}', {"c": [0, 11, "t/a", "c", 1, 2]}),
        # t_sqlparse_array_range_1
        (f"{SUITE}:3835", 'select [1..4] as c, 5 as c[-0], 6 as c[-0], 0 as c[0] from "t/#"',
         b"", {"c": [0, 1, 2, 3, 4, 5, 6]}),
        # t_sqlparse_true_false, t_sqlparse_new_map: a put at the tail of nothing is a new list.
        (f"{SUITE}:3916",
         'select true as a, false as b, false as x.y, true as c[-0] from "t/#"', b"",
         {"a": True, "b": False, "x": {"y": False}, "c": [True]}),
        (f"{SUITE}:3982",
         'select map_new() as a, map_new() as b, map_new() as x.y, map_new() as c[-0] '
         'from "t/#"', b"", {"a": {}, "b": {}, "x": {"y": {}}, "c": [{}]}),
        # getnth(0) and getnth(head|tail) find nothing: reads of [0] and [-0] are undefined.
        ("emqx_rule_maps.erl:146 getnth", 'select payload.arr[0] as h, payload.arr[-0] as t '
         'from "t/#"', b'{"arr": [1, 2]}', {"h": None, "t": None}),
        # A dotted path below the head: general_map_get(head) is undefined, so a new map goes in.
        ("emqx_rule_maps.erl:45 do_nested_put", 'select [1] as c, 2 as c[0].v from "t/#"',
         b"", {"c": [{"v": 2}, 1]}),
        # Index 1 past the end leaves the list (do_setnth on []), negative counts from the end.
        ("emqx_rule_maps.erl:139 setnth, 144 do_setnth",
         'select [1, 2] as c, 9 as c[3], 7 as c[-1] from "t/#"',
         b"", {"c": [1, 7]}),
    ],
)
def test_list_ends(source: str, sql: str, payload: Any, expected: Any) -> None:
    assert run(sql, payload) == expected, source


def test_array_index_negative_read() -> None:
    # t_sqlparse_array_index_2, SUITE:3547.
    assert run('select payload.x[-2].y as b from "t/#"', {"x": [1, {"y": 3}, 4]}) == {"b": 3}


def test_array_index_unaliased_reads() -> None:
    # t_sqlparse_array_index_1, SUITE:3493 and 3510: the key path of an unaliased field.
    assert run('select payload.x[2] from "t/#"', {"x": [1, 3, 4]}) == {"payload": {"x": [3]}}
    assert run('select payload.x[2].y from "t/#"', {"x": [1, {"y": 3}, 4]}) == {
        "payload": {"x": [{"y": 3}]}}


def test_nested_get_through_an_alias() -> None:
    # t_sqlparse_nested_get, SUITE:4063.
    assert run('select payload as p, p.a.b as c from "t/#"', b'{"a": {"b": 0}}') == {
        "p": '{"a": {"b": 0}}', "c": 0}


@pytest.mark.parametrize(
    ("sql", "payload", "expected"),
    [
        # emqx_rule_runtime.erl:320-327 select_and_transform: an unaliased field is put into the
        # map under its derived key (alias/2, :684) like an aliased one, and every later field
        # is evaluated against that map before the columns (eval with [Action, Columns]).
        ('select payload.x, payload as p from "t/#"', {"x": 5, "y": 6},
         {"payload": {"x": 5}, "p": {"x": 5}}),
        ('select payload.a.b, payload.a as z from "t/#"', {"a": {"b": 7, "c": 8}},
         {"payload": {"a": {"b": 7}}, "z": {"b": 7}}),
        # Undefined in the map: the lookup goes on to the columns (the event's clientid).
        ('select payload.clientid as clientid2, clientid, upper(clientid) as u from "t/#"', {},
         {"clientid2": None, "clientid": "c_emqx", "u": "C_EMQX"}),
        ("select 'c2' as clientid, clientid as c from \"t/#\"", {},
         {"clientid": "c2", "c": "c2"}),
    ],
)
def test_an_unaliased_field_is_visible_to_later_fields(sql: str, payload: Any,
                                                     expected: Any) -> None:
    assert run(sql, payload) == expected


def test_an_unaliased_foreach_field_is_visible_to_later_fields() -> None:
    # emqx_rule_runtime.erl:348-356 select_and_collect: an unaliased FOREACH field goes into
    # the map the next fields read first, so the collection is read from the selected payload.
    # (EMQX reads payload.items[1] as the key path payload.items[1], see SUITE:3493.)
    rows = run('foreach payload.items[1], payload.items as i from "t/#"', {"items": [1, 2]})
    assert [(row["payload"], row["i"]) for row in rows] == [({"items": [1]}, 1)]


@pytest.mark.parametrize(
    ("sql", "expected"),
    [
        # emqx_rule_maps.erl:122-124 do_put: an index that is not a constant is read with
        # nested_get from the map of the fields selected so far, then setnth puts the value.
        ('select payload.x as c, payload.i as i, 9 as c[i] from "t/#"',
         {"c": [1, 9, 3], "i": 2}),
        ('select payload.x as c, payload.p as p, 9 as c[p.i] from "t/#"',
         {"c": [1, 2, 9], "p": {"i": 3}}),
        # Not selected (the event's payload.i does not count): undefined is not an integer, and
        # setnth leaves the list as it is.
        ('select payload.x as c, 9 as c[i] from "t/#"', {"c": [1, 2, 3]}),
        # setnth on something that is not a list makes a one-element list.
        ('select 2 as i, 9 as c[i] from "t/#"', {"i": 2, "c": [9]}),
    ],
)
def test_alias_index_read_from_the_selected_fields(sql: str, expected: Any) -> None:
    assert run(sql, {"x": [1, 2, 3], "i": 2, "p": {"i": 3}}) == expected


# --------------------------------------------------------------------------- class 4: FOREACH

SENSORS_4 = b'{"sensors": [{"cmd":"1", "name":"n1"}, {"cmd":"2"}, {"name":"n3"}]}'


@pytest.mark.parametrize(
    ("source", "sql", "payload", "expected"),
    [
        (f"{SUITE}:2707 t_sqlparse_foreach_1", 'foreach payload.sensors as s from "t/#"',
         b'{"sensors": [1, 2]}', [1, 2]),
        (f"{SUITE}:2844 t_sqlparse_foreach_2",
         'foreach payload.sensors as s do s.cmd as msg_type from "t/#"',
         b'{"sensors": [{"cmd":"1"}, {"cmd":"2"}]}', [{"msg_type": "1"}, {"msg_type": "2"}]),
        (f"{SUITE}:2880 t_sqlparse_foreach_2", 'foreach payload.sensors do item as item '
         'from "t/#"', b'{"sensors": [1, 2]}', [{"item": 1}, {"item": 2}]),
        # t_sqlparse_foreach_4: a missing field of an element keeps its key with null.
        (f"{SUITE}:2946 t_sqlparse_foreach_4",
         'foreach payload.sensors as s do s.cmd as msg_type, s.name as name '
         'incase is_not_null(s.cmd) from "t/#"', SENSORS_4,
         [{"msg_type": "1", "name": "n1"}, {"msg_type": "2", "name": None}]),
        # ... and an INCASE that filters out every element gives [].
        (f"{SUITE}:2980 t_sqlparse_foreach_4",
         'foreach payload.sensors as s do s.cmd as msg_type, s.name as name '
         'incase is_not_null(s.cmd) from "t/#"', b'{"sensors": [1, 2]}', []),
        # t_sqlparse_foreach_5: a collection that is not a list, or an empty one, gives [].
        (f"{SUITE}:3000 t_sqlparse_foreach_5",
         'foreach payload.sensors as s do s.cmd as msg_type, s.name as name from "t/#"',
         b'{"sensors": 1}', []),
        (f"{SUITE}:3013 t_sqlparse_foreach_5",
         'foreach payload.sensors as s do s.cmd as msg_type, s.name as name from "t/#"',
         b'{"sensors": []}', []),
        (f"{SUITE}:3029 t_sqlparse_foreach_5", 'foreach payload.sensors from "t/#"',
         b'{"sensors": 1}', []),
        # t_sqlparse_foreach_9 and _10: `foreach payload` iterates over the decoded payload.
        (f"{SUITE}:3200 t_sqlparse_foreach_9", 'foreach payload as p do p.ts as ts from "t/#"',
         b'[{"ts": 1451649600512, "values": {"heartrate": 130}}]', [{"ts": 1451649600512}]),
        (f"{SUITE}:3169 t_sqlparse_foreach_9",
         'foreach json_decode(payload) as p do p.ts as ts from "t/#"',
         b'[{"ts": 1451649600512}]', [{"ts": 1451649600512}]),
        (f"{SUITE}:3216 t_sqlparse_foreach_10",
         'foreach payload as item do item.data as next_data from "t/#"',
         b'[{"data": "value1"}, {"data": "value2"}]',
         [{"next_data": "value1"}, {"next_data": "value2"}]),
        # t_sqlparse_foreach_3: INCASE on the aliased element, and on `item`.
        (f"{SUITE}:2901 t_sqlparse_foreach_3",
         'foreach payload.sensors as s incase s.cmd != 1 from "t/#"',
         b'{"sensors": [{"cmd":1}, {"cmd":2}, {"cmd":3}]}',
         [{"cmd": 2}, {"cmd": 3}]),
    ],
)
def test_foreach(source: str, sql: str, payload: Any, expected: Any) -> None:
    out = run(sql, payload)
    assert isinstance(out, list), source
    if "do" not in sql:
        # Without DO each row is the event with the FOREACH fields and the element; `expected`
        # lists the elements.
        key = "s" if " as s " in sql else "item"
        assert [row[key] for row in out] == expected, source
        assert all(row["clientid"] == "c_emqx" for row in out), source
    else:
        assert out == expected, source


def test_foreach_without_do_rows_carry_the_selected_fields() -> None:
    # t_sqlparse_foreach_1 Sql5, SUITE:2774: the unaliased `payload.sensors` is put in the
    # selection (a map under `payload`), and the rows are the event merged with it.
    out = run('foreach payload.sensors from "t/#"', b'{"sensors": [1, 2]}')
    assert [row["payload"] for row in out] == [{"sensors": [1, 2]}] * 2
    assert [row["item"] for row in out] == [1, 2]


CASCADE = (b'{"sensors": {"page": 2, "collection": '
           b'{"info":[{"name":"cmd1", "cmd":"1"}, {"cmd":"2"}]} } }')


def test_foreach_cascaded_aliases_with_where() -> None:
    # t_sqlparse_foreach_7, SUITE:3067: each alias reads the previous ones; WHERE reads them.
    sql = ("foreach json_decode(payload) as p, p.sensors as s, s.collection as c, c.info as info "
           "do info.cmd as msg_type, info.name as name incase is_not_null(info.cmd) "
           "from \"t/#\" where s.page = '{page}'")
    assert run(sql.format(page=2), CASCADE) == [
        {"msg_type": "1", "name": "cmd1"}, {"msg_type": "2", "name": None}]
    assert run(sql.format(page=3), CASCADE) is None


def test_foreach_do_sees_the_foreach_aliases() -> None:
    # t_sqlparse_foreach_8, SUITE:3113: DO selects s and c, the FOREACH aliases.
    payload = (b'{"sensors": {"page": 2, "collection": '
               b'{"info":["haha", {"name":"cmd1", "cmd":"1"}]} } }')
    coll = {"info": ["haha", {"name": "cmd1", "cmd": "1"}]}
    sql = ("foreach json_decode(payload) as p, p.sensors as s, s.collection as c, c.info as info "
           "do info.cmd as msg_type, info.name as name, s, c incase is_map(info) "
           "from \"t/#\" where s.page = '2'")
    assert run(sql, payload) == [{"msg_type": "1", "name": "cmd1",
                                  "s": {"page": 2, "collection": coll}, "c": coll}]
    sql3 = ("foreach json_decode(payload) as p, p.sensors as s, s.collection as c, "
            "sublist(2,1,c.info) as info do info.cmd as msg_type, info.name as name "
            "from \"t/#\" where s.page = '2'")
    assert run(sql3, payload) == [{"msg_type": "1", "name": "cmd1"}]


def test_foreach_do_undefined_alias_falls_back_to_the_element() -> None:
    # filter_collection runs DO as select_and_transform over the event, the FOREACH fields and
    # the element; eval/2 (emqx_rule_runtime.erl:619) reads an undefined alias there next.
    sql = 'foreach payload.l as s do s.nope as s, s as v from "t/#"'
    assert run(sql, b'{"l": [1, 2]}') == [{"s": None, "v": 1}, {"s": None, "v": 2}]


def test_foreach_with_no_element_is_counted_as_no_result() -> None:
    # emqx_rule_runtime.erl:207 do_apply_rule2: an empty final collection is `no_result`.
    result = compile_sql('foreach payload.sensors from "t/#"').run(
        {"topic": "t/a", "payload": b'{"sensors": 1}'})
    assert result.outcome is Outcome.NO_RESULT
    assert result.output == []


# --------------------------------------------------------------------------- class 6: =~


@pytest.mark.parametrize(
    ("topic", "filter", "expected"),
    [
        # emqx_topic.erl:80-83 match/2: a name starting with `$` is not matched by a filter
        # whose first level is a wildcard; other levels match as usual.
        ("$SYS/brokers", "#", False),
        ("$SYS/brokers", "+/brokers", False),
        ("$SYS/brokers", "$SYS/#", True),
        ("$SYS/brokers", "$SYS/+", True),
        ("t/$x", "t/+", True),
        # match_tokens: `#` also matches the parent level.
        ("t", "t/#", True),
        ("t/a/b", "t/+", False),
        ("t/a/b", "t/+/b", True),
    ],
)
def test_topic_match_operator(topic: str, filter: str, expected: bool) -> None:
    out = run(f"select '{topic}' =~ '{filter}' as m from \"t/#\"", b"{}")
    assert out == {"m": expected}
    rule = compile_sql(f"select 1 as one from \"#\" where topic =~ '{filter}'")
    assert (rule.apply({"topic": topic, "payload": b"{}"}) is not None) is expected
