"""``/actions`` (and the same routes under ``/sources``): CRUD, metrics, summary, probe."""

from __future__ import annotations

from tests.api.fakes import FakeAction
from tests.api.helpers import on_disk, publish


async def test_list_get_create_update(client, controller, config_file):
    [a1] = (await client.get("/actions")).json()
    assert (a1["type"], a1["name"], a1["connector"], a1["parameters"]["topic"]) == (
        "fake", "a1", "c1", "out")
    r = await client.post("/actions", json={"type": "fake", "name": "a2", "connector": "c1",
                                            "parameters": {"topic": "two"}})
    assert r.status_code == 201, r.text
    assert "fake:a2" in controller.app.actions
    r = await client.put("/actions/fake:a2", json={"connector": "c1",
                                                   "parameters": {"topic": "moved"}})
    assert r.json()["parameters"]["topic"] == "moved"
    assert controller.app.actions["fake:a2"].topic == "moved"
    saved = await on_disk(controller, config_file)
    assert saved["actions"]["fake"]["a2"]["parameters"] == {"topic": "moved"}


async def test_create_bad_input(client):
    missing_conn = await client.post("/actions", json={"type": "fake", "name": "a2",
                                                       "connector": "nope",
                                                       "parameters": {"topic": "t"}})
    assert missing_conn.status_code == 400
    assert "actions.fake.a2.connector: no fake connector named 'nope'" in (
        missing_conn.json()["message"])
    no_params = await client.post("/actions", json={"type": "fake", "name": "a2",
                                                    "connector": "c1"})
    assert no_params.status_code == 400
    assert "parameters" in no_params.json()["message"]
    wrong_type = await client.post("/actions", json={"type": "fake", "name": "a2",
                                                     "connector": "c1",
                                                     "parameters": {"topic": "t",
                                                                    "hold": "often"}})
    assert wrong_type.status_code == 400
    assert "hold" in wrong_type.json()["message"]
    dup = await client.post("/actions", json={"type": "fake", "name": "a1", "connector": "c1",
                                              "parameters": {"topic": "t"}})
    assert dup.json()["code"] == "ALREADY_EXISTS"


async def test_delete_in_use_and_with_dependent_rules(client, controller, config_file):
    r = await client.delete("/actions/fake:a1")
    assert r.status_code == 400
    assert r.json()["rules"] == ["r1"]
    r = await client.delete("/actions/fake:a1", params={"also_delete_dep_actions": "true"})
    assert r.status_code == 204
    assert "fake:a1" not in controller.app.actions
    rule = (await on_disk(controller, config_file))["rules"]["r1"]
    assert rule["actions"] == []
    assert (await client.get("/actions/fake:a1")).status_code == 404


async def test_metrics_reset_and_summary(client, controller):
    publish(controller.app, "t/1", b'{"v": 1}')
    publish(controller.app, "t/2", b'{"v": 2}')
    m = (await client.get("/actions/fake:a1/metrics")).json()
    assert m["metrics"]["matched"] == 2
    assert m["metrics"]["success"] == 2
    assert m["node_metrics"][0]["metrics"]["matched"] == 2
    assert {"rate", "rate_max", "rate_last5m"} <= set(m["metrics"])
    assert (await client.put("/actions/fake:a1/metrics/reset")).status_code == 204
    assert (await client.get("/actions/fake:a1/metrics")).json()["metrics"]["matched"] == 0
    assert (await client.get("/actions/fake:zz/metrics")).status_code == 404
    [summary] = (await client.get("/actions_summary")).json()
    assert (summary["name"], summary["rules"], summary["status"]) == ("a1", ["r1"],
                                                                      "connected")
    assert summary["created_at"] <= summary["last_modified_at"]
    assert [o for _, _, o in FakeAction.received] == [{"v": 1}, {"v": 2}]


async def test_enable_disable_stops_routing(client, controller):
    assert (await client.put("/actions/fake:a1/enable/false")).status_code == 204
    assert controller.app.rules["r1"].actions == []
    publish(controller.app, "t/1", b'{"v": 1}')
    assert FakeAction.received == []
    assert (await client.put("/actions/fake:a1/enable/true")).status_code == 204
    publish(controller.app, "t/1", b'{"v": 1}')
    assert len(FakeAction.received) == 1


async def test_probe(client, controller):
    ok = await client.post("/actions_probe", json={"type": "fake", "name": "p",
                                                   "connector": "c1",
                                                   "parameters": {"topic": "t"}})
    assert ok.status_code == 204, ok.text
    bad = await client.post("/actions_probe", json={"type": "fake", "name": "p",
                                                    "connector": "zz",
                                                    "parameters": {"topic": "t"}})
    assert bad.status_code == 400
    assert "connector" in bad.json()["message"]
    assert "fake:p" not in controller.app.actions


async def test_sources_have_the_same_routes(client):
    assert (await client.get("/sources")).json() == []
    assert (await client.get("/sources_summary")).json() == []
    r = await client.post("/sources", json={"type": "kafka_consumer", "name": "s",
                                            "connector": "nope",
                                            "parameters": {"topic": "k"}})
    assert r.status_code == 400
    assert "sources.kafka_consumer.s.connector" in r.json()["message"]
    assert (await client.get("/sources/kafka_consumer:s/metrics")).status_code == 404
    assert (await client.delete("/sources/kafka_consumer:s")).status_code == 404
