"""POST /rule_test with EMQX's broker events, as EMQX's dashboard sends them."""

from __future__ import annotations

import pytest


@pytest.mark.parametrize(("event_type", "from_"), [
    ("client_connected", "$events/client_connected"),
    ("client_connected", "$events/client/connected"),
    ("client_disconnected", "$events/client/disconnected"),
    ("session_subscribed", "$events/session_subscribed"),
    ("message_delivered", "$events/message/delivered"),
    ("message_acked", "$events/message_acked"),
    ("message_dropped", "$events/message/dropped"),
    ("delivery_dropped", "$events/delivery_dropped"),
    ("client_connack", "$events/client_connack"),
    ("client_check_authz_complete", "$events/client_check_authz_complete"),
])
async def test_an_event_rule_runs_on_the_events_example_columns(client, event_type, from_):
    r = await client.post("/rule_test", json={
        "sql": f'SELECT event, clientid, username FROM "{from_}"',
        "context": {"event_type": event_type, "username": "alice"}})
    assert r.status_code == 200, r.text
    out = r.json()
    assert out["event"] == event_type.replace("_", ".", 1)
    assert out["username"] == "alice"
    assert out["clientid"].startswith("c_emqx")


async def test_an_event_does_not_match_a_topic_rule_nor_another_event(client):
    for sql in ('SELECT * FROM "#"', 'SELECT * FROM "$events/client/disconnected"'):
        r = await client.post("/rule_test", json={
            "sql": sql, "context": {"event_type": "client_connected"}})
        assert (r.status_code, r.json()["code"]) == (412, "NOT_MATCH")


async def test_an_unknown_event_type_is_a_clear_400(client):
    r = await client.post("/rule_test", json={
        "sql": 'SELECT * FROM "t"', "context": {"event_type": "client_pong"}})
    assert r.status_code == 400
    assert "'client_pong' is not supported" in r.json()["message"]
    assert "client_connected" in r.json()["message"]
