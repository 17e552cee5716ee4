"""EMQX's SELECT/FOREACH semantics, end to end: real Mosquitto in, republish out, mosquitto_sub.

Each rule republishes its whole output (``${.}``) so what a subscriber receives is what the rule
selected. The cases are those of ``tests/rules/test_emqx_vectors_select.py``.
"""

from __future__ import annotations

import json
import time
import uuid

import pytest

from tests.integration.mqferry_process import MqferryProcess

pytestmark = pytest.mark.integration


def start(tmp_path, mqtt, p, sqls):
    rules = {
        name: {"sql": sql, "actions": [{"function": "republish", "args": {
            "topic": f"{p}/out/{name}", "payload": "${.}", "qos": 1}}]}
        for name, sql in sqls.items()
    }
    cfg = {"mqtt": {"server": f"{mqtt.host}:{mqtt.port}",
                    "clientid": f"mqferry-sem-{uuid.uuid4().hex[:8]}"},
           "rules": rules}
    app = MqferryProcess(cfg, tmp_path).start()
    app.wait_ready()
    time.sleep(0.5)  # the rule subscriptions are in place
    return app


def outputs(messages):
    got: dict[str, list] = {}
    for m in messages:
        got.setdefault(m.topic.rsplit("/", 1)[1], []).append(json.loads(m.text))
    return got


def test_undefined_keys_payload_put_and_foreach(tmp_path, mqtt_broker, mosquitto_pub,
                                                mosquitto_sub):
    p = f"sem-{uuid.uuid4().hex[:6]}"
    sqls = {
        # Class 1: undefined values keep their key with null.
        "undef": (f"SELECT payload.nope as a, CASE WHEN payload.x > 5 THEN 1 END as b, "
                  f"payload.x as x FROM \"{p}/in/undef\""),
        # Class 2: an alias path writes into the selected payload.
        "put": (f"SELECT payload, 'STEVE' as payload.data[1].name FROM \"{p}/in/put\""),
        # Class 4: cascaded aliases with WHERE on them, missing item fields as null, DO sees
        # the FOREACH aliases.
        "each": ("FOREACH payload as p, p.sensors as s, s.info as info "
                 "DO info.cmd as cmd, info.name as name, s.page as page "
                 "INCASE is_not_null(info.cmd) "
                 f"FROM \"{p}/in/each\" WHERE s.page = '2'"),
    }
    app = start(tmp_path, mqtt_broker, p, sqls)
    try:
        with mosquitto_sub(f"{p}/out/#", 4) as sub:
            mosquitto_pub(f"{p}/in/undef", '{"x": 1}')
            mosquitto_pub(f"{p}/in/put", json.dumps(
                {"f1": "f1", "data": [{"name": "n1", "idx": 1}, {"name": "n2", "idx": 2}]}))
            mosquitto_pub(f"{p}/in/each", json.dumps({"sensors": {"page": 2, "info": [
                {"cmd": "1", "name": "a"}, {"cmd": "2"}, {"name": "skipped"}]}}))
            got = outputs(sub.wait(30))
    finally:
        assert app.terminate() == 0
    assert got["undef"] == [{"a": None, "b": None, "x": 1}], app.log
    assert got["put"] == [{"payload": {"f1": "f1", "data": [
        {"name": "STEVE", "idx": 1}, {"name": "n2", "idx": 2}]}}], app.log
    assert got["each"] == [{"cmd": "1", "name": "a", "page": 2},
                           {"cmd": "2", "name": None, "page": 2}], app.log


def test_list_ends_and_topic_match(tmp_path, mqtt_broker, mosquitto_pub, mosquitto_sub):
    p = f"sem-{uuid.uuid4().hex[:6]}"
    sqls = {
        # Class 3: [-0] appends, [0] prepends, and both read as undefined.
        "ends": ("SELECT payload.arr as c, 1 as c[-0], 0 as c[0], payload.arr[0] as h, "
                 f"payload.arr[-0] as t FROM \"{p}/in/ends\""),
        # Class 6: a first-level wildcard does not match a topic starting with `$`.
        "match": ("SELECT '$SYS/x' =~ '#' as sys_hash, '$SYS/x' =~ '$SYS/+' as sys_named, "
                  f"topic =~ '+/in/+' as plain FROM \"{p}/in/match\""),
    }
    app = start(tmp_path, mqtt_broker, p, sqls)
    try:
        with mosquitto_sub(f"{p}/out/#", 2) as sub:
            mosquitto_pub(f"{p}/in/ends", '{"arr": [5, 6]}')
            mosquitto_pub(f"{p}/in/match", "{}")
            got = outputs(sub.wait(30))
    finally:
        assert app.terminate() == 0
    assert got["ends"] == [{"c": [0, 5, 6, 1], "h": None, "t": None}], app.log
    assert got["match"] == [{"sys_hash": False, "sys_named": True, "plain": True}], app.log


def test_unaliased_fields_and_computed_alias_index(tmp_path, mqtt_broker, mosquitto_pub,
                                                   mosquitto_sub):
    p = f"sem-{uuid.uuid4().hex[:6]}"
    sqls = {
        # A field without an alias is in the map later fields read first.
        "plain": f"SELECT payload.x, payload as q FROM \"{p}/in/plain\"",
        # An alias index read by name from the fields selected so far.
        "index": (f"SELECT payload.arr as c, payload.i as i, 9 as c[i], 8 as c[nope] "
                  f"FROM \"{p}/in/index\""),
    }
    app = start(tmp_path, mqtt_broker, p, sqls)
    try:
        with mosquitto_sub(f"{p}/out/#", 2) as sub:
            mosquitto_pub(f"{p}/in/plain", '{"x": 5, "y": 6}')
            mosquitto_pub(f"{p}/in/index", '{"arr": [1, 2, 3], "i": 2}')
            got = outputs(sub.wait(30))
    finally:
        assert app.terminate() == 0
    assert got["plain"] == [{"payload": {"x": 5}, "q": {"x": 5}}], app.log
    assert got["index"] == [{"c": [1, 9, 3], "i": 2}], app.log
