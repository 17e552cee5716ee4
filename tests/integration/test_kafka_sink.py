"""The kafka_producer action against the real Kafka, witnessed with kcat."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import time
import uuid
from pathlib import Path

import pytest

from mqferry_kafka_producer.partitions import java_partition
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


def _services(*args):
    subprocess.run(["bash", str(ROOT / "scripts" / "services.sh"), *args], check=True,
                   capture_output=True, timeout=180)


def _kafka_pid() -> int:
    dev = Path(os.environ.get("MQFERRY_DEV_DIR", ROOT / ".dev"))
    return int((dev / "kafka.pid").read_text().split()[0])


@pytest.fixture
def kafka_control(kafka_bootstrap):
    """Stop/start or pause the test Kafka; always leaves it running."""
    yield
    with contextlib.suppress(OSError, ValueError):
        os.kill(_kafka_pid(), signal.SIGCONT)
    _services("start", "kafka")


def test_disk_buffer_survives_kill_9_during_a_kafka_outage(
        run, new_topic, mqtt_broker, kcat_consume, kafka_control):
    topic = new_topic()
    app = run(topic=topic, message={"value": "${payload}"}, buffer={"mode": "disk"})
    _services("stop", "kafka")
    payloads = [str(i).encode() for i in range(300)]
    # acknowledged by mqferry once on disk, although Kafka is down
    publish(mqtt_broker, f"{run.prefix}/d", payloads)
    app.kill()
    _services("start", "kafka")
    app = run(topic=topic, message={"value": "${payload}"}, buffer={"mode": "disk"})
    recs = kcat_consume(topic, 300, timeout=90)
    # every message arrives; those mqferry had not acknowledged when killed may come twice
    assert {int(r["payload"]) for r in recs} == set(range(300)), app.log
    assert "replaying" in app.log
    assert app.terminate() == 0


def test_memory_buffer_delivers_everything_after_kafka_hangs(
        run, new_topic, mqtt_broker, kcat_consume, kafka_control):
    topic = new_topic()
    app = run(topic=topic, message={"value": "${payload}"})
    pid = _kafka_pid()
    os.kill(pid, signal.SIGSTOP)
    try:
        publish(mqtt_broker, f"{run.prefix}/h", [str(i).encode() for i in range(200)])
        time.sleep(20)
    finally:
        os.kill(pid, signal.SIGCONT)
    recs = kcat_consume(topic, 200, timeout=120)
    assert {int(r["payload"]) for r in recs} == set(range(200)), app.log
    assert app.terminate() == 0


def test_unacknowledged_messages_come_back_after_kill_9(
        run, new_topic, mqtt_broker, kcat_consume, kafka_control):
    """Memory buffer: PUBACKs wait for Kafka, so the broker still holds what mqferry lost."""
    topic = new_topic()
    app = run(topic=topic, message={"value": "${payload}"})
    _services("stop", "kafka")
    publish(mqtt_broker, f"{run.prefix}/m", [str(i).encode() for i in range(150)])
    time.sleep(2)  # mqferry has received them and holds their acks
    app.kill()
    _services("start", "kafka")
    app = run(topic=topic, message={"value": "${payload}"})
    recs = kcat_consume(topic, 150, timeout=90)
    assert {int(r["payload"]) for r in recs} == set(range(150)), app.log
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


def test_drop_oldest_bounds_each_partition_on_its_own(
        run, new_topic, mqtt_broker, kcat_consume, kafka_control):
    """A flood on one partition while Kafka hangs drops only that partition's oldest records."""
    topic = new_topic(partitions=2)
    key_a = next(f"a{i}" for i in range(100) if java_partition(f"a{i}".encode(), 2) == 0)
    key_b = next(f"b{i}" for i in range(100) if java_partition(f"b{i}".encode(), 2) == 1)
    app = run(topic=topic, partition_strategy="key_dispatch",
              message={"key": "${payload.k}", "value": "${payload.v}"},
              buffer={"per_partition_limit": "4KB", "overflow": "drop_oldest"})

    def msg(key, name):
        return json.dumps({"k": key, "v": name.ljust(1000, ".")}).encode()

    def names(recs, partition):
        return [r["payload"].rstrip(".") for r in recs if r["partition"] == partition]

    publish(mqtt_broker, f"{run.prefix}/p", [msg(key_b, "warm-up")])  # partition count known
    assert len(kcat_consume(topic, 1)) == 1
    pid = _kafka_pid()
    os.kill(pid, signal.SIGSTOP)
    try:
        # three records fit partition 1's 4 KB; thirty do not fit partition 0's
        publish(mqtt_broker, f"{run.prefix}/p",
                [msg(key_b, f"b-{i}") for i in range(3)] + [msg(key_a, f"a-{i}")
                                                            for i in range(30)])
        time.sleep(3)
    finally:
        os.kill(pid, signal.SIGCONT)
    deadline = time.monotonic() + 90
    recs = kcat_consume(topic, 1)
    while "a-29" not in names(recs, 0) and time.monotonic() < deadline:
        recs = kcat_consume(topic, len(recs) + 1, timeout=5)
    assert names(recs, 1) == ["warm-up", "b-0", "b-1", "b-2"], app.log
    got_a = names(recs, 0)
    assert got_a[-1] == "a-29", app.log
    # in flight while Kafka hung (at most 2 batches) plus what 4 KB holds; the rest dropped
    assert len(got_a) < 30
    assert got_a == sorted(got_a, key=lambda n: int(n.split("-")[1]))  # order kept
    assert app.terminate() == 0


def test_at_most_once_with_sync_query_mode_holds_acks_until_kafka_answers(
        kafka_bootstrap, mqtt_broker, new_topic, kcat_consume, tmp_path, kafka_control):
    """``query_mode: sync``: an at-most-once PUBACK waits for Kafka (up to the timeout)."""
    topic = new_topic()
    prefix = "amo-sync-" + uuid.uuid4().hex[:6]
    cfg = sink_config(kafka_bootstrap, mqtt_broker, prefix, topic=topic,
                      message={"value": "${payload}"}, query_mode="sync",
                      sync_query_timeout="60s")
    cfg["mqtt"]["delivery"] = "at_most_once"
    app = MqferryProcess(cfg, tmp_path).start()
    try:
        app.wait_ready(actions=1)
        _services("stop", "kafka")
        publish(mqtt_broker, f"{prefix}/x", [b"a", b"b", b"c"])
        time.sleep(2)  # mqferry has them; their acks wait for Kafka
        app.kill()
        _services("start", "kafka")
        app = MqferryProcess(cfg, tmp_path).start()
        app.wait_ready(actions=1)
        # the broker redelivers what was not acknowledged
        assert sorted(r["payload"] for r in kcat_consume(topic, 3, timeout=90)) == ["a", "b", "c"]
        assert app.terminate() == 0
    finally:
        if app.proc is not None and app.proc.poll() is None:
            app.kill()
