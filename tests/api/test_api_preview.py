"""``/rules/:id/test`` with the real Kafka producer action: the record it would write, unsent."""

from __future__ import annotations

import httpx

from mqferry._api import KeyStore, create_api
from mqferry._config import validate_config
from mqferry._plugins import load_plugins
from mqferry._runtime import App
from mqferry._runtime.reconfig import Controller


async def test_renders_the_kafka_record(tmp_path):
    plugins = load_plugins()
    data = {
        "connectors": {"kafka_producer": {"k": {"bootstrap_hosts": "127.0.0.1:1"}}},
        "actions": {"kafka_producer": {"sink": {"connector": "k", "parameters": {
            "topic": "t-${payload.site}", "partition_strategy": "key_dispatch",
            "message": {"key": "${clientid}", "value": "${payload.v}"},
            "kafka_ext_headers": [{"kafka_ext_header_key": "src",
                                   "kafka_ext_header_value": "${topic}"}]}}}},
        "rules": {"r": {"sql": 'SELECT payload, clientid, topic FROM "s/#"',
                        "actions": ["kafka_producer:sink"]}},
    }
    cfg = validate_config(data, plugins.registries(), plugins.function_table())
    app = App(cfg, data_dir=tmp_path)  # not started: nothing can be sent
    store = KeyStore(tmp_path / "k.json")
    key, secret = store.create("t")
    api = create_api(Controller(app, plugins, data=data), store)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=api),
                                 base_url="http://m/api/v5",
                                 auth=(key.api_key, secret)) as c:
        r = await c.post("/rules/r/test", json={"context": {
            "topic": "s/1", "clientid": "dev-1", "payload": '{"site": "north", "v": 21}'}})
        assert r.status_code == 200, r.text
        [action] = r.json()["actions"]
        assert action["action"] == "kafka_producer:sink"
        [record] = action["rendered"]
        assert record["topic"] == "t-north"
        assert record["key"] == "dev-1"
        assert record["value"] == "21"
        assert record["headers"] == [{"key": "src", "value": "s/1"}]
        assert record["partition_strategy"] == "key_dispatch"
        assert isinstance(record["timestamp"], int)
        missing = await c.post("/rules/r/test", json={"context": {
            "topic": "s/1", "payload": '{"v": 1}'}})
        assert "failed.render" in missing.json()["actions"][0]["rendered"][0]["error"]
    assert app.actions["kafka_producer:sink"].metrics.get("matched") == 0


def test_an_action_without_a_preview_method_is_shown_as_its_output():
    from mqferry._api.preview import preview

    class Renders:
        """Has a ``renderer`` like the Kafka producer's, but offers no ``preview``."""

        class renderer:
            @staticmethod
            def render_topic(output):
                raise AssertionError("the core must not reach into an action's renderer")

    assert preview(Renders(), {"a": 1}) == {"output": {"a": 1}}


def test_an_action_preview_failure_is_the_reason():
    from mqferry._api.preview import preview

    class Fails:
        def preview(self, output):
            raise ValueError("no topic")

    assert preview(Fails(), {}) == {"error": "ValueError: no topic"}
