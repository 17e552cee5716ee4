"""The kafka_producer action against the real Kafka, witnessed with kcat."""

from __future__ import annotations

import json
import os
import subprocess
import time
import uuid
from pathlib import Path

import pytest

from tests.integration.mqferry_process import MqferryProcess
from tests.integration.publisher import publish_many

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]


def sink_config(kafka, mqtt, prefix, **params):
    buffer = params.pop("buffer", None)
    parameters = {"topic": params.pop("topic"), **params}
    if buffer:
        parameters["buffer"] = buffer
    return {
        "mqtt": {"server": f"{mqtt.host}:{mqtt.port}", "clientid": f"mqferry-{prefix}"},
        "connectors": {"kafka_producer": {"k": {"bootstrap_hosts": kafka}}},
        "actions": {"kafka_producer": {"sink": {"connector": "k", "parameters": parameters}}},
        "rules": {"r": {"sql": f'SELECT * FROM "{prefix}/#"',
                        "actions": ["kafka_producer:sink"]}},
    }


@pytest.fixture
def run(kafka_bootstrap, mqtt_broker, tmp_path):
    procs: list[MqferryProcess] = []
    prefix = f"sink-{uuid.uuid4().hex[:8]}"

    def start(**params):
        cfg = sink_config(kafka_bootstrap, mqtt_broker, prefix, **params)
        p = MqferryProcess(cfg, tmp_path).start()
        procs.append(p)
        p.wait_ready(actions=1)
        return p

    start.prefix = prefix
    yield start
    for p in procs:
        if p.proc is not None and p.proc.poll() is None:
            p.kill()


def publish(mqtt_broker, topic, payloads):
    publish_many(mqtt_broker.host, mqtt_broker.port, [(topic, p) for p in payloads])


def test_headers_keys_and_timestamps(run, new_topic, mosquitto_pub, kcat_consume):
    topic = new_topic()
    app = run(topic=topic, kafka_headers="${pub_props}",
              kafka_ext_headers=[{"kafka_ext_header_key": "mqtt-topic",
                                  "kafka_ext_header_value": "${topic}"}],
              message={"key": "${payload.id}", "value": "${payload.v}",
                       "timestamp": "${payload.ts}"})
    mosquitto_pub(f"{run.prefix}/a", '{"id": "dev-7", "v": "hello", "ts": 1700000000123}',
                  user_properties=[("site", "north"), ("line", "4")],
                  props={"content-type": "application/json"})
    [rec] = kcat_consume(topic, 1)
    assert (rec["key"], rec["payload"], rec["ts"]) == ("dev-7", "hello", 1700000000123)
    headers = dict(rec["headers"])
    assert headers["site"] == "north" and headers["line"] == "4"
    assert headers["Content-Type"] == "application/json"
    assert headers["mqtt-topic"] == f"{run.prefix}/a"
    assert app.terminate() == 0


def test_empty_string_and_null_keys_are_distinct(run, new_topic, mosquitto_pub, kcat_consume):
    topic = new_topic()
    app = run(topic=topic, message={"key": "${payload.k}", "value": "${payload.v}"})
    mosquitto_pub(f"{run.prefix}/a", '{"k": "", "v": ""}')
    mosquitto_pub(f"{run.prefix}/a", '{"other": 1}')
    recs = kcat_consume(topic, 2)
    assert [(r["key"], r["payload"]) for r in recs] == [("", ""), (None, None)]
    assert app.terminate() == 0


def test_key_dispatch_matches_the_java_partitioner(run, new_topic, kcat_produce, kcat_consume,
                                                   mqtt_broker):
    ours, theirs = new_topic(partitions=6), new_topic(partitions=6)
    keys = [f"vehicle-{i}" for i in range(30)]
    # kcat with the Java client's partitioner is the reference
    for key in keys:
        subprocess.run(["kcat", "-P", "-b", os.environ["MQFERRY_KAFKA_BOOTSTRAP"], "-t", theirs,
                        "-k", key, "-X", "partitioner=murmur2_random"],
                       input=b"x", check=True, timeout=30)
    app = run(topic=ours, partition_strategy="key_dispatch", message={"key": "${payload.k}"})
    publish(mqtt_broker, f"{run.prefix}/k", [json.dumps({"k": k}).encode() for k in keys])
    want = {r["key"]: r["partition"] for r in kcat_consume(theirs, len(keys))}
    got = {r["key"]: r["partition"] for r in kcat_consume(ours, len(keys))}
    assert got == want
    assert len(set(got.values())) > 1
    assert app.terminate() == 0


@pytest.mark.parametrize("codec", ["gzip", "snappy", "lz4", "zstd"])
def test_compression_codecs(run, new_topic, mqtt_broker, kcat_consume, codec):
    topic = new_topic()
    app = run(topic=topic, compression=codec, message={"value": "${payload}"})
    payloads = [json.dumps({"n": i, "pad": "x" * 100}).encode() for i in range(50)]
    publish(mqtt_broker, f"{run.prefix}/c", payloads)
    recs = kcat_consume(topic, 50)
    assert sorted(json.loads(r["payload"])["n"] for r in recs) == list(range(50))
    assert app.terminate() == 0


