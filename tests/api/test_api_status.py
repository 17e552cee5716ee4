"""Access control, ``/status``, ``/metrics`` (Prometheus), ``/config/reload``, write-back."""

from __future__ import annotations

import asyncio
import base64
from types import SimpleNamespace

import httpx
import yaml

from mqferry._api import create_api
from tests.api.helpers import publish


async def test_every_route_needs_a_key(controller, keys):
    store, (key, secret) = keys
    api = create_api(controller, store)
    transport = httpx.ASGITransport(app=api)
    async with httpx.AsyncClient(transport=transport, base_url="http://m") as c:
        for path in ("/api/v5/rules", "/api/v5/connectors", "/api/v5/metrics",
                     "/api/v5/status", "/api/v5/openapi.json", "/api/v5/docs",
                     "/api/v5/docs/swagger-ui-bundle.js"):
            r = await c.get(path)
            assert r.status_code == 401, path
            assert r.json()["code"] == "UNAUTHORIZED"
            assert r.headers["www-authenticate"].startswith("Basic")
        wrong = await c.get("/api/v5/rules", auth=(key, secret + "x"))
        assert wrong.status_code == 401
        unknown = await c.get("/api/v5/rules", auth=("mqf_nobody", secret))
        assert unknown.status_code == 401
        garbage = await c.get("/api/v5/rules", headers={"authorization": "Basic %%%"})
        assert garbage.status_code == 401
        no_colon = base64.b64encode(key.encode()).decode()
        assert (await c.get("/api/v5/rules", headers={
            "authorization": f"Basic {no_colon}"})).status_code == 401
        assert (await c.get("/api/v5/rules", auth=(key, secret))).status_code == 200
        # liveness for orchestrators: no key, no settings
        public = await c.get("/status")
        assert public.status_code == 200
        assert public.json() == {"status": "running", "ready": True}
        await controller.app.mqtt.stop()  # the MQTT session is gone
        public = await c.get("/status")
        assert public.status_code == 503
        assert public.json() == {"status": "running", "ready": False}


def test_key_store_keeps_only_hashes(tmp_path):
    from mqferry._api import KeyStore

    store = KeyStore(tmp_path / "k.json")
    key, secret = store.create("ops", "for dashboards")
    text = (tmp_path / "k.json").read_text()
    assert secret not in text
    assert key.api_key in text
    assert (tmp_path / "k.json").stat().st_mode & 0o777 == 0o600
    fresh = KeyStore(tmp_path / "k.json")
    assert fresh.verify(key.api_key, secret)
    assert not fresh.verify(key.api_key, "x")
    try:
        store.create("ops")
    except ValueError as exc:
        assert "ops" in str(exc)
    else:
        raise AssertionError("a duplicate key name was accepted")
    assert store.delete("ops")
    assert not fresh.verify(key.api_key, secret)  # re-read on change


async def test_status_lists_components(client):
    body = (await client.get("/status")).json()
    assert body["status"] == "running"
    assert body["ready"] is True
    assert body["mqtt"] == {"status": "connected"}
    assert body["connectors"] == [{"id": "fake:c1", "status": "connected"}]
    assert body["actions"] == [{"id": "fake:a1", "status": "connected"}]
    assert body["rules"] == {"total": 1, "enabled": 1}
    assert body["tasks"] == []


async def test_status_lists_a_background_loop_that_died(client, controller):
    app = controller.app

    class Poisoned:  # an action's metrics whose tick raises: the metrics loop dies on it
        def __getattr__(self, name):
            return getattr(app.actions["fake:a1"].metrics, name)

        def tick(self):
            raise ArithmeticError("injected")

    app.actions["poisoned:x"] = SimpleNamespace(metrics=Poisoned())
    app.tasks.start()
    try:
        for _ in range(100):
            tasks = (await client.get("/status")).json()["tasks"]
            if tasks:
                break
            await asyncio.sleep(0.02)
        [task] = tasks
        assert (task["task"], task["owner"]) == ("mqferry[metrics].tick", "metrics")
        assert "ArithmeticError('injected')" in task["reason"]
    finally:
        del app.actions["poisoned:x"]
        await app.tasks.stop()


async def test_prometheus_metrics(client, controller):
    publish(controller.app, "t/1", b'{"v": 1}')
    publish(controller.app, "t/1", b"not json")
    r = await client.get("/metrics")
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/plain; version=0.0.4")
    text = r.text
    # every sample names the node it comes from (the exposition sorts the labels)
    node = 'node="mqferry@localhost"'
    assert f'mqferry_rule_matched_total{{id="r1",{node}}} 2.0' in text
    assert f'mqferry_rule_failed_by_reason_total{{id="r1",{node},reason="exception"}} 1.0' in text
    assert f'mqferry_action_success_total{{id="fake:a1",{node},type="fake"}} 1.0' in text
    assert "# TYPE mqferry_action_rate gauge" in text
    assert (f'mqferry_status{{id="fake:c1",kind="connector",{node},status="connected"}} 1.0'
            in text)
    assert "s3cret" not in text


