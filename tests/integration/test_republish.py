"""The ``republish`` action from MQTT rules, against a real Mosquitto with mosquitto_pub/sub."""

from __future__ import annotations

import time
import uuid

import pytest

from tests.integration.mqferry_process import MqferryProcess

pytestmark = pytest.mark.integration


def start(tmp_path, mqtt, rules):
    cfg = {"mqtt": {"server": f"{mqtt.host}:{mqtt.port}",
                    "clientid": f"mqferry-rp-{uuid.uuid4().hex[:8]}"},
           "rules": rules}
    app = MqferryProcess(cfg, tmp_path).start()
    app.wait_ready()
    time.sleep(0.5)  # the rule subscriptions are in place
    return app


def test_republish_from_an_mqtt_rule_with_mqtt5_properties(tmp_path, mqtt_broker, mosquitto_pub,
                                                           mosquitto_sub):
    p = f"rp-{uuid.uuid4().hex[:6]}"
    rules = {"up": {"sql": f'SELECT upper(payload.msg) as m, clientid, pub_props FROM "{p}/t/#"',
                    "actions": [{"function": "republish", "args": {
                        "topic": f"{p}/out/${{clientid}}", "payload": "${m}", "qos": 1,
                        "mqtt_properties": {"Content-Type": "text/plain",
                                            "Message-Expiry-Interval": "60",
                                            "Response-Topic": f"{p}/reply",
                                            "Correlation-Data": "c-1",
                                            "Payload-Format-Indicator": "1"},
                        "user_properties": "${pub_props.User-Property}"}}]}}
    app = start(tmp_path, mqtt_broker, rules)
    try:
        with mosquitto_sub(f"{p}/out/#", 1) as sub:
            mosquitto_pub(f"{p}/t/1", '{"msg": "hello"}',
                          user_properties=[("clientid", "c1"), ("site", "s9")])
            [m] = sub.wait(20)
    finally:
        assert app.terminate() == 0
    assert (m.topic, m.text, m.qos) == (f"{p}/out/c1", "HELLO", 1), app.log
    assert m.properties["content-type"] == "text/plain"
    assert m.properties["response-topic"] == f"{p}/reply"
    assert m.properties["correlation-data"] == "c-1"
    assert 0 < int(m.properties["message-expiry-interval"]) <= 60
    assert ("site", "s9") in m.user_properties
    assert ("mqferry-republished", "republish:up.0") in m.user_properties


def test_republish_to_a_topic_its_own_rule_reads_does_not_loop(tmp_path, mqtt_broker,
                                                               mosquitto_pub, mosquitto_sub):
    p = f"loop-{uuid.uuid4().hex[:6]}"
    rules = {"echo": {"sql": f'SELECT * FROM "{p}/#"',
                      "actions": [{"function": "republish", "args": {
                          "topic": f"{p}/again", "payload": "${payload}", "qos": 1}}]}}
    app = start(tmp_path, mqtt_broker, rules)
    try:
        with mosquitto_sub(f"{p}/#", 100) as sub:
            mosquitto_pub(f"{p}/first", "x")
            time.sleep(3.0)
            topics = [m.topic for m in sub.messages]
    finally:
        assert app.terminate() == 0
    # The original and exactly one republish: the republished copy is not republished again.
    assert topics == [f"{p}/first", f"{p}/again"], app.log