@pytest.mark.parametrize("acks", ["leader_only", "none"])
def test_required_acks(run, new_topic, mqtt_broker, kcat_consume, acks):
    topic = new_topic()
    app = run(topic=topic, required_acks=acks, message={"value": "${payload}"})
    publish(mqtt_broker, f"{run.prefix}/a", [b"1", b"2", b"3"])
    assert sorted(r["payload"] for r in kcat_consume(topic, 3)) == ["1", "2", "3"]
    assert app.terminate() == 0


def test_round_robin_and_partitions_limit(run, new_topic, mqtt_broker, kcat_consume):
    topic = new_topic(partitions=4)
    app = run(topic=topic, partition_strategy="round_robin", partitions_limit=2,
              message={"value": "${payload}"})
    publish(mqtt_broker, f"{run.prefix}/a", [str(i).encode() for i in range(40)])
    recs = kcat_consume(topic, 40)
    assert {r["partition"] for r in recs} == {0, 1}
    assert app.terminate() == 0


def test_unknown_dynamic_topic_fails_alone_and_fallback_catches_it(
        run, new_topic, mosquitto_pub, kcat_consume):
    good, fallback = new_topic(), new_topic()
    app = run(topic="${payload.t}", fallback_topic=fallback, message={"value": "${payload.v}"})
    mosquitto_pub(f"{run.prefix}/a", json.dumps({"t": good, "v": "to-good"}))
    mosquitto_pub(f"{run.prefix}/a", json.dumps({"t": "no-such-topic-" + uuid.uuid4().hex,
                                                 "v": "to-fallback"}))
    assert [r["payload"] for r in kcat_consume(good, 1)] == ["to-good"]
    assert [r["payload"] for r in kcat_consume(fallback, 1)] == ["to-fallback"]
    assert app.terminate() == 0


def test_unknown_topic_without_fallback_is_counted_and_the_rest_flows(
        run, new_topic, mosquitto_pub, kcat_consume):
    good = new_topic()
    app = run(topic="${payload.t}", message={"value": "${payload.v}"})
    mosquitto_pub(f"{run.prefix}/a", json.dumps({"t": "missing-" + uuid.uuid4().hex, "v": "x"}))
    mosquitto_pub(f"{run.prefix}/a", json.dumps({"t": good, "v": "after"}))
    assert [r["payload"] for r in kcat_consume(good, 1)] == ["after"]
    app.wait_for_log("failed.unknown_topic")
    assert app.terminate() == 0


def test_an_oversized_message_fails_alone(run, new_topic, mqtt_broker, kcat_consume):
    topic = new_topic()
    app = run(topic=topic, message={"value": "${payload}"})
    big = b"B" * (2 * 1024 * 1024)  # the broker's default limit is 1 MB
    publish(mqtt_broker, f"{run.prefix}/a", [b"before", big, b"after"])
    recs = kcat_consume(topic, 2)
    assert [r["payload"] for r in recs] == ["before", "after"]
    app.wait_for_log("failed.too_large")
    assert app.terminate() == 0


def test_a_timestamp_kafka_refuses_fails_its_record_alone(run, new_topic, mqtt_broker,
                                                          kcat_consume):
    """The broker refuses a batch holding a record stamped hours ahead (its default
    ``message.timestamp.after.max.ms`` is one hour): only that record fails."""
    topic = new_topic()
    app = run(topic=topic, message={"value": "${payload.n}", "timestamp": "${payload.ts}"})
    now = int(time.time() * 1000)
    msgs = [json.dumps({"n": f"m{i}", "ts": now + (3 * 3_600_000 if i == 10 else i)}).encode()
            for i in range(20)]
    publish(mqtt_broker, f"{run.prefix}/ts", msgs)
    recs = kcat_consume(topic, 19)
    assert sorted(r["payload"] for r in recs) == sorted(f"m{i}" for i in range(20) if i != 10)
    app.wait_for_log("failed.refused: Kafka refused a record for")
    assert app.log.count("failed.refused:") == 1, app.log  # the others went through
    assert app.terminate() == 0


def test_at_most_once_acknowledges_on_receipt(kafka_bootstrap, mqtt_broker, new_topic,
                                              kcat_consume, tmp_path):
    topic = new_topic()
    cfg = sink_config(kafka_bootstrap, mqtt_broker, "amo-" + uuid.uuid4().hex[:6], topic=topic,
                      message={"value": "${payload}"})
    cfg["mqtt"]["delivery"] = "at_most_once"
    app = MqferryProcess(cfg, tmp_path).start()
    try:
        app.wait_ready(actions=1)
        prefix = cfg["rules"]["r"]["sql"].split('"')[1].removesuffix("/#")
        publish(mqtt_broker, f"{prefix}/x", [b"a", b"b", b"c"])
        assert sorted(r["payload"] for r in kcat_consume(topic, 3)) == ["a", "b", "c"]
        assert app.terminate() == 0
    finally:
        if app.proc is not None and app.proc.poll() is None:
            app.kill()
