"""A poison MQTT message fails alone: the good stream flows, the poison goes to the dead letters.

The poison message is the one of issue #12: an array nested 300 deep (607 bytes), which a
``${.}`` value template cannot render as JSON. Witnessed with kcat and mosquitto_sub; the ack
window is checked by restarting mqferry on the same persistent session: nothing is redelivered.
"""

from __future__ import annotations

import json
import time
import uuid

import httpx
import pytest

from tests.integration.mqferry_process import MqferryProcess, api_key, free_port
from tests.integration.publisher import publish_many

pytestmark = pytest.mark.integration

POISON = ('{"d": ' + "[" * 300 + "]" * 300 + "}").encode()
GOOD = 100


def bridge_config(kafka, mqtt, prefix, sink_topic, dead_letter=None):
    actions = {"kafka_producer": {"sink": {"connector": "k", "parameters": {
        "topic": sink_topic, "message": {"value": "${.}"}}}}}
    mqtt_section = {"server": f"{mqtt.host}:{mqtt.port}", "clientid": f"mqferry-{prefix}"}
    if dead_letter is not None:
        for kind, body in dead_letter["actions"].items():
            actions.setdefault(kind, {}).update(body)
        mqtt_section["dead_letter"] = {"action": dead_letter["id"]}
    return {
        "mqtt": mqtt_section,
        "api": {"enable": False},  # other test runs may hold the API port
        "connectors": {"kafka_producer": {"k": {"bootstrap_hosts": kafka}}},
        "actions": actions,
        "rules": {"r": {"sql": f"SELECT 'deep' as kt, payload.d as d FROM \"{prefix}/#\"",
                        "actions": ["kafka_producer:sink"]}},
    }


@pytest.fixture
def run(tmp_path):
    procs: list[MqferryProcess] = []

    def start(cfg, actions):
        p = MqferryProcess(cfg, tmp_path).start()
        procs.append(p)
        p.wait_ready(actions=actions)
        return p

    yield start
    for p in procs:
        if p.proc is not None and p.proc.poll() is None:
            p.kill()


def publish_stream(mqtt_broker, mosquitto_pub, prefix):
    mosquitto_pub(f"{prefix}/poison", POISON, qos=1, client_id=f"dev-{prefix}",
                  user_properties=[("clientid", f"dev-{prefix}"), ("site", "north")])
    publish_many(mqtt_broker.host, mqtt_broker.port,
                 [(f"{prefix}/good", json.dumps({"d": i}).encode()) for i in range(GOOD)])


def good_values(records):
    return sorted(json.loads(r["payload"])["d"] for r in records)


def test_a_poison_message_fails_alone_and_is_not_redelivered(
        run, kafka_bootstrap, mqtt_broker, new_topic, mosquitto_pub, kcat_consume):
    prefix = f"poison-{uuid.uuid4().hex[:8]}"
    sink = new_topic()
    cfg = bridge_config(kafka_bootstrap, mqtt_broker, prefix, sink)
    app = run(cfg, actions=1)
    publish_stream(mqtt_broker, mosquitto_pub, prefix)
    assert good_values(kcat_consume(sink, GOOD, timeout=60)) == list(range(GOOD)), app.log
    app.wait_for_log("action kafka_producer:sink: failed.render: cannot render the record: "
                     "TemplateError('cannot render a value as JSON")
    assert app.terminate() == 0

    # The ack window advanced past the poison: on the same persistent session the broker
    # redelivers nothing, so a new message is the only one to arrive after the restart.
    app = run(cfg, actions=1)
    publish_many(mqtt_broker.host, mqtt_broker.port,
                 [(f"{prefix}/good", json.dumps({"d": GOOD}).encode())])
    assert good_values(kcat_consume(sink, GOOD + 1, timeout=60)) == list(range(GOOD + 1))
    time.sleep(2)  # a redelivery would have landed by now (it comes ahead of the new message)
    assert len(kcat_consume(sink, GOOD + 1, timeout=1)) == GOOD + 1
    assert "failed.render" not in app.log
    assert app.terminate() == 0


def test_poison_goes_to_the_kafka_dead_letter_topic_and_the_stream_flows(
        run, kafka_bootstrap, mqtt_broker, new_topic, mosquitto_pub, kcat_consume):
    prefix = f"poison-{uuid.uuid4().hex[:8]}"
    sink, dlq = new_topic(), new_topic()
    dead_letter = {"id": "kafka_producer:dlq", "actions": {"kafka_producer": {"dlq": {
        "connector": "k", "parameters": {
            "topic": dlq, "kafka_headers": "${headers}",
            "message": {"key": "${clientid}", "value": "${payload}"}}}}}}
    cfg = bridge_config(kafka_bootstrap, mqtt_broker, prefix, sink, dead_letter)
    app = run(cfg, actions=2)
    publish_stream(mqtt_broker, mosquitto_pub, prefix)

    assert good_values(kcat_consume(sink, GOOD, timeout=60)) == list(range(GOOD)), app.log
    [dead] = kcat_consume(dlq, 1, timeout=60)
    assert dead["payload"] == POISON.decode()
    assert dead["key"] == f"dev-{prefix}"
    headers = dict(dead["headers"])
    assert headers["mqtt-topic"] == f"{prefix}/poison"
    assert headers["mqtt-clientid"] == f"dev-{prefix}"
    assert headers["mqtt-qos"] == "1"
    assert headers["site"] == "north"  # the publisher's user properties are kept
    assert headers["mqferry-reason"] == "failed.render"
    assert headers["mqferry-rule"] == "r"
    assert headers["mqferry-action"] == "kafka_producer:sink"
    assert "kafka_producer:sink failed the output (failed.render)" in headers["mqferry-error"]
    assert app.terminate() == 0
    # once: the dead letter was secured before the poison was acknowledged
    assert len(kcat_consume(dlq, 1, timeout=1)) == 1


