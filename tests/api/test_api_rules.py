"""``/rules``, ``/rule_test`` and ``/rules/:id/test``."""

from __future__ import annotations

from tests.api.fakes import FakeAction
from tests.api.helpers import on_disk, publish


async def test_create_get_list_filter_and_page(client, controller, config_file):
    r = await client.post("/rules", json={"id": "r2", "sql": 'SELECT * FROM "s/#", "u/1"',
                                          "actions": ["fake:a1"], "enable": False,
                                          "description": "second", "name": "Second"})
    assert r.status_code == 201, r.text
    assert r.json()["from"] == ["s/#", "u/1"]
    assert r.json()["name"] == "Second"
    auto = await client.post("/rules", json={"sql": 'SELECT * FROM "x/#"'})
    assert auto.status_code == 201
    assert len(auto.json()["id"]) == 8
    ids = [d["id"] for d in (await client.get("/rules")).json()["data"]]
    assert set(ids) == {"r1", "r2", auto.json()["id"]}

    async def ids_of(**params):
        body = (await client.get("/rules", params=params)).json()
        return [d["id"] for d in body["data"]], body["meta"]

    assert (await ids_of(enable="false"))[0] == ["r2"]
    assert (await ids_of(**{"from": "u/1"}))[0] == ["r2"]
    assert (await ids_of(like_id="r"))[0] == ["r1", "r2"]
    assert (await ids_of(like_from="s/"))[0] == ["r2"]
    assert (await ids_of(like_description="sec"))[0] == ["r2"]
    page2, meta = await ids_of(page=2, limit=1)
    assert len(page2) == 1
    assert meta == {"page": 2, "limit": 1, "count": 3, "hasnext": True}
    assert (await client.get("/rules", params={"page": 0})).status_code == 400
    assert (await client.get("/rules", params={"enable": "perhaps"})).status_code == 400
    assert "r2" in (await on_disk(controller, config_file))["rules"]
    assert "r2" not in controller.app.rules  # disabled
    assert "s/#" not in controller.app.topic_filters


async def test_create_bad_input(client):
    bad_sql = await client.post("/rules", json={"id": "b", "sql": 'SELECT * FORM "t"'})
    assert bad_sql.status_code == 400
    assert "rules.b.sql: line 1, col 10" in bad_sql.json()["message"]
    unknown_fn = await client.post("/rules", json={"id": "b", "sql": 'SELECT nofn(1) FROM "t"'})
    assert unknown_fn.status_code == 400
    assert "nofn" in unknown_fn.json()["message"]
    unknown_action = await client.post("/rules", json={"id": "b", "sql": 'SELECT * FROM "t"',
                                                       "actions": ["fake:nope"]})
    assert "rules.b.actions[0]: unknown action 'fake:nope'" in unknown_action.json()["message"]
    for body, word in (({"id": "b"}, "sql"), ({"sql": 1}, "sql"),
                       ({"sql": "SELECT * FROM t", "extra": 1}, "unknown field"),
                       ({"id": "bad id", "sql": 'SELECT * FROM "t"'}, "id")):
        r = await client.post("/rules", json=body)
        assert r.status_code == 400, body
        assert word in r.json()["message"], r.text
    dup = await client.post("/rules", json={"id": "r1", "sql": 'SELECT * FROM "t"'})
    assert dup.json()["code"] == "ALREADY_EXISTS"


async def test_update_partial_keeps_counters_and_routes(client, controller):
    publish(controller.app, "t/1", b'{"v": 1}')
    r = await client.put("/rules/r1", json={"sql": 'SELECT payload.v AS w FROM "n/#"'})
    assert r.status_code == 200, r.text
    assert r.json()["description"] == "first"
    assert controller.app.topic_filters == {"n/#"}
    publish(controller.app, "t/1", b'{"v": 2}')
    publish(controller.app, "n/1", b'{"v": 3}')
    assert [o for _, _, o in FakeAction.received] == [{"v": 1}, {"w": 3}]
    m = (await client.get("/rules/r1/metrics")).json()
    assert m["metrics"]["matched"] == 2  # counted across the update, as EMQX does
    assert "matched.rate" in m["metrics"]
    null = await client.put("/rules/r1", json={"sql": None})
    assert null.status_code == 400
    bad = await client.put("/rules/r1", json={"sql": "SELECT"})
    assert bad.status_code == 400
    assert controller.app.topic_filters == {"n/#"}  # nothing applied
    assert (await client.put("/rules/zz", json={})).status_code == 404


