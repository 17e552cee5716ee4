"""A message too large for Kafka is accounted where operators look; binary payloads pass intact.

Issue #17, items 6 and 7, against the real brokers with ``mosquitto_pub`` publishing and
``kcat`` reading: a message above the topic's ``max.message.bytes`` fails alone (a WARNING naming
the topic, the size and the limit; ``failed.too_large`` in ``GET /actions/:id/metrics`` and the
dead letter), the next message arrives without a new producer
session, the counters survive a settings change; ``\\x00\\x01\\xff\\xfe`` sent with ``${payload}``
arrives byte for byte, and through ``${.}`` as EMQX writes it (U+FFFD), counted and logged.
"""

from __future__ import annotations

import shutil
import struct
import subprocess
import uuid

import httpx
import pytest

from tests.integration.mqferry_process import MqferryProcess, api_key, free_port

pytestmark = pytest.mark.integration

#: the broker default max.message.bytes is 1048588; this fits a request (1.75 MiB with the
#: default max_batch_bytes), so only the topic's limit refuses it
BIG = 1_200_000
BINARY = b"\x00\x01\xff\xfe"


def kcat_raw(bootstrap: str, topic: str, count: int, timeout: float = 30.0) -> list[bytes]:
    """The payloads of the first ``count`` records of ``topic``, as bytes (kcat -f '%R%s')."""
    kcat = shutil.which("kcat")
    assert kcat is not None
    out = subprocess.run([kcat, "-C", "-b", bootstrap, "-t", topic, "-o", "beginning",
                          "-c", str(count), "-f", "%R%s", "-q"],
                         capture_output=True, timeout=timeout, check=True).stdout
    values = []
    while out:
        (n,) = struct.unpack(">i", out[:4])
        values.append(out[4 : 4 + n])
        out = out[4 + n :]
    return values


def publish_file(mqtt_broker, topic: str, path) -> None:
    subprocess.run(["mosquitto_pub", "-h", mqtt_broker.host, "-p", str(mqtt_broker.port),
                    "-q", "1", "-t", topic, "-f", str(path)], check=True, timeout=30)


@pytest.fixture
def instance(tmp_path, kafka_bootstrap, mqtt_broker):
    procs = []
    clients: list[httpx.Client] = []

    def start(prefix: str, sink: str, dlq: str, json_sink: str | None = None):
        cfg = {
            "mqtt": {"server": f"{mqtt_broker.host}:{mqtt_broker.port}",
                     "clientid": f"mqferry-{prefix}",
                     "dead_letter": {"action": "kafka_producer:dlq"}},
            "api": {"listen": f"127.0.0.1:{free_port()}"},
            "data_dir": str(tmp_path / "data"),
            "connectors": {"kafka_producer": {"k": {"bootstrap_hosts": kafka_bootstrap}}},
            "actions": {"kafka_producer": {
                "sink": {"connector": "k", "parameters": {
                    "topic": sink, "message": {"key": "", "value": "${payload}"}}},
                # the dead letter of a message too large for Kafka cannot carry its payload
                # (the topics have the same limit): its topic and headers say what was lost
                "dlq": {"connector": "k", "parameters": {
                    "topic": dlq, "kafka_headers": "${headers}",
                    "message": {"key": "", "value": "${topic}"}}}}},
            "rules": {"r": {"sql": f'SELECT payload FROM "{prefix}/#"',
                            "actions": ["kafka_producer:sink"]}},
        }
        if json_sink is not None:
            cfg["actions"]["kafka_producer"]["json"] = {"connector": "k", "parameters": {
                "topic": json_sink, "message": {"key": "", "value": "${.}"}}}
            cfg["rules"]["r"]["actions"].append("kafka_producer:json")
        proc = MqferryProcess(cfg, tmp_path)
        key = api_key(proc.config_path)
        proc.start()
        procs.append(proc)
        proc.wait_ready(actions=len(cfg["actions"]["kafka_producer"]))
        proc.wait_for_log("API listening")
        port = cfg["api"]["listen"].rsplit(":", 1)[1]
        client = httpx.Client(base_url=f"http://127.0.0.1:{port}/api/v5", auth=key, timeout=30)
        clients.append(client)
        return proc, client

    yield start
    for c in clients:
        c.close()
    for p in procs:
        if p.proc is not None and p.proc.poll() is None:
            p.kill()


