"""Smoke test of the benchmark harness against the real brokers and a real mqferry process.

Short runs (a few thousand messages): the harness must work end to end in both directions, and
mqferry at-least-once must deliver every message exactly once when nothing breaks. Timing figures
are checked for shape only, never for speed.
"""

from __future__ import annotations

import json
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from mqferry_bench.admin import probe_kafka_to_mqtt, probe_mqtt_to_kafka
from mqferry_bench.runner import LoadSpec, run
from tests.integration.mqferry_process import MqferryProcess

pytestmark = pytest.mark.integration


def _config(mqtt_broker, kafka_bootstrap, clientid, *, rule_prefix=None, kafka_in=None,
            kafka_out=None, out_prefix=None):
    cfg = {"mqtt": {"server": str(mqtt_broker), "clientid": clientid},
           "api": {"enable": False}, "connectors": {}}
    if rule_prefix:
        cfg["connectors"]["kafka_producer"] = {"k": {"bootstrap_hosts": kafka_bootstrap}}
        cfg["actions"] = {"kafka_producer": {"sink": {"connector": "k", "parameters": {
            "topic": kafka_in, "message": {"key": "", "value": "${payload}"}}}}}
        sql = f'SELECT payload, payload.x as x FROM "{rule_prefix}/#"'
        cfg["rules"] = {"bench": {"sql": sql, "actions": ["kafka_producer:sink"]}}
    if kafka_out:
        cfg["connectors"]["kafka_consumer"] = {"kc": {"bootstrap_hosts": kafka_bootstrap}}
        cfg["sources"] = {"kafka_consumer": {"src": {"connector": "kc", "parameters": {
            "offset_reset_policy": "earliest",
            "topic_mapping": [{"kafka_topic": kafka_out, "mqtt_topic": f"{out_prefix}/${{key}}",
                               "qos": 1, "payload_template": "${value}"}]}}}}
    return cfg


@pytest.fixture
def mqferry(tmp_path):
    procs = []

    def start(cfg):
        p = MqferryProcess(cfg, tmp_path).start()
        procs.append(p)
        return p

    yield start
    for p in procs:
        if p.proc is not None and p.proc.poll() is None:
            p.kill()


def _check_shape(result, count):
    loss, tm, res = result["loss"], result["timing"], result["resources"]
    assert result["publish"]["published"] == count
    assert result["publish"]["unacked"] == 0
    assert (loss["delivered"], loss["lost"], loss["duplicated"]) == (count, 0, 0), loss
    assert loss["out_of_order"] == 0
    assert tm["throughput_overall"] > 0
    assert 0 < tm["latency_ms"]["p50"] <= tm["latency_ms"]["p99"] <= tm["latency_ms"]["max"]
    assert res["cpu_s_per_100k"] > 0
    assert res["peak_rss_mb"] > 10


def test_cli_mqtt_to_kafka_through_mqferry_loses_nothing(mqtt_broker, kafka_bootstrap, new_topic,
                                                         mqferry, tmp_path):
    prefix, topic = f"bench/{uuid.uuid4().hex[:8]}", new_topic()
    app = mqferry(_config(mqtt_broker, kafka_bootstrap, f"bench-smoke-{uuid.uuid4().hex[:6]}",
                          rule_prefix=prefix, kafka_in=topic))
    probe_mqtt_to_kafka(mqtt_broker.host, mqtt_broker.port, f"{prefix}/probe", kafka_bootstrap,
                        topic, timeout=60)
    out = tmp_path / "result.json"
    exe = Path(sys.executable).with_name("mqferry")
    proc = subprocess.run(
        [str(exe), "bench", "mqtt-kafka", "--mqtt", str(mqtt_broker), "--kafka", kafka_bootstrap,
         "--kafka-topic", topic, "--mqtt-topic", prefix, "-n", "4000", "--streams", "2",
         "--pid", str(app.proc.pid), "--idle-timeout", "30", "-o", str(out), "--no-progress"],
        capture_output=True, text=True, timeout=120, check=False)
    assert proc.returncode == 0, proc.stderr + app.log
    result = json.loads(out.read_text())
    _check_shape(result, 4000)
    assert result["loss"]["foreign"] == 1  # the probe
    assert set(result["loss"]["per_key"]) == {"p0", "p1"}
    assert "lost" in proc.stderr  # the table
    assert app.terminate() == 0


def test_kafka_to_mqtt_through_mqferry_loses_nothing(mqtt_broker, kafka_bootstrap, new_topic,
                                                     mqferry):
    prefix, topic = f"bench/{uuid.uuid4().hex[:8]}", new_topic()
    app = mqferry(_config(mqtt_broker, kafka_bootstrap, f"bench-smoke-{uuid.uuid4().hex[:6]}",
                          kafka_out=topic, out_prefix=prefix))
    probe_kafka_to_mqtt(kafka_bootstrap, topic, mqtt_broker.host, mqtt_broker.port,
                        f"{prefix}/#", timeout=60)
    spec = LoadSpec(direction="kafka-mqtt", mqtt_host=mqtt_broker.host,
                    mqtt_port=mqtt_broker.port, kafka=kafka_bootstrap, mqtt_topic=f"{prefix}/#",
                    kafka_topic=topic, streams=3, count=3000, idle_timeout=30, settle=1)
    result = run(spec, watch=lambda: [app.proc.pid])
    _check_shape(result, 3000)
    assert app.terminate() == 0


def test_the_verifier_reports_loss_when_nothing_bridges(mqtt_broker, kafka_bootstrap, new_topic):
    # No bridge at all: every message published on MQTT is missing from Kafka.
    spec = LoadSpec(direction="mqtt-kafka", mqtt_host=mqtt_broker.host,
                    mqtt_port=mqtt_broker.port, kafka=kafka_bootstrap,
                    mqtt_topic=f"bench/{uuid.uuid4().hex[:8]}", kafka_topic=new_topic(),
                    streams=2, count=200, idle_timeout=2, settle=0)
    result = run(spec)
    assert result["publish"]["published"] == 200
    assert result["loss"]["delivered"] == 0
    assert result["loss"]["lost"] == 200
    assert result["loss"]["per_key"]["p1"]["lost"] == 100
