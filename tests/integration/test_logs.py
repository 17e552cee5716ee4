"""What an operator reads in the log of ``mqferry run``, on the real Kafka and Mosquitto.

An unreachable Kafka is said once per component, with the back-off, not at every retry (and not
again by aiokafka); a healthy first start on a fresh Kafka, whose group coordinator is still
loading, logs no ERROR; ``log.format: json`` writes one JSON object per line.
"""

from __future__ import annotations

import json
import re
import time
import uuid
from collections import Counter

import pytest

from tests.integration.mqferry_process import MqferryProcess, free_port
from tests.integration.test_kafka_topics_isolation import private_kafka  # noqa: F401 (fixture)
from tests.integration.witnesses import kcat_produce

pytestmark = pytest.mark.integration

UNREACHABLE_SECONDS = 15


def _config(mqtt_broker, bootstrap: str, topic: str, tmp_path, **extra):
    tag = uuid.uuid4().hex[:8]
    return {
        "mqtt": {"server": f"{mqtt_broker.host}:{mqtt_broker.port}",
                 "clientid": f"mqferry-logs-{tag}"},
        "api": {"listen": f"127.0.0.1:{free_port()}"},
        "data_dir": str(tmp_path / "data"),
        "connectors": {"kafka_producer": {"kp": {"bootstrap_hosts": bootstrap}},
                       "kafka_consumer": {"kc": {"bootstrap_hosts": bootstrap}}},
        "actions": {"kafka_producer": {"sink": {"connector": "kp", "parameters": {
            "topic": topic, "message": {"key": "", "value": "${payload}"}}}}},
        "sources": {"kafka_consumer": {"src": {"connector": "kc", "parameters": {
            "group_id": f"mqferry-logs-{tag}",
            "topic_mapping": [{"kafka_topic": topic, "mqtt_topic": f"logs-back-{tag}/x",
                               "qos": 1}]}}}},
        "rules": {"r": {"sql": f'SELECT * FROM "logs-{tag}/#"',
                        "actions": ["kafka_producer:sink"]}},
        **extra,
    }


def _message(line: str) -> str:
    """A text log line without its time stamp."""
    return re.sub(r"^\S+ \S+ ", "", line)


def test_an_unreachable_kafka_is_said_once_per_component(mqtt_broker, tmp_path):
    closed = f"127.0.0.1:{free_port()}"  # nothing listens there
    proc = MqferryProcess(_config(mqtt_broker, closed, "t", tmp_path), tmp_path)
    proc.start()
    try:
        proc.wait_for_log("connected to MQTT broker")
        time.sleep(UNREACHABLE_SECONDS)
        assert proc.terminate() == 0
    finally:
        if proc.proc is not None and proc.proc.poll() is None:
            proc.kill()
    lines = [line for line in proc.lines if line.strip()]
    print(f"\n{len(lines)} lines in {UNREACHABLE_SECONDS} s:\n" + "\n".join(lines))
    unreachable = [line for line in lines if ": Kafka: unreachable (" in line]
    subjects = sorted(_message(line).split(": Kafka: ")[0].split(": ", 1)[1]
                      for line in unreachable)
    assert subjects == ["action kafka_producer:sink", "connector kafka_consumer:kc",
                        "connector kafka_producer:kp", "source kafka_consumer:src"], lines
    assert all("retrying in" in line and closed in line for line in unreachable)
    assert not [line for line in lines if "aiokafka" in line], lines
    repeated = [m for m, n in Counter(_message(line) for line in lines).items() if n > 1]
    assert repeated == []
    assert len(lines) <= 20


def test_a_healthy_first_start_on_a_fresh_kafka_logs_no_error_and_json_lines(
        private_kafka, mqtt_broker, tmp_path, mosquitto_sub):  # noqa: F811 (fixture)
    bootstrap, _ = private_kafka
    topic = f"mqferry-logs-{uuid.uuid4().hex[:8]}"
    _create_topic(bootstrap, topic)
    config = _config(mqtt_broker, bootstrap, topic, tmp_path,
                     log={"format": "json", "level": "info"})
    proc = MqferryProcess(config, tmp_path)
    proc.start()
    try:
        proc.wait_for_log(": partitions assigned: ", timeout=90)
        back = config["sources"]["kafka_consumer"]["src"]["parameters"]["topic_mapping"][0]
        with mosquitto_sub(back["mqtt_topic"], 1) as sub:
            kcat_produce(bootstrap, topic, ["after the first start"])
            got = [json.loads(m.text)["value"] for m in sub.wait(30)]
            assert got == ["after the first start"]
        assert proc.terminate() == 0
    finally:
        if proc.proc is not None and proc.proc.poll() is None:
            proc.kill()
    records = [json.loads(line) for line in proc.lines if line.strip()]
    print("\n" + "\n".join(proc.lines))
    assert all(set(r) >= {"time", "level", "logger", "message"} for r in records)
    assert [r for r in records if r["level"] in ("ERROR", "CRITICAL")] == []
    assert any(r["message"].endswith("producer connected") for r in records)


def _create_topic(bootstrap: str, topic: str) -> None:
    from tests.integration.conftest import _create_topic as create
    from tests.integration.conftest import _run_in_thread

    _run_in_thread(lambda: create(bootstrap, topic, 1, 60))
