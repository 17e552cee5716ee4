"""A rule failing on a real MQTT message says why: the log line and ``last_error`` in the API.

mosquitto_pub sends one message the rule cannot decode and one it can; kcat sees the good one in
Kafka, the log has one WARNING naming the rule, the topic and the reason, and
``GET /rules/:id`` gives the same reason with its time.
"""

from __future__ import annotations

import json
import time
import uuid

import httpx
import pytest

from tests.integration.mqferry_process import MqferryProcess, api_key, free_port

pytestmark = pytest.mark.integration


def test_a_failed_message_is_logged_and_shown_with_its_reason(
        kafka_bootstrap, mqtt_broker, new_topic, mosquitto_pub, kcat_consume, tmp_path):
    p = f"lasterr-{uuid.uuid4().hex[:8]}"
    sink, port = new_topic(), free_port()
    config = {
        "mqtt": {"server": f"{mqtt_broker.host}:{mqtt_broker.port}", "clientid": f"mqferry-{p}"},
        "api": {"listen": f"127.0.0.1:{port}"},
        "data_dir": str(tmp_path / "data"),
        "connectors": {"kafka_producer": {"k": {"bootstrap_hosts": kafka_bootstrap}}},
        "actions": {"kafka_producer": {"sink": {"connector": "k", "parameters": {
            "topic": sink, "message": {"value": "${.}"}}}}},
        "rules": {"dec": {"sql": f'SELECT json_decode(payload) AS j FROM "{p}/#"',
                          "actions": ["kafka_producer:sink"]}},
    }
    proc = MqferryProcess(config, tmp_path)
    auth = api_key(proc.config_path)
    proc.start()
    try:
        proc.wait_ready(actions=1)
        proc.wait_for_log("API listening")
        before = time.time()
        mosquitto_pub(f"{p}/room-7", b"not json {", qos=1)
        mosquitto_pub(f"{p}/room-8", b'{"ok": 1}', qos=1)
        [record] = kcat_consume(sink, 1, timeout=60)
        assert json.loads(record["payload"]) == {"j": {"ok": 1}}
        proc.wait_for_log("rule dec failed on a message on")
        [line] = [ln for ln in proc.lines if "rule dec failed" in ln]
        assert "WARNING" in line and f"'{p}/room-7'" in line and "json_decode" in line, line
        with httpx.Client(base_url=f"http://127.0.0.1:{port}/api/v5", auth=auth,
                          timeout=30) as api:
            error = api.get("/rules/dec").json()["last_error"]
        assert error["reason"] == "failed.exception"
        assert error["topic"] == f"{p}/room-7"
        assert "json_decode" in error["message"] and "not json {" in error["message"]
        assert before * 1000 - 1000 <= error["at"] <= time.time() * 1000
        assert proc.terminate() == 0
    finally:
        if proc.proc is not None and proc.proc.poll() is None:
            proc.kill()
