"""The quick start of the README, end to end, with real Kafka and Mosquitto and independent clients.

Every test runs ``mqferry run -c FILE`` as a process; kcat and mosquitto_pub/mosquitto_sub are the
witnesses.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import urllib.request
import uuid
from pathlib import Path

import pytest

from tests.integration.mqferry_process import MqferryProcess, api_key, free_port
from tests.integration.publisher import publish_many

pytestmark = pytest.mark.integration


def quickstart_config(kafka, mqtt, topic_in, topic_out, prefix, clientid):
    return {
        "mqtt": {"server": f"{mqtt.host}:{mqtt.port}", "clientid": clientid},
        "connectors": {
            "kafka_producer": {"my-kafka": {"bootstrap_hosts": kafka}},
            "kafka_consumer": {"my-kafka-consumer": {"bootstrap_hosts": kafka}},
        },
        "actions": {"kafka_producer": {"my-kafka-sink": {
            "connector": "my-kafka", "parameters": {"topic": topic_in}}}},
        "sources": {"kafka_consumer": {"my-kafka-source": {
            "connector": "my-kafka-consumer",
            "parameters": {"topic_mapping": [{"kafka_topic": topic_out,
                                              "mqtt_topic": f"{prefix}/t/1", "qos": 1,
                                              "payload_template": "${.}"}]},
        }}},
        "rules": {"my_rule": {"sql": f'SELECT * FROM "{prefix}/t/#"',
                              "actions": ["kafka_producer:my-kafka-sink"]}},
    }


@pytest.fixture
def setup(kafka_bootstrap, mqtt_broker, new_topic, tmp_path):
    prefix = f"qs-{uuid.uuid4().hex[:8]}"
    topic_in, topic_out = new_topic(), new_topic()
    config = quickstart_config(kafka_bootstrap, mqtt_broker, topic_in, topic_out, prefix,
                               f"mqferry-{prefix}")
    procs: list[MqferryProcess] = []

    def start(cfg=None):
        p = MqferryProcess(cfg or config, tmp_path).start()
        procs.append(p)
        return p

    yield {"prefix": prefix, "in": topic_in, "out": topic_out, "config": config, "start": start,
           "dir": tmp_path, "procs": procs}
    for p in procs:
        if p.proc is not None and p.proc.poll() is None:
            p.kill()


ROOT = Path(__file__).resolve().parents[2]


def test_the_example_file_runs_on_the_ports_of_the_environment(
        setup, kafka_bootstrap, mqtt_broker, monkeypatch, mosquitto_pub, kcat_consume,
        mosquitto_sub, kcat_produce):
    """examples/quickstart.yaml itself, its defaults made wrong: only the variables can work."""
    text = (ROOT / "examples" / "quickstart.yaml").read_text()
    prefix = setup["prefix"]
    for old, new in [
            (":-9092}", ":-1}"), (":-1883}", ":-2}"), (":-18083}", ":-3}"),
            ("testtopic-in", setup["in"]), ("testtopic-out", setup["out"]),
            ('"t/#"', f'"{prefix}/t/#"'), ("mqtt_topic: t/1", f"mqtt_topic: {prefix}/t/1"),
            ("clientid: mqferry-quickstart", f"clientid: mqferry-{prefix}")]:
        assert old in text, old
        text = text.replace(old, new)
    api_port = free_port()
    monkeypatch.setenv("MQFERRY_KAFKA_PORT", kafka_bootstrap.rsplit(":", 1)[1])
    monkeypatch.setenv("MQFERRY_MQTT_PORT", str(mqtt_broker.port))
    monkeypatch.setenv("MQFERRY_API_PORT", str(api_port))
    app = MqferryProcess({}, setup["dir"])
    app.config_path.write_text(text)
    setup["procs"].append(app.start())
    app.wait_ready(actions=1, sources=1)
    mosquitto_pub(f"{prefix}/t/1", '{ "msg": "Hello Kafka" }', qos=1)
    [record] = kcat_consume(setup["in"], 1)
    assert json.loads(record["payload"])["payload"] == '{ "msg": "Hello Kafka" }'
    with mosquitto_sub(f"{prefix}/t/1", 1) as sub:
        kcat_produce(setup["out"], ['{"msg": "Hello EMQX"}'])
        [msg] = sub.wait()
    assert json.loads(msg.payload)["value"] == '{"msg": "Hello EMQX"}'
    with urllib.request.urlopen(f"http://127.0.0.1:{api_port}/status", timeout=10) as r:
        assert json.loads(r.read())["ready"] is True
    # The CLI finds the same port in the same file.
    key, secret = api_key(app.config_path)
    exe = str(Path(sys.executable).with_name("mqferry"))
    listed = subprocess.run([exe, "rules", "list", "-c", str(app.config_path)],
                            env={**os.environ, "MQFERRY_API_KEY": key,
                                 "MQFERRY_API_SECRET": secret},
                            capture_output=True, text=True, timeout=60, check=False)
    assert listed.returncode == 0 and "my_rule" in listed.stdout, listed.stderr
    assert app.terminate() == 0


def test_mqtt_message_lands_in_kafka_with_emqx_defaults(setup, mosquitto_pub, kcat_consume):
    app = setup["start"]()
    app.wait_ready(actions=1, sources=1)
    mosquitto_pub(f"{setup['prefix']}/t/1", '{ "msg": "Hello Kafka" }', qos=1,
                  user_properties=[("clientid", "emqx_c")])
    records = kcat_consume(setup["in"], 1)
    assert len(records) == 1, app.log
    value = json.loads(records[0]["payload"])
    assert value["payload"] == '{ "msg": "Hello Kafka" }'
    assert value["topic"] == f"{setup['prefix']}/t/1"
    assert value["qos"] == 1
    assert value["clientid"] == "emqx_c"
    assert records[0]["key"] == "emqx_c"  # ${.clientid}
    assert records[0]["ts"] == value["timestamp"]  # ${.timestamp}
    assert app.terminate() == 0
    assert "stopped" in app.log


def test_kafka_record_reaches_mqtt_as_the_emqx_message(setup, mosquitto_sub, kcat_produce):
    app = setup["start"]()
    app.wait_ready(actions=1, sources=1)
    with mosquitto_sub(f"{setup['prefix']}/t/1", 1) as sub:
        kcat_produce(setup["out"], ['{"msg": "Hello EMQX"}'], key="key",
                     headers={"header_key": "header_value"})
        [msg] = sub.wait()
    got = json.loads(msg.payload)
    assert set(got) == {"value", "ts_type", "ts", "topic", "offset", "key", "headers"}
    assert got["value"] == '{"msg": "Hello EMQX"}'
    assert got["ts_type"] == "create"
    assert got["topic"] == setup["out"]
    assert got["offset"] == 0
    assert got["key"] == "key"
    assert got["headers"] == {"header_key": "header_value"}
    assert isinstance(got["ts"], int) and got["ts"] > 1_600_000_000_000
    assert app.terminate() == 0


def test_non_json_payload_is_forwarded_as_a_string(setup, mosquitto_pub, kcat_consume):
    app = setup["start"]()
    app.wait_ready(actions=1)
    mosquitto_pub(f"{setup['prefix']}/t/raw", "not json at all", qos=1)
    [record] = kcat_consume(setup["in"], 1)
    assert json.loads(record["payload"])["payload"] == "not json at all"
    assert record["key"] is None  # no clientid known: a null key
    assert app.terminate() == 0


def test_messages_published_while_mqferry_is_down_arrive_after_it_starts(
        setup, mosquitto_pub, kcat_consume):
    app = setup["start"]()
    app.wait_ready(actions=1)
    assert app.terminate() == 0  # the broker keeps the persistent session
    for i in range(5):
        mosquitto_pub(f"{setup['prefix']}/t/{i}", f'{{"i": {i}}}', qos=1)
    app = setup["start"]()
    records = kcat_consume(setup["in"], 5)
    assert sorted(json.loads(r["payload"])["payload"] for r in records) == [
        f'{{"i": {i}}}' for i in range(5)], app.log
    assert app.terminate() == 0


def test_records_produced_while_mqferry_is_down_reach_mqtt_after_it_starts(
        setup, mosquitto_sub, kcat_produce):
    app = setup["start"]()
    app.wait_ready(sources=1)
    assert app.terminate() == 0  # "latest" was pinned at the first assignment
    kcat_produce(setup["out"], ["while-down-1", "while-down-2"])
    with mosquitto_sub(f"{setup['prefix']}/t/1", 2) as sub:
        app = setup["start"]()
        msgs = sub.wait(60)
    assert [json.loads(m.payload)["value"] for m in msgs] == ["while-down-1", "while-down-2"]
    assert app.terminate() == 0


def test_unreachable_brokers_at_start_are_retried_not_fatal(setup):
    cfg = setup["config"]
    dead_mqtt, dead_kafka = free_port(), f"127.0.0.1:{free_port()}"
    cfg["mqtt"]["server"] = f"127.0.0.1:{dead_mqtt}"
    for kind in cfg["connectors"].values():
        for conn in kind.values():
            conn["bootstrap_hosts"] = dead_kafka
    app = setup["start"](cfg)
    app.wait_for_log("retrying", timeout=30)
    time.sleep(3)
    assert app.proc is not None and app.proc.poll() is None, app.log
    assert f"127.0.0.1:{dead_mqtt}" in app.log
    assert app.terminate() == 0


def test_connectors_probe_reports_each_connector(setup, tmp_path):
    cfg = setup["config"]
    cfg["connectors"]["kafka_consumer"]["my-kafka-consumer"]["bootstrap_hosts"] = (
        f"127.0.0.1:{free_port()}")
    cfg["connectors"]["kafka_consumer"]["my-kafka-consumer"]["connect_timeout"] = "1s"
    path = MqferryProcess(cfg, tmp_path).config_path
    exe = str(Path(sys.executable).with_name("mqferry"))
    result = subprocess.run([exe, "connectors", "probe", "-c", str(path)], capture_output=True,
                            text=True, timeout=60, check=False)
    lines = result.stdout.splitlines()
    assert result.returncode == 1
    assert "mqtt: connected" in lines
    assert "kafka_producer:my-kafka: connected" in lines
    assert any(line.startswith("kafka_consumer:my-kafka-consumer: disconnected: 127.0.0.1:")
               for line in lines), result.stdout
    ok = subprocess.run([exe, "connectors", "probe", "-c", str(path), "kafka_producer:my-kafka"],
                        capture_output=True, text=True, timeout=60, check=False)
    assert ok.returncode == 0 and ok.stdout == "kafka_producer:my-kafka: connected\n"


def test_mqtt_reconnects_and_resubscribes_after_a_broker_restart(setup, mqtt_broker,
                                                                 kcat_consume):
    root = Path(__file__).resolve().parents[2]

    def services(*args):
        subprocess.run(["bash", str(root / "scripts" / "services.sh"), *args], check=True,
                       capture_output=True, timeout=120)

    app = setup["start"]()
    app.wait_ready(actions=1)
    try:
        services("stop", "mosquitto")
        app.wait_for_log("retrying in", timeout=30)
    finally:
        services("start", "mosquitto")
    app.wait_for_log("connected to MQTT broker", count=2, timeout=60)
    publish_many(mqtt_broker.host, mqtt_broker.port,
                 [(f"{setup['prefix']}/t/after", b'{"after": "restart"}')])
    [record] = kcat_consume(setup["in"], 1)
    assert json.loads(record["payload"])["payload"] == '{"after": "restart"}'
    assert app.terminate() == 0
