"""A second SIGTERM during a slow graceful stop ends ``mqferry run`` at once, losing nothing.

The graceful stop is made slow by a rule that holds its events (a jq program running for its
whole 10 s timeout): the Kafka source waits for its record in flight before it commits. The second
signal must not wait for it, and what it abandons must come back: the MQTT message from the
broker, the Kafka record from the consumer group. Real Mosquitto and Kafka; mosquitto_sub is the
witness.
"""

from __future__ import annotations

import signal
import time
import uuid

import pytest

from tests.integration.mqferry_process import MqferryProcess
from tests.integration.publisher import publish_many

pytestmark = pytest.mark.integration

#: A jq program that runs until its timeout (10 s, the longest a call may take).
SLOW = "jq('last(range(100000000000))', 1, 10000)"


def config(kafka, mqtt, prefix, topic, *, slow):
    """MQTT ``<prefix>/in`` and Kafka ``topic`` each through a rule (:data:`SLOW`, or the
    payload), republished to ``<prefix>/out/<origin>``; a fixed client id and group, so a second
    run takes over the first one's session and offsets."""
    def rule(origin, source, payload):
        select = SLOW if slow else payload
        return {"sql": f'SELECT {select} as j FROM "{source}"',
                "actions": [{"function": "republish",
                             "args": {"topic": f"{prefix}/out/{origin}", "payload": "${j}",
                                      "qos": 1}}]}

    return {
        "mqtt": {"server": f"{mqtt.host}:{mqtt.port}", "clientid": f"mqferry-{prefix}"},
        "api": {"enable": False},
        "connectors": {"kafka_consumer": {"kc": {"bootstrap_hosts": kafka}}},
        "sources": {"kafka_consumer": {"src": {"connector": "kc", "parameters": {
            "topic": topic, "group_id": f"mqferry-{prefix}"}}}},
        "rules": {"from_mqtt": rule("mqtt", f"{prefix}/in", "payload"),
                  "from_kafka": rule("kafka", "$bridges/kafka_consumer:src", "value")},
    }


def test_a_second_sigterm_stops_at_once_and_what_it_abandons_comes_back(
        tmp_path, kafka_bootstrap, mqtt_broker, new_topic, kcat_produce, mosquitto_sub):
    prefix, topic = f"sig-{uuid.uuid4().hex[:8]}", new_topic()
    app = MqferryProcess(config(kafka_bootstrap, mqtt_broker, prefix, topic, slow=True),
                         tmp_path).start()
    try:
        app.wait_ready(sources=1)
        publish_many(mqtt_broker.host, mqtt_broker.port, [(f"{prefix}/in", b"m")])
        kcat_produce(topic, ["k"])
        time.sleep(2)  # both taken in, and held by the slow rule
        assert app.proc is not None
        app.proc.send_signal(signal.SIGTERM)
        app.wait_for_log("SIGTERM: stopping gracefully", 10)
        time.sleep(1)
        assert app.proc.poll() is None, app.log  # the source waits for its record (5 s)
        sent = time.monotonic()
        app.proc.send_signal(signal.SIGTERM)
        code = app.proc.wait(30)
        took = time.monotonic() - sent
        app.wait_exit(30)  # its output ends once the jq worker (which shares it) is gone too
    finally:
        if app.proc is not None and app.proc.poll() is None:
            app.kill()
    assert (code, took < 3) == (128 + signal.SIGTERM, True), (took, app.log)
    assert "SIGTERM again: stopping at once, abandoning the graceful stop (exit code 143)" \
        in app.log
    assert "MQTT messages not yet acknowledged stay with the broker" in app.log
    assert "whose offsets are not committed are read again by its consumer group" in app.log
    with mosquitto_sub(f"{prefix}/out/#", 2) as sub:
        again = MqferryProcess(config(kafka_bootstrap, mqtt_broker, prefix, topic, slow=False),
                               tmp_path).start()
        try:
            got = sub.wait(60)
        finally:
            code = again.terminate()
    assert sorted((m.topic, m.payload) for m in got) == [
        (f"{prefix}/out/kafka", b"k"), (f"{prefix}/out/mqtt", b"m")], again.log
    assert code == 0
