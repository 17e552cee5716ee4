"""The example plugin of docs/plugins.md in a running app, against the real Mosquitto.

MQTT messages reach its rule function and its ``jsonl_file`` action; its ``ticker`` source feeds
a rule whose ``republish`` output mosquitto_sub receives.
"""

from __future__ import annotations

import asyncio
import json
import uuid

import pytest

import mqferry_example
from mqferry._config import validate_config
from mqferry._plugins import load_plugins
from mqferry._runtime import App

pytestmark = pytest.mark.integration


async def test_the_example_plugin_in_a_running_app(tmp_path, mqtt_broker, mosquitto_pub,
                                                   mosquitto_sub):
    p = f"example-{uuid.uuid4().hex[:8]}"
    out = tmp_path / "out.jsonl"
    plugins = load_plugins(extra=[("example", mqferry_example)])
    data = {
        "mqtt": {"server": f"{mqtt_broker.host}:{mqtt_broker.port}", "clientid": p},
        "actions": {"jsonl_file": {"out": {"parameters": {"path": str(out)}}}},
        "sources": {"ticker": {"clock": {"parameters": {"interval": "200ms", "count": 3}}}},
        "rules": {
            "temps": {"sql": f'SELECT c_to_f(payload.t) AS f, topic FROM "{p}/t/#"',
                      "actions": ["jsonl_file:out"]},
            "ticks": {"sql": 'SELECT n FROM "$bridges/ticker:clock"',
                      "actions": [{"function": "republish", "args": {
                          "topic": f"{p}/tick/${{n}}", "payload": "${n}", "qos": 1}}]},
        },
    }
    app = App(validate_config(data, plugins.registries(), plugins.function_table()),
              data_dir=tmp_path)
    with mosquitto_sub(f"{p}/tick/#", 3) as sub:
        await app.start()
        try:
            await app.mqtt.wait_connected(10)
            await asyncio.sleep(0.5)  # the rule subscriptions are in place
            await asyncio.to_thread(mosquitto_pub, f"{p}/t/1", '{"t": 100}')
            await asyncio.to_thread(mosquitto_pub, f"{p}/t/2", '{"t": "warm"}')  # fails alone
            await asyncio.to_thread(mosquitto_pub, f"{p}/t/3", '{"t": -40}')
            ticks = await asyncio.to_thread(sub.wait, 20)
            # Up to 10 s for the two outputs to be on disk and the third tick to be counted: a
            # tick counts once its republish is acknowledged by the broker, which may come after
            # mosquitto_sub has already received it.
            for _ in range(200):
                if (app.actions["jsonl_file:out"].metrics.get("success") >= 2
                        and app.sources["ticker:clock"].metrics.get("success") >= 3):
                    break
                await asyncio.sleep(0.05)
        finally:
            await app.stop()
    assert [(m.topic, m.text) for m in ticks] == [(f"{p}/tick/{n}", str(n)) for n in (1, 2, 3)]
    lines = [json.loads(line) for line in out.read_text().splitlines()]
    assert lines == [{"f": 212.0, "topic": f"{p}/t/1"}, {"f": -40.0, "topic": f"{p}/t/3"}]
    assert app.rules["temps"].metrics.get("failed.exception") == 1
    assert app.sources["ticker:clock"].metrics.get("success") == 3