async def test_delete_metrics_reset(client, controller):
    publish(controller.app, "t/1", b'{"v": 1}')
    assert (await client.put("/rules/r1/metrics/reset")).status_code == 204
    assert (await client.get("/rules/r1/metrics")).json()["metrics"]["matched"] == 0
    assert (await client.delete("/rules/r1")).status_code == 204
    assert controller.app.rules == {}
    assert controller.app.topic_filters == set()
    assert (await client.delete("/rules/r1")).status_code == 404
    assert (await client.get("/rules/r1/metrics")).status_code == 404


async def test_rule_test(client):
    ok = await client.post("/rule_test", json={
        "sql": 'SELECT payload.v AS v, topic FROM "t/#" WHERE payload.v > 1',
        "context": {"topic": "t/a", "payload": '{"v": 2}', "event_type": "message_publish"}})
    assert (ok.status_code, ok.json()) == (200, {"v": 2, "topic": "t/a"})
    as_object = await client.post("/rule_test", json={
        "sql": 'SELECT payload.v AS v FROM "t/#"', "context": {"payload": {"v": 5}}})
    assert as_object.json() == {"v": 5}
    foreach = await client.post("/rule_test", json={
        "sql": 'FOREACH payload.xs AS x FROM "t/#"',
        "context": {"payload": '{"xs": [1, 2]}'}})
    assert [o["x"] for o in foreach.json()] == [1, 2]
    for sql, topic in (('SELECT * FROM "t/#" WHERE payload.v > 5', "t/a"),
                       ('SELECT * FROM "other/#"', "t/a")):
        r = await client.post("/rule_test", json={"sql": sql, "context": {
            "topic": topic, "payload": '{"v": 2}'}})
        assert (r.status_code, r.json()["code"]) == (412, "NOT_MATCH")
    bad = await client.post("/rule_test", json={"sql": "SELECT FROM", "context": {}})
    assert (bad.status_code, bad.json()["code"]) == (400, "BAD_REQUEST")
    assert "line 1" in bad.json()["message"]
    for body in ({"context": {}}, {"sql": 'SELECT * FROM "t"', "context": {"topic": 1}},
                 {"sql": 'SELECT * FROM "t"', "context": {"event_type": "client_pong"}}):
        assert (await client.post("/rule_test", json=body)).status_code == 400, body


async def test_stored_rule_test_renders_without_sending(client, controller):
    r = await client.post("/rules/r1/test", json={"context": {"topic": "t/9",
                                                              "payload": '{"v": 7}'}})
    assert r.status_code == 200, r.text
    assert r.json() == {"output": {"v": 7},
                        "actions": [{"action": "fake:a1",
                                     "rendered": [{"topic": "out", "value": {"v": 7}}]}]}
    assert FakeAction.received == []  # nothing was sent
    miss = await client.post("/rules/r1/test", json={"context": {"topic": "zz"}})
    assert miss.status_code == 412
    send = await client.post("/rules/r1/test", json={
        "context": {}, "stop_action_after_template_rendering": False})
    assert send.status_code == 400
    assert (await client.post("/rules/zz/test", json={})).status_code == 404


async def test_a_filter_deeper_than_brokers_take_is_refused(client, controller):
    deep = "/".join(["l"] * 202)  # Mosquitto ends the connection on a SUBSCRIBE of it
    r = await client.post("/rules", json={"id": "deep", "sql": f'SELECT * FROM "{deep}"'})
    assert r.status_code == 400, r.text
    assert "rules.deep" in r.json()["message"] and "more than 128" in r.json()["message"]
    put = await client.put("/rules/r1", json={"sql": f'SELECT * FROM "t/#", "{deep}"'})
    assert put.status_code == 400, put.text
    assert "rules.r1" in put.json()["message"] and "202 levels" in put.json()["message"]
    assert deep not in controller.app.topic_filters
