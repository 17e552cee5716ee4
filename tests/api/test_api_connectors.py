"""``/connectors``: every route, bad input, dependents, probes, persistence, redaction."""

from __future__ import annotations

from mqferry._config import REDACTED
from tests.api.fakes import FakeConnector
from tests.api.helpers import on_disk


async def test_list_and_get_redact_the_password(client):
    listed = await client.get("/connectors")
    assert listed.status_code == 200
    [c1] = listed.json()
    assert (c1["type"], c1["name"], c1["url"], c1["password"]) == ("fake", "c1", "fake://one",
                                                                   REDACTED)
    assert c1["status"] == "connected"
    assert c1["actions"] == ["a1"]
    one = await client.get("/connectors/fake:c1")
    assert one.json()["password"] == REDACTED
    assert "s3cret-pw" not in listed.text + one.text


async def test_create_persists_and_starts(client, controller, config_file):
    r = await client.post("/connectors", json={"type": "fake", "name": "c2", "url": "fake://2",
                                               "password": "pw2"})
    assert r.status_code == 201, r.text
    assert r.json()["password"] == REDACTED
    assert "fake:c2" in controller.app.connectors
    assert ("start", "fake:c2") in FakeConnector.events
    saved = await on_disk(controller, config_file)
    assert saved["connectors"]["fake"]["c2"] == {"url": "fake://2", "password": "pw2"}


async def test_create_refuses_duplicates_and_bad_input(client, controller):
    dup = await client.post("/connectors", json={"type": "fake", "name": "c1"})
    assert (dup.status_code, dup.json()["code"]) == (400, "ALREADY_EXISTS")
    cases = {
        "unknown field": {"type": "fake", "name": "x", "nope": 1},
        "url": {"type": "fake", "name": "x", "url": 5},
        "type": {"type": "no_such_type", "name": "x"},
        "name": {"type": "fake", "name": "bad name!"},
        "field required": {"type": "fake"},
    }
    for expected, body in cases.items():
        r = await client.post("/connectors", json=body)
        assert r.status_code == 400, (body, r.text)
        assert r.json()["code"] == "BAD_REQUEST"
        assert expected in r.json()["message"].lower(), r.text
    for raw in (b"not json", b"[1, 2]"):
        r = await client.post("/connectors", content=raw,
                              headers={"content-type": "application/json"})
        assert r.status_code == 400, r.text
    assert set(controller.app.connectors) == {"fake:c1"}


async def test_get_unknown_and_malformed_ids(client):
    assert (await client.get("/connectors/fake:nope")).status_code == 404
    r = await client.get("/connectors/nocolon")
    assert (r.status_code, r.json()["code"]) == (400, "BAD_REQUEST")


async def test_update_keeps_a_redacted_password_and_restarts_dependents(client, controller,
                                                                        config_file):
    old_action = controller.app.actions["fake:a1"]
    r = await client.put("/connectors/fake:c1", json={"url": "fake://one", "description": "moved",
                                                      "password": "******"})
    assert r.status_code == 200, r.text
    assert r.json()["description"] == "moved"
    saved = (await on_disk(controller, config_file))["connectors"]["fake"]["c1"]
    assert saved == {"url": "fake://one", "description": "moved", "password": "s3cret-pw"}
    assert controller.app.actions["fake:a1"] is not old_action  # rebuilt on the new connector
    assert controller.app.rules["r1"].actions == [controller.app.actions["fake:a1"]]
    bad = await client.put("/connectors/fake:c1", json={"url": ["x"]})
    assert bad.status_code == 400
    assert "connectors.fake.c1.url" in bad.json()["message"]
    assert (await client.put("/connectors/fake:zz", json={})).status_code == 404


async def test_delete_refused_while_used_then_allowed(client, controller, config_file):
    r = await client.delete("/connectors/fake:c1")
    assert r.status_code == 400
    assert "fake:a1" in r.json()["message"]
    assert r.json()["dependents"] == ["fake:a1"]
    await client.post("/connectors", json={"type": "fake", "name": "c2"})
    assert (await client.delete("/connectors/fake:c2")).status_code == 204
    assert "fake:c2" not in controller.app.connectors
    assert "c2" not in (await on_disk(controller, config_file))["connectors"]["fake"]
    assert (await client.delete("/connectors/fake:c2")).status_code == 404


async def test_enable_and_disable(client, controller):
    r = await client.put("/connectors/fake:c1/enable/false")
    assert r.status_code == 204
    assert "fake:c1" not in controller.app.connectors
    assert "fake:a1" not in controller.app.actions  # its connector is off
    view = (await client.get("/connectors/fake:c1")).json()
    assert (view["enable"], view["status"], view["status_reason"]) == (False, "stopped",
                                                                       "disabled")
    action = (await client.get("/actions/fake:a1")).json()
    assert action["status"] == "stopped"
    assert (await client.put("/connectors/fake:c1/enable/true")).status_code == 204
    assert "fake:a1" in controller.app.actions
    assert (await client.put("/connectors/fake:c1/enable/maybe")).status_code == 400


async def test_probe(client, controller):
    good = await client.post("/connectors_probe", json={"type": "fake", "name": "p",
                                                        "url": "fake://ok"})
    assert good.status_code == 204, good.text
    bad = await client.post("/connectors_probe", json={"type": "fake", "name": "p",
                                                       "url": "bad://host"})
    assert (bad.status_code, bad.json()["code"]) == (400, "TEST_FAILED")
    assert "cannot reach" in bad.json()["message"]
    invalid = await client.post("/connectors_probe", json={"type": "fake", "name": "p",
                                                           "url": 1})
    assert invalid.status_code == 400
    assert "fake:p" not in controller.app.connectors