async def test_reload_applies_the_edited_file(client, controller, config_file):
    data = yaml.safe_load(config_file.read_text())
    data["rules"]["r9"] = {"sql": 'SELECT * FROM "nine/#"', "actions": ["fake:a1"]}
    config_file.write_text(yaml.safe_dump(data))
    # An API change now would overwrite the edit: refused until the file is reloaded.
    conflict = await client.post("/rules", json={"id": "r5", "sql": 'SELECT * FROM "f"'})
    assert (conflict.status_code, conflict.json()["code"]) == (409, "CONFLICT")
    r = await client.post("/config/reload")
    assert r.status_code == 200, r.text
    assert r.json()["rules_changed"] == ["r9"]
    assert r.json()["subscribed"] == ["nine/#"]
    assert "nine/#" in controller.app.topic_filters
    assert (await client.post("/rules", json={"id": "r5",
                                              "sql": 'SELECT * FROM "f"'})).status_code == 201


async def test_reload_waits_for_an_editor_to_finish_writing_the_file(
        client, controller, config_file):
    """The file is caught after its first part, which is valid YAML on its own: the reload must
    wait for the rest rather than apply the first part (rule r8 without r9)."""
    data = yaml.safe_load(config_file.read_text())
    data["rules"]["r8"] = {"sql": 'SELECT * FROM "eight/#"', "actions": ["fake:a1"]}
    first = yaml.safe_dump(data, sort_keys=False)
    second = "  r9:\n    sql: SELECT * FROM \"nine/#\"\n    actions: [fake:a1]\n"
    assert first.endswith("- fake:a1\n")  # r8 is the last entry of rules: r9 follows it
    with config_file.open("w") as f:
        f.write(first)
        f.flush()

        async def rest() -> None:
            await asyncio.sleep(0.1)
            f.write(second)
            f.flush()

        finish = asyncio.create_task(rest())
        r = await client.post("/config/reload")
        await finish
    assert r.status_code == 200, r.text
    assert sorted(r.json()["rules_changed"]) == ["r8", "r9"]
    assert {"eight/#", "nine/#"} <= controller.app.topic_filters


async def test_reload_of_an_invalid_file_changes_nothing(client, controller, config_file):
    before = config_file.read_text()
    config_file.write_text(before.replace("SELECT payload.v", "SELECT payload.v FROM FROM"))
    r = await client.post("/config/reload")
    assert r.status_code == 400
    assert "rules.r1.sql" in r.json()["message"]
    assert controller.app.topic_filters == {"t/#"}


async def test_openapi_document_lists_the_paths(client):
    doc = (await client.get("/openapi.json")).json()
    paths = set(doc["paths"])
    for p in ("/api/v5/connectors", "/api/v5/connectors/{id}",
              "/api/v5/connectors/{id}/enable/{enable}", "/api/v5/connectors_probe",
              "/api/v5/actions/{id}/metrics", "/api/v5/actions/{id}/metrics/reset",
              "/api/v5/actions_probe", "/api/v5/actions_summary", "/api/v5/sources",
              "/api/v5/rules", "/api/v5/rules/{id}/test", "/api/v5/rule_test",
              "/api/v5/rules/{id}/metrics", "/api/v5/status", "/api/v5/metrics"):
        assert p in paths, p
    schemas = doc["components"]["schemas"]
    assert "connectors_fake_post" in schemas
    assert "connectors_kafka_producer_post" in schemas


async def test_cors_is_off_by_default_and_allows_configured_origins(controller, keys):
    import httpx

    from mqferry._api import create_api

    store, _ = keys
    origin = {"Origin": "https://console.example.com"}

    async def preflight() -> httpx.Response:
        api = create_api(controller, store)
        transport = httpx.ASGITransport(app=api)
        async with httpx.AsyncClient(transport=transport, base_url="http://mqferry") as c:
            return await c.options("/api/v5/rules", headers={
                **origin, "Access-Control-Request-Method": "GET",
                "Access-Control-Request-Headers": "authorization"})

    assert "access-control-allow-origin" not in (await preflight()).headers
    controller.app.config.raw.api.cors_origins = ["https://console.example.com"]
    allowed = await preflight()
    assert allowed.status_code == 200
    assert allowed.headers["access-control-allow-origin"] == "https://console.example.com"
    assert "authorization" in allowed.headers["access-control-allow-headers"].lower()
