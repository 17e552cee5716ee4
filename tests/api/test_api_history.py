"""GET /actions/:id/metrics/history: the samples the app kept before the request."""

from __future__ import annotations

from tests.api.helpers import publish


async def samples(client):
    """How many samples the running app (its metrics ticker) took already."""
    return len((await client.get("/actions/fake:a1/metrics/history")).json()["t"])


async def test_a_chart_opened_later_gets_the_samples_before_it(client, controller):
    app = controller.app
    k = await samples(client)
    app.history.sample()
    publish(app, "t/1", b'{"v": 1}')
    publish(app, "t/2", b'{"v": 2}')
    app.history.sample()
    r = await client.get("/actions/fake:a1/metrics/history")
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["id"] == "fake:a1"
    assert body["interval"] == 5.0
    assert len(body["t"]) == k + 2
    assert body["metrics"]["matched"][k:] == [0, 2]
    assert body["metrics"]["success"][k:] == [0, 2]
    later = await client.get("/actions/fake:a1/metrics/history",
                             params={"since": body["t"][k]})
    assert len(later.json()["t"]) == (1 if body["t"][k + 1] > body["t"][k] else 0)


async def test_a_changed_action_keeps_its_history(client, controller):
    app = controller.app
    k = await samples(client)
    publish(app, "t/1", b'{"v": 1}')
    app.history.sample()
    r = await client.put("/actions/fake:a1", json={"connector": "c1",
                                                   "parameters": {"topic": "other"}})
    assert r.status_code == 200, r.text
    app.history.sample()
    body = (await client.get("/actions/fake:a1/metrics/history")).json()
    assert len(body["t"]) == k + 2
    assert body["metrics"]["matched"][k] == 1


async def test_unknown_components_are_not_found(client):
    r = await client.get("/actions/fake:nope/metrics/history")
    assert r.status_code == 404
    assert r.json()["message"] == "action fake:nope not found"
    assert (await client.get("/sources/fake:a1/metrics/history")).status_code == 404
