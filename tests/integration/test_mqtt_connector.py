"""An extra `mqtt` connector: republish to a broker through a second MQTT session."""

from __future__ import annotations

import uuid

import pytest

from tests.integration.mqferry_process import MqferryProcess

pytestmark = pytest.mark.integration


def test_republish_through_a_second_mqtt_connection(mqtt_broker, mosquitto_pub, mosquitto_sub,
                                                     tmp_path):
    p = f"mc-{uuid.uuid4().hex[:6]}"
    server = f"{mqtt_broker.host}:{mqtt_broker.port}"
    cfg = {
        "mqtt": {"server": server, "clientid": f"{p}-main"},
        "connectors": {"mqtt": {"second": {"server": server, "clientid": f"{p}-second"}}},
        "actions": {"republish": {"out": {"connector": "second", "parameters": {
            "topic": f"{p}/out/${{topic}}", "payload": "${payload}", "qos": 1}}}},
        "rules": {"r": {"sql": f'SELECT * FROM "{p}/in/#"', "actions": ["republish:out"]}},
    }
    app = MqferryProcess(cfg, tmp_path).start()
    try:
        app.wait_ready()
        app.wait_for_log(f"as '{p}-second'")
        with mosquitto_sub(f"{p}/out/#", 1) as sub:
            mosquitto_pub(f"{p}/in/a", "hello")
            [msg] = sub.wait(30)
        assert (msg.topic, msg.payload) == (f"{p}/out/{p}/in/a", b"hello")
        assert app.terminate() == 0
    finally:
        if app.proc is not None and app.proc.poll() is None:
            app.kill()