def test_poison_goes_to_an_mqtt_dead_letter_topic(
        run, kafka_bootstrap, mqtt_broker, new_topic, mosquitto_pub, mosquitto_sub,
        kcat_consume):
    prefix = f"poison-{uuid.uuid4().hex[:8]}"
    sink = new_topic()
    dead_letter = {"id": "republish:dlq", "actions": {"republish": {"dlq": {"parameters": {
        "topic": "dlq-${topic}", "payload": "${payload}", "qos": 1,
        "user_properties": "${headers}"}}}}}
    cfg = bridge_config(kafka_bootstrap, mqtt_broker, prefix, sink, dead_letter)
    app = run(cfg, actions=1)
    with mosquitto_sub(f"dlq-{prefix}/#", 1) as sub:
        publish_stream(mqtt_broker, mosquitto_pub, prefix)
        [dead] = sub.wait(60)
    assert good_values(kcat_consume(sink, GOOD, timeout=60)) == list(range(GOOD)), app.log
    assert (dead.topic, dead.payload, dead.qos) == (f"dlq-{prefix}/poison", POISON, 1)
    user = dict(dead.user_properties)
    assert user["mqtt-topic"] == f"{prefix}/poison"
    assert user["mqtt-clientid"] == f"dev-{prefix}"
    assert user["site"] == "north"
    assert user["mqferry-reason"] == "failed.render"
    assert user["mqferry-action"] == "kafka_producer:sink"
    assert app.terminate() == 0


def test_a_slow_jq_rule_does_not_hold_up_other_rules(
        run, kafka_bootstrap, mqtt_broker, new_topic, kcat_consume):
    """jq runs off the event loop: while two ~2 s programs run, another rule's stream flows."""
    prefix = f"jq-{uuid.uuid4().hex[:8]}"
    slow_topic, fast_topic = new_topic(), new_topic()
    cfg = bridge_config(kafka_bootstrap, mqtt_broker, prefix, fast_topic)
    cfg["actions"]["kafka_producer"]["slow"] = {"connector": "k", "parameters": {
        "topic": slow_topic, "message": {"value": "${.}"}}}
    cfg["rules"] = {
        "slow": {"sql": f"SELECT jq('last(range(.n))', payload) as r FROM \"{prefix}/slow\"",
                 "actions": ["kafka_producer:slow"]},
        "fast": {"sql": f'SELECT payload.d as d FROM "{prefix}/fast"',
                 "actions": ["kafka_producer:sink"]},
    }
    app = run(cfg, actions=2)
    slow = [(f"{prefix}/slow", b'{"n": 3000000}')] * 2
    fast = [(f"{prefix}/fast", json.dumps({"d": i}).encode()) for i in range(20)]
    publish_many(mqtt_broker.host, mqtt_broker.port, slow + fast)
    assert good_values(kcat_consume(fast_topic, 20, timeout=60)) == list(range(20)), app.log
    # the fast stream got through while the jq programs were still running
    assert len(kcat_consume(slow_topic, 0, timeout=0)) < 2
    slow_records = kcat_consume(slow_topic, 2, timeout=60)
    assert [json.loads(r["payload"])["r"] for r in slow_records] == [[2999999]] * 2
    assert app.terminate() == 0


def test_a_rule_changed_through_the_api_still_dead_letters(
        run, tmp_path, kafka_bootstrap, mqtt_broker, new_topic, mosquitto_pub, mosquitto_sub,
        kcat_consume):
    """A rule replaced on its own (PUT /rules/:id) gets the app's dead letters, as at start."""
    prefix = f"poison-{uuid.uuid4().hex[:8]}"
    sink = new_topic()
    dead_letter = {"id": "republish:dlq", "actions": {"republish": {"dlq": {"parameters": {
        "topic": "dlq-${topic}", "payload": "${payload}", "qos": 1}}}}}
    cfg = bridge_config(kafka_bootstrap, mqtt_broker, prefix, sink, dead_letter)
    port = free_port()
    cfg["api"] = {"listen": f"127.0.0.1:{port}"}
    cfg["data_dir"] = str(tmp_path / "data")
    app = run(cfg, actions=1)
    auth = api_key(app.config_path)
    with httpx.Client(base_url=f"http://127.0.0.1:{port}/api/v5", auth=auth,
                      timeout=60) as api:
        r = api.put("/rules/r", json={
            "sql": f"SELECT 'changed' as kt, payload.d as d FROM \"{prefix}/#\"",
            "actions": ["kafka_producer:sink"]})
        assert r.status_code == 200, r.text
    with mosquitto_sub(f"dlq-{prefix}/#", 1) as sub:
        publish_stream(mqtt_broker, mosquitto_pub, prefix)
        [dead] = sub.wait(60)
    assert good_values(kcat_consume(sink, GOOD, timeout=60)) == list(range(GOOD)), app.log
    assert (dead.topic, dead.payload) == (f"dlq-{prefix}/poison", POISON)
    assert app.terminate() == 0
