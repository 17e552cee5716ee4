"""The kafka_producer action through Kafka outages: stopped, restarted, frozen (SIGSTOP).

These tests stop and freeze a Kafka of their own (``scripts/services.sh`` in a temporary
directory, one for the module); the shared development broker, which other work on the machine
may be using, is never touched. Witness: kcat.
"""

from __future__ import annotations

import json
import os
import signal
import time
import uuid
from collections.abc import Iterator

import pytest

from mqferry_kafka_producer.partitions import java_partition
from tests.integration.mqferry_process import MqferryProcess
from tests.integration.private_kafka import PrivateKafka, private_kafka_or_skip
from tests.integration.test_kafka_sink import publish, run, sink_config

pytestmark = pytest.mark.integration

__all__ = ["run"]  # the fixture, used here with this module's Kafka


@pytest.fixture(scope="module")
def private_kafka(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PrivateKafka]:
    kafka = private_kafka_or_skip(tmp_path_factory.mktemp("kafka"))
    kafka.start()
    try:
        yield kafka
    finally:
        if kafka.running:
            os.kill(kafka.pid(), signal.SIGCONT)
            kafka.stop()


@pytest.fixture(scope="module")
def kafka_bootstrap(private_kafka: PrivateKafka) -> str:
    """This module's Kafka, in place of the shared one (``run``, ``new_topic``, kcat use it)."""
    return private_kafka.bootstrap


@pytest.fixture
def outage(private_kafka: PrivateKafka) -> Iterator[PrivateKafka]:
    """Stop/start or freeze this module's Kafka; left running (and not frozen) after the test."""
    yield private_kafka
    if private_kafka.running:
        os.kill(private_kafka.pid(), signal.SIGCONT)
    else:
        private_kafka.start()


def test_disk_buffer_survives_kill_9_during_a_kafka_outage(
        run, new_topic, mqtt_broker, kcat_consume, outage):
    topic = new_topic()
    app = run(topic=topic, message={"value": "${payload}"}, buffer={"mode": "disk"})
    outage.stop()
    payloads = [str(i).encode() for i in range(300)]
    # acknowledged by mqferry once on disk, although Kafka is down
    publish(mqtt_broker, f"{run.prefix}/d", payloads)
    app.kill()
    outage.start()
    app = run(topic=topic, message={"value": "${payload}"}, buffer={"mode": "disk"})
    recs = kcat_consume(topic, 300, timeout=90)
    # every message arrives; those mqferry had not acknowledged when killed may come twice
    assert {int(r["payload"]) for r in recs} == set(range(300)), app.log
    assert "replaying" in app.log
    assert app.terminate() == 0


def test_memory_buffer_delivers_everything_after_kafka_hangs(
        run, new_topic, mqtt_broker, kcat_consume, outage):
    topic = new_topic()
    app = run(topic=topic, message={"value": "${payload}"})
    pid = outage.pid()
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
        run, new_topic, mqtt_broker, kcat_consume, outage):
    """Memory buffer: PUBACKs wait for Kafka, so the broker still holds what mqferry lost."""
    topic = new_topic()
    app = run(topic=topic, message={"value": "${payload}"})
    outage.stop()
    publish(mqtt_broker, f"{run.prefix}/m", [str(i).encode() for i in range(150)])
    time.sleep(2)  # mqferry has received them and holds their acks
    app.kill()
    outage.start()
    app = run(topic=topic, message={"value": "${payload}"})
    recs = kcat_consume(topic, 150, timeout=90)
    assert {int(r["payload"]) for r in recs} == set(range(150)), app.log
    assert app.terminate() == 0


def test_drop_oldest_bounds_each_partition_on_its_own(
        run, new_topic, mqtt_broker, kcat_consume, outage):
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
    pid = outage.pid()
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
        kafka_bootstrap, mqtt_broker, new_topic, kcat_consume, tmp_path, outage):
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
        outage.stop()
        publish(mqtt_broker, f"{prefix}/x", [b"a", b"b", b"c"])
        time.sleep(2)  # mqferry has them; their acks wait for Kafka
        app.kill()
        outage.start()
        app = MqferryProcess(cfg, tmp_path).start()
        app.wait_ready(actions=1)
        # the broker redelivers what was not acknowledged
        assert sorted(r["payload"] for r in kcat_consume(topic, 3, timeout=90)) == ["a", "b", "c"]
        assert app.terminate() == 0
    finally:
        if app.proc is not None and app.proc.poll() is None:
            app.kill()
