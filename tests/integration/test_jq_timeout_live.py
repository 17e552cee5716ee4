"""A jq program that never ends: its timeout holds, and MQTT keepalive and other rules go on.

mqferry runs with a 2 s MQTT keepalive (the broker drops a client silent for 3 s). One message
starts a jq program that would run for hours, under a 5 s timeout; 60 messages for another rule
follow. kcat sees all 60 before the timeout; the log has the jq timeout about 5 s after the
publish, and a single MQTT connection all along.

The PUBACKs of the messages after the jq one wait for it (MQTT sends PUBACKs in the order the
messages came, :mod:`mqferry._mqtt.acks`): they go out when it times out, so a stream longer than
the Receive Maximum waits for the program's timeout. This test stays within the default window.
"""

from __future__ import annotations

import json
import time
import uuid

import pytest

from tests.integration.mqferry_process import MqferryProcess
from tests.integration.publisher import publish_many

pytestmark = pytest.mark.integration

TIMEOUT_MS = 5000
FAST = 60


def test_a_runaway_jq_program_times_out_while_keepalive_and_acks_go_on(
        kafka_bootstrap, mqtt_broker, new_topic, kcat_consume, tmp_path):
    p = f"jqt-{uuid.uuid4().hex[:8]}"
    slow_topic, fast_topic = new_topic(), new_topic()
    config = {
        "mqtt": {"server": f"{mqtt_broker.host}:{mqtt_broker.port}", "clientid": f"mqferry-{p}",
                 "keepalive": 2},
        "api": {"enable": False},
        "connectors": {"kafka_producer": {"k": {"bootstrap_hosts": kafka_bootstrap}}},
        "actions": {"kafka_producer": {
            "slow": {"connector": "k", "parameters": {"topic": slow_topic,
                                                      "message": {"value": "${.}"}}},
            "fast": {"connector": "k", "parameters": {"topic": fast_topic,
                                                      "message": {"value": "${.}"}}}}},
        "rules": {
            "warm": {"sql": f"SELECT jq('.', payload) AS r FROM \"{p}/warm\"",
                     "actions": ["kafka_producer:slow"]},
            "slow": {"sql": f"SELECT jq('last(range(1e15))', payload, {TIMEOUT_MS}) AS r "
                            f'FROM "{p}/slow"', "actions": ["kafka_producer:slow"]},
            "fast": {"sql": f'SELECT payload.n AS n FROM "{p}/fast"',
                     "actions": ["kafka_producer:fast"]}},
    }
    proc = MqferryProcess(config, tmp_path).start()
    try:
        proc.wait_ready(actions=2)
        # a first program starts the jq worker, so that its start-up is not in the measure
        publish_many(mqtt_broker.host, mqtt_broker.port, [(f"{p}/warm", b'{"w": 1}')])
        assert [json.loads(r["payload"]) for r in kcat_consume(slow_topic, 1, timeout=60)] == [
            {"r": [{"w": 1}]}]
        began = time.monotonic()
        publish_many(mqtt_broker.host, mqtt_broker.port,
                     [(f"{p}/slow", b"{}")]
                     + [(f"{p}/fast", json.dumps({"n": i}).encode()) for i in range(FAST)])
        records = kcat_consume(fast_topic, FAST, timeout=60)
        fast_done = time.monotonic() - began
        assert sorted(json.loads(r["payload"])["n"] for r in records) == list(range(FAST))
        assert fast_done < TIMEOUT_MS / 1000, (
            f"the other rule's stream took {fast_done:.1f} s, as long as the jq program")
        proc.wait_for_log(f"timed out after {TIMEOUT_MS} ms", timeout=30)
        timed_out = time.monotonic() - began
        assert TIMEOUT_MS / 1000 - 0.5 <= timed_out <= TIMEOUT_MS / 1000 + 5, timed_out
        # keepalive went on: one connection all along, never re-established
        assert sum("connected to MQTT broker" in ln for ln in proc.lines) == 1, proc.log
        assert len(kcat_consume(slow_topic, 0, timeout=2)) == 1  # the warm-up's only
        assert proc.terminate() == 0
    finally:
        if proc.proc is not None and proc.proc.poll() is None:
            proc.kill()