def test_a_message_too_large_for_the_topic_is_accounted_and_the_next_one_flows(
        instance, kafka_bootstrap, mqtt_broker, new_topic, mosquitto_pub, kcat_consume,
        tmp_path):
    prefix = f"big-{uuid.uuid4().hex[:8]}"
    sink, dlq = new_topic(), new_topic()
    proc, api = instance(prefix, sink, dlq)
    big = tmp_path / "big.bin"
    big.write_bytes(b"x" * BIG)

    mosquitto_pub(f"{prefix}/warmup", "first")  # the topic is looked up (count and limit)
    assert kcat_raw(kafka_bootstrap, sink, 1) == [b"first"]
    publish_file(mqtt_broker, f"{prefix}/big", big)
    mosquitto_pub(f"{prefix}/small", "after")
    assert kcat_raw(kafka_bootstrap, sink, 2) == [b"first", b"after"], proc.log

    proc.wait_for_log("action kafka_producer:sink: failed.too_large: a record of ")
    assert "new producer session" not in proc.log
    assert "not acknowledged" not in proc.log
    [line] = [ln for ln in proc.lines if "failed.too_large" in ln]
    assert "WARNING" in line and sink in line and "max.message.bytes = 1048588" in line
    assert f"a record of {BIG} bytes (" in line

    metrics = api.get("/actions/kafka_producer:sink/metrics").json()["metrics"]
    assert metrics["failed.too_large"] == 1 and metrics["failed"] == 1
    assert metrics["success"] == 2
    last = api.get("/actions/kafka_producer:sink").json()["last_error"]
    assert last["reason"] == "failed.too_large" and f"a record of {BIG} bytes" in last["message"]
    [dead] = kcat_consume(dlq, 1, timeout=60)
    assert dead["payload"] == f"{prefix}/big"
    headers = dict(dead["headers"])
    assert headers["mqferry-reason"] == "failed.too_large"
    assert headers["mqferry-action"] == "kafka_producer:sink"

    # A settings change rebuilds the action: its counters stay, until reset on request.
    body = api.get("/actions/kafka_producer:sink").json()
    settings = {"connector": "k", "parameters": {**body["parameters"], "max_retries": 7}}
    assert api.put("/actions/kafka_producer:sink", json=settings).status_code == 200
    metrics = api.get("/actions/kafka_producer:sink/metrics").json()["metrics"]
    assert metrics["failed.too_large"] == 1 and metrics["success"] == 2
    assert api.put("/actions/kafka_producer:sink/metrics/reset").status_code == 204
    metrics = api.get("/actions/kafka_producer:sink/metrics").json()["metrics"]
    assert metrics.get("failed.too_large", 0) == 0 and metrics["success"] == 0
    assert proc.terminate() == 0


def test_a_binary_payload_arrives_byte_for_byte(
        instance, kafka_bootstrap, mqtt_broker, new_topic, tmp_path):
    prefix = f"bin-{uuid.uuid4().hex[:8]}"
    sink, dlq, json_sink = new_topic(), new_topic(), new_topic()
    proc, api = instance(prefix, sink, dlq, json_sink)
    data = tmp_path / "payload.bin"
    data.write_bytes(BINARY)
    publish_file(mqtt_broker, f"{prefix}/raw", data)
    assert kcat_raw(kafka_bootstrap, sink, 1) == [BINARY], proc.log
    # JSON cannot carry these bytes: written as EMQX writes them, and never silently
    [doc] = kcat_raw(kafka_bootstrap, json_sink, 1)
    assert doc == b'{"payload":"\\u0000\\u0001' + "\ufffd\ufffd".encode() + b'"}'
    proc.wait_for_log("action kafka_producer:json: a value that is not UTF-8 was written into "
                      f"JSON for {json_sink} with U+FFFD replacement characters")
    metrics = api.get("/actions/kafka_producer:json/metrics").json()["metrics"]
    assert metrics["rendered.not_utf8"] == 1 and metrics["success"] == 1
    assert api.get("/actions/kafka_producer:sink/metrics").json()["metrics"].get(
        "rendered.not_utf8", 0) == 0
    assert proc.terminate() == 0
