"""The generated SELECT function agrees with the closures that define the semantics.

``CompiledRule`` keeps both: the closures of ``compiler.py`` (the reference, also used by
FOREACH) and the function ``codegen.py`` writes per statement for speed. Every statement below is
evaluated both ways on several events, errors included.
"""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from mqferry._rules import Event, RuleEvalError, compile_sql
from mqferry._rules.codegen import var_names
from mqferry._rules.parser import parse

from .conftest import make_event

STATEMENTS = [
    'SELECT payload.temp as t, clientid FROM "t/#" WHERE payload.temp > 20',
    'SELECT payload.temp as t FROM "t/#" WHERE t > 20 and t < 30',
    'SELECT payload.temp as t FROM "t/#" WHERE t >= 25.5 or payload.hum <= 1',
    'SELECT payload.num_str as s FROM "t/#" WHERE s > 10',
    'SELECT payload.name FROM "t/#" WHERE payload.name = \'dev-1\'',
    'SELECT payload.name FROM "t/#" WHERE payload.name != \'dev-1\'',
    'SELECT payload.name as n FROM "t/#" WHERE n <> 1',
    'SELECT payload.flag as f FROM "t/#" WHERE f = \'true\'',
    'SELECT payload.nothing as x FROM "t/#" WHERE x = payload.missing',
    'SELECT payload.missing as m, m as again FROM "t/#"',
    'SELECT 1 as clientid, clientid as c FROM "t/#"',
    'SELECT payload.missing as clientid, clientid as c FROM "t/#"',
    'SELECT payload.nested.a.b as deep, payload.nested.a.zz as none FROM "t/#"',
    'SELECT payload.arr[2] as a2, payload.sensors[1].v as v1 FROM "t/#"',
    'SELECT payload.temp + 1 as t1, payload.temp * 2 as t2 FROM "t/#"',
    'SELECT payload.name + 1 as t FROM "t/#"',
    'SELECT payload.temp - payload.name as t FROM "t/#"',
    'SELECT upper(payload.name) as u, lower(u) as l FROM "t/#"',
    'SELECT abs(payload.name) as u FROM "t/#"',
    'SELECT topic(1) as t1, clientid FROM "t/#"',
    'SELECT * FROM "t/#" WHERE qos = 1',
    'SELECT *, 1 as qos, qos as q2 FROM "t/#"',
    'SELECT payload, \'x\' as payload.name FROM "t/#"',
    'SELECT payload.name as p.a.b, p.a.b as back FROM "t/#"',
    'SELECT 1 as c[0], 2 as c[-0] FROM "t/#"',
    'SELECT not payload.flag as nf, not 1 as n1 FROM "t/#" WHERE not nf',
    'SELECT payload.hum as h FROM "t/#" WHERE h in (40, 41) and h not in (1)',
    'SELECT case when payload.temp > 30 then \'hot\' else \'ok\' end as c FROM "t/#"',
    'SELECT payload.temp as payload FROM "t/#" WHERE payload > 20',
    'SELECT payload.arr as arr FROM "t/#" WHERE arr = payload.arr',
    'SELECT topic as t FROM "t/#" WHERE t =~ \'t/+\'',
    'SELECT payload.x as x FROM "t/#" WHERE x > 1 or x < 1 or x = 1',
    'SELECT clientid FROM "t/#" WHERE payload.temp > 20 and payload.hum > 100',
    'SELECT payload.temp as t FROM "t/#" WHERE (t > 20) = true',
    'SELECT payload.name, payload as p, payload.temp FROM "t/#" WHERE p.name = payload.name',
    'SELECT clientid, upper(clientid) as u, topic, topic as t2 FROM "t/#"',
    'SELECT payload.arr as c, payload.hum as i, 9 as c[i], 8 as c[nope] FROM "t/#"',
    'SELECT is_null(payload.nothing) as a, is_null_var(payload.nothing) as b FROM "t/#" '
    'WHERE is_not_null(payload.temp)',
    # a column selected as itself, read again through paths (inlined from the event)
    'SELECT payload, payload.x as x FROM "t/#"',
    'SELECT payload, payload.temp as t, payload.nested.a.b as d FROM "t/#" WHERE t > 20',
    'SELECT payload as payload, upper(payload.name) as u, payload.arr[1] as a FROM "t/#"',
    'SELECT clientid, clientid as c, topic, topic.x as tx FROM "t/#"',
    # ... and then selected again as something else: later paths read the new value
    'SELECT payload, payload.nested as payload, payload.a as a FROM "t/#"',
    'SELECT payload.nested as payload, payload, payload.a as a FROM "t/#"',
    'SELECT payload, \'v\' as payload.name, payload.name as n FROM "t/#"',
    'SELECT payload, 1 as payload, payload, payload.x as x FROM "t/#"',
]

EVENTS = [
    make_event(),
    make_event(payload=b"not json"),
    make_event(payload=orjson.dumps({"temp": "25", "hum": None, "name": 7, "x": [1]})),
    make_event(payload=orjson.dumps([1, 2])),
    make_event(payload=b'"{\\"temp\\": 31}"'),
    make_event(clientid=None, topic="$SYS/x"),
    make_event(payload=None),
    make_event(payload={"x": 1, "nested": {"a": 2}}),  # a source's event: already a map
    {k: v for k, v in make_event().items() if k not in ("payload", "clientid")},
]


def _reference(sql: str, event: dict[str, Any]) -> Any:
    rule = compile_sql(sql)
    ev = Event(event)
    try:
        out = rule._fields.run(ev, {}, ev)
        if rule._where is not None and not rule._where(ev, out):
            return None
        return out
    except RuleEvalError as exc:
        return ("error", exc.reason, str(exc))


def _generated(sql: str, event: dict[str, Any]) -> Any:
    try:
        return compile_sql(sql).apply(event)
    except RuleEvalError as exc:
        return ("error", exc.reason, str(exc))


@pytest.mark.parametrize("sql", STATEMENTS)
def test_generated_select_agrees_with_the_closures(sql: str) -> None:
    for event in EVENTS:
        assert _generated(sql, event) == _reference(sql, event), event["payload"]


def test_the_statements_cover_passing_filtered_and_failing_cases() -> None:
    # The comparison above is only worth something if the cases differ in outcome.
    seen = {type(_generated(sql, ev)).__name__ for sql in STATEMENTS for ev in EVENTS}
    assert seen == {"dict", "NoneType", "tuple"}


def test_user_text_is_data_never_code() -> None:
    # Keys, aliases and strings that would be code if spliced into the generated source.
    evil = 'x"] + __import__("os").getpid() + ["'
    rule = compile_sql(
        f"SELECT payload.'{evil}' as k, '{evil}' as '{evil}', "
        f"'\\'); raise SystemExit(1) #' as q FROM \"t/#\" WHERE payload.'{evil}' = 1"
    )
    out = rule.apply({"payload": orjson.dumps({evil: 1})})
    assert out == {"k": 1, evil: evil, "q": "\\'); raise SystemExit(1) #"}


def test_var_names_lists_every_column_read() -> None:
    stmt = parse('SELECT upper(payload.a.b) as x, case when qos > 1 then topic end '
                 'FROM "t/#" WHERE x in (clientid, 2)')
    read = {name for f in stmt.fields for name in var_names(f.expr)}
    assert read == {"payload", "qos", "topic"}
    assert set(var_names(stmt.where)) == {"x", "clientid"}
