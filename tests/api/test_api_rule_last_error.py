"""A rule that fails on a message says why: a WARNING line and ``last_error`` in GET /rules/:id."""

from __future__ import annotations

import logging
import time

from mqferry.testing import RecordingAction
from tests.api.helpers import publish


async def test_a_failed_message_is_the_rules_last_error(client, controller, caplog):
    r = await client.post("/rules", json={
        "id": "dec", "sql": 'SELECT json_decode(payload) AS j FROM "dec/#"',
        "actions": ["fake:a1"]})
    assert r.status_code == 201, r.text
    assert r.json()["last_error"] is None
    before = time.time()
    with caplog.at_level(logging.WARNING, logger="mqferry._runtime.rules"):
        publish(controller.app, "dec/room-7", b"not json {")
    view = (await client.get("/rules/dec")).json()
    error = view["last_error"]
    assert error["reason"] == "failed.exception"
    assert error["topic"] == "dec/room-7"
    assert "json_decode" in error["message"] and "not json {" in error["message"]
    assert before * 1000 - 1 <= error["at"] <= time.time() * 1000 + 1
    [line] = [rec.getMessage() for rec in caplog.records if rec.levelno == logging.WARNING]
    assert "rule dec" in line and "'dec/room-7'" in line and "json_decode" in line
    # another rule is not touched, and the list shows the error too
    assert (await client.get("/rules/r1")).json()["last_error"] is None
    listed = {v["id"]: v for v in (await client.get("/rules")).json()["data"]}
    assert listed["dec"]["last_error"] == error


async def test_a_flood_of_bad_messages_logs_one_line_and_keeps_the_newest_error(
        client, controller, caplog):
    await client.post("/rules", json={
        "id": "div", "sql": 'SELECT 10 div payload.n AS q FROM "div/#"', "actions": ["fake:a1"]})
    with caplog.at_level(logging.WARNING, logger="mqferry._runtime.rules"):
        for i in range(200):
            publish(controller.app, f"div/{i}", b'{"n": 0}')
    lines = [rec.getMessage() for rec in caplog.records if "rule div" in rec.getMessage()]
    assert len(lines) == 1, lines
    error = (await client.get("/rules/div")).json()["last_error"]
    assert error["topic"] == "div/199"
    assert (await client.get("/rules/div/metrics")).json()["metrics"]["failed.exception"] == 200


class RefusingAction(RecordingAction):
    """An action whose submit raises, as a broken plugin's might."""

    def submit(self, output, delivery):
        raise RuntimeError("the action refuses")


async def test_an_action_that_refuses_an_output_is_the_last_error(client, controller):
    await client.post("/rules", json={"id": "ok", "sql": 'SELECT 1 AS one FROM "ok/#"',
                                      "actions": ["fake:a1"]})
    controller.app.rules["ok"].actions = [RefusingAction("refusing:x")]
    publish(controller.app, "ok/1", b"{}")
    error = (await client.get("/rules/ok")).json()["last_error"]
    assert error["reason"] == "actions.failed"
    assert error["action"] == "refusing:x"
    assert error["topic"] == "ok/1"
    assert "RuntimeError: the action refuses" in error["message"]


async def test_a_payload_path_on_a_payload_that_is_not_json_is_the_last_error(
        client, controller, caplog):
    await client.post("/rules", json={"id": "px", "sql": 'SELECT payload.x AS x FROM "px/#"',
                                      "actions": ["fake:a1"]})
    with caplog.at_level(logging.WARNING, logger="mqferry._runtime.rules"):
        publish(controller.app, "px/1", b"<xml/>")
    error = (await client.get("/rules/px")).json()["last_error"]
    assert (error["reason"], error["topic"]) == ("failed.exception", "px/1")
    assert error["message"] == "decode_json_failed: <xml/>"
    [line] = [r.getMessage() for r in caplog.records if "rule px" in r.getMessage()]
    assert "'px/1'" in line and "decode_json_failed" in line
