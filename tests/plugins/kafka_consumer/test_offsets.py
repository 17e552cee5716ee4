"""The source's offsets on the twins: the whole consume loop, from fetch to commit.

The Kafka side is :class:`tests.plugins.kafka_consumer.twin.TimedKafkaTwin` (injected as the
consumer factory), the MQTT side :class:`mqferry.testing.InMemoryMqtt`. The same claims are made
against the real brokers in tests/integration/test_kafka_source.py.
"""

import asyncio
import logging

import pytest

from mqferry import MqttUnavailable
from mqferry.testing import InMemoryMqtt, runtime_context, wait_until
from mqferry_kafka import KafkaConnector, KafkaConnectorConfig
from mqferry_kafka_consumer import source as source_module
from mqferry_kafka_consumer.config import KafkaConsumerSourceConfig
from mqferry_kafka_consumer.source import KafkaConsumerSource
from tests.plugins.kafka_consumer.twin import TimedKafkaTwin

GROUP = "g"


def twin():
    """The Kafka twin, with the topic ``in`` (one partition)."""
    return TimedKafkaTwin(topics={"in": 1})


def make(kafka, mqtt, **params):
    params.setdefault("topic_mapping", [{"kafka_topic": "in", "mqtt_topic": "out",
                                         "qos": 1, "payload_template": "${.value}"}])
    params.setdefault("group_id", GROUP)
    params.setdefault("offset_commit_interval_seconds", 0.05)
    cfg = KafkaConsumerSourceConfig(connector="k", parameters=params)
    conn = KafkaConnector(kind="kafka_consumer", name="k",
                          config=KafkaConnectorConfig(bootstrap_hosts="127.0.0.1:1"))
    return KafkaConsumerSource(name="s", config=cfg, connector=conn,
                               context=runtime_context(mqtt), consumer_factory=kafka.consumer)


@pytest.fixture
async def running():
    sources = []

    async def start(kafka, mqtt, **params):
        src = make(kafka, mqtt, **params)
        await src.start()
        sources.append(src)
        return src

    yield start
    for src in sources:
        await src.stop()


def payloads(mqtt):
    return [p.payload for p in mqtt.published]


async def test_an_offset_is_committed_only_after_its_publish_and_every_earlier_one_is_acked(
        running):
    kafka, mqtt = twin(), InMemoryMqtt(hold_acks=True)
    for i in range(3):
        kafka.produce("in", b"m%d" % i)
    await running(kafka, mqtt, offset_reset_policy="earliest")
    await wait_until(lambda: len(mqtt.published) == 3)
    await asyncio.sleep(0.2)  # several commit intervals
    assert kafka.committed_offset(GROUP, "in") == 0  # the start, pinned on assignment
    mqtt.ack(1)
    await wait_until(lambda: kafka.committed_offset(GROUP, "in") == 1)
    mqtt.ack()
    await wait_until(lambda: kafka.committed_offset(GROUP, "in") == 3)
    assert payloads(mqtt) == [b"m0", b"m1", b"m2"]


async def test_latest_pins_the_start_so_records_produced_later_are_delivered(running):
    kafka, mqtt = twin(), InMemoryMqtt()
    kafka.produce("in", b"before")
    src = await running(kafka, mqtt)
    await wait_until(lambda: kafka.committed_offset(GROUP, "in") == 1)
    assert kafka.commits[0] == (GROUP, kafka.consumers[0].assignment().pop(), 1)
    await src.stop()
    kafka.produce("in", b"while down")
    await src.start()
    await wait_until(lambda: kafka.committed_offset(GROUP, "in") == 2)
    assert payloads(mqtt) == [b"while down"]


async def test_stop_commits_what_settled(running):
    kafka, mqtt = twin(), InMemoryMqtt()
    src = await running(kafka, mqtt, offset_commit_interval_seconds=3600, max_inflight=1000)
    await wait_until(lambda: kafka.consumers and kafka.consumers[0].assignment())
    for i in range(5):
        kafka.produce("in", b"m%d" % i)
    await wait_until(lambda: len(mqtt.published) == 5)
    assert kafka.committed_offset(GROUP, "in") == 0
    await src.stop()
    assert kafka.committed_offset(GROUP, "in") == 5
    assert kafka.consumers[0].stopped


async def test_records_unsettled_at_stop_are_said_to_be_read_again_by_the_group(
        running, caplog, monkeypatch):
    monkeypatch.setattr(source_module, "DRAIN_TIMEOUT", 0.1)
    kafka, mqtt = twin(), InMemoryMqtt(hold_acks=True)
    for i in range(3):
        kafka.produce("in", b"m%d" % i)
    src = await running(kafka, mqtt, offset_reset_policy="earliest")
    await wait_until(lambda: len(mqtt.published) == 3)
    mqtt.ack(1)
    with caplog.at_level(logging.WARNING, logger="mqferry_kafka_consumer"):
        await src.stop()
    assert kafka.committed_offset(GROUP, "in") == 1
    assert ("stopped with 2 records unsettled (MQTT or the rules' actions did not settle them "
            "within 0.1s); their offsets are not committed, so the consumer group reads them "
            "again") in caplog.text
    assert "redeliver" not in caplog.text


async def test_a_full_window_pauses_the_partitions_until_records_settle(running):
    kafka, mqtt = twin(), InMemoryMqtt(hold_acks=True)
    for i in range(10):
        kafka.produce("in", b"m%d" % i)
    src = await running(kafka, mqtt, offset_reset_policy="earliest", max_inflight=4)
    await wait_until(lambda: kafka.pauses >= 1)
    assert len(mqtt.published) == 4
    assert src.metrics.snapshot()["paused"] == 1.0
    while len(mqtt.published) < 10:
        mqtt.ack()
        await asyncio.sleep(0.02)
    mqtt.ack()
    await wait_until(lambda: kafka.committed_offset(GROUP, "in") == 10)
    assert payloads(mqtt) == [b"m%d" % i for i in range(10)]


async def test_a_lost_mqtt_session_consumes_again_from_the_first_unacked_record(running):
    kafka, mqtt = twin(), InMemoryMqtt(hold_acks=True)
    for i in range(4):
        kafka.produce("in", b"m%d" % i)
    src = await running(kafka, mqtt, offset_reset_policy="earliest")
    await wait_until(lambda: len(mqtt.published) == 4)
    mqtt.ack(2)
    mqtt.ack(error=MqttUnavailable("session lost"))
    await wait_until(lambda: len(mqtt.published) == 6)
    mqtt.ack()
    await wait_until(lambda: kafka.committed_offset(GROUP, "in") == 4)
    tp = kafka.consumers[0].assignment().pop()
    assert kafka.seeks == [(tp, 2)]
    assert payloads(mqtt) == [b"m0", b"m1", b"m2", b"m3", b"m2", b"m3"]
    assert src.metrics.snapshot()["redelivered"] == 2


async def test_a_failed_commit_is_retried_and_nothing_is_skipped(running):
    from aiokafka.errors import CommitFailedError

    kafka, mqtt = twin(), InMemoryMqtt()
    kafka.produce("in", b"m0")
    await running(kafka, mqtt, offset_reset_policy="earliest")
    await wait_until(lambda: kafka.committed_offset(GROUP, "in") == 0)
    kafka.fail_commits.append(CommitFailedError("rebalancing (twin)"))
    kafka.produce("in", b"m1")
    await wait_until(lambda: kafka.committed_offset(GROUP, "in") == 2)
    assert not kafka.fail_commits  # the failed commit happened, and a later one covered it
    assert payloads(mqtt) == [b"m0", b"m1"]
