"""Errors people read: which of key or secret is wrong, where a JSON body breaks, its type."""

from __future__ import annotations

import json

import httpx
import pytest

from mqferry._api import KeyStore, create_api
from mqferry._api.errors import json_position

RULE = {"id": "r9", "sql": 'SELECT * FROM "t/#"', "actions": []}


@pytest.fixture
async def anonymous(controller, keys):
    store, _ = keys
    transport = httpx.ASGITransport(app=create_api(controller, store))
    async with httpx.AsyncClient(transport=transport, base_url="http://m/api/v5") as c:
        yield c


async def test_401_tells_an_unknown_key_from_a_wrong_secret(anonymous, keys):
    _, (key, secret) = keys
    unknown = await anonymous.get("/rules", auth=("mqf_nobody", secret))
    assert unknown.status_code == 401
    assert unknown.json() == {"code": "UNAUTHORIZED", "message": "unknown API key 'mqf_nobody'"}
    wrong = await anonymous.get("/rules", auth=(key, secret + "x"))
    assert wrong.json()["message"] == f"wrong secret for API key {key!r}"
    assert secret not in wrong.text


async def test_401_without_a_key_says_how_to_send_one(anonymous):
    none = await anonymous.get("/rules")
    assert none.json()["message"].startswith("no API key was sent: send an API key and secret "
                                             "with HTTP Basic (curl -u KEY:SECRET)")
    bearer = await anonymous.get("/rules", headers={"authorization": "Bearer abc"})
    assert bearer.json()["message"].startswith(
        "the Authorization header is not HTTP Basic with key:secret")


def test_a_disabled_key_is_named_as_disabled(tmp_path):
    store = KeyStore(tmp_path / "keys.json")
    key, secret = store.create("k")
    raw = json.loads(store.path.read_text())
    raw["keys"][0]["enable"] = False
    store.path.write_text(json.dumps(raw))
    assert store.check(key.api_key, secret) == (None, f"API key {key.api_key!r} is disabled")
    # a wrong secret for a disabled key says only that the secret is wrong
    assert store.check(key.api_key, "x")[1] == f"wrong secret for API key {key.api_key!r}"


async def test_malformed_json_gives_line_and_column(client):
    body = b'{"id": "r9",\n "sql": }'
    for r in (await client.post("/rules", content=body,
                                headers={"content-type": "application/json"}),
              await client.put("/actions/fake:a1", content=body,
                               headers={"content-type": "application/json"})):
        assert r.status_code == 400
        assert r.json() == {"code": "BAD_REQUEST",
                            "message": "invalid JSON at line 2, column 9: Expecting value"}


def test_json_position_counts_characters_and_lines():
    text = '{"é": 1,\n\n  "b": ]}'
    with pytest.raises(json.JSONDecodeError) as info:
        json.loads(text)
    assert json_position(text.encode(), info.value.pos) == (info.value.lineno,
                                                            info.value.colno) == (3, 8)


@pytest.mark.parametrize(("headers", "said"), [
    ({}, "the request has no Content-Type"),
    ({"content-type": "application/x-www-form-urlencoded"},  # what curl -d sends
     "not 'application/x-www-form-urlencoded'"),
])
async def test_json_without_its_content_type_is_told_precisely(client, headers, said):
    r = await client.post("/rules", content=json.dumps(RULE).encode(), headers=headers)
    assert r.status_code == 400
    assert r.json()["message"] == (
        "send Content-Type: application/json: the body is read as JSON only with it "
        f"({said})")
    ok = await client.post("/rules", json=RULE)
    assert ok.status_code == 201, ok.text


async def test_config_problems_are_listed_without_a_count(client):
    r = await client.post("/rules", json={**RULE, "sql": "SELEC"})
    assert r.status_code == 400
    assert "problems)" not in r.json()["message"]
    r = await client.put("/actions/fake:a1", json={"connector": "c1", "parameters": {}})
    assert r.status_code == 400
    assert "problems)" not in r.json()["message"]
    assert r.json()["problems"][0]["path"].startswith("actions.fake.a1.parameters")


async def test_an_action_shows_its_last_error(client, controller):
    assert (await client.get("/actions/fake:a1")).json()["last_error"] is None
    failure = {"reason": "failed.too_large", "message": "a record of 9 bytes", "at": 1}
    controller.app.actions["fake:a1"].last_error = failure
    assert (await client.get("/actions/fake:a1")).json()["last_error"] == failure
