"""Topics and partitions that appear while the source runs: found quickly, said, nothing skipped.

With ``latest``, a partition the group never committed starts at its first record produced after
the source started; one whose records are all older starts at its end. Twins on both sides
(:class:`tests.plugins.kafka_consumer.twin.TimedKafkaTwin`, :class:`mqferry.testing.InMemoryMqtt`);
against the real brokers: tests/integration/test_kafka_source_new_topic.py.
"""

import logging

import pytest
from aiokafka import TopicPartition
from aiokafka.errors import KafkaTimeoutError

from mqferry.testing import InMemoryMqtt, wait_until
from tests.plugins.kafka_consumer.test_offsets import GROUP, make
from tests.plugins.kafka_consumer.twin import TimedKafkaTwin, TimedTwinConsumer, now_ms

LATE = [{"kafka_topic": "late", "mqtt_topic": "out", "qos": 1, "payload_template": "${.value}"}]


@pytest.fixture
async def running():
    sources = []

    async def start(kafka, mqtt, **params):
        sources.append(src := make(kafka, mqtt, **params))
        await src.start()
        return src

    yield start
    for src in sources:
        await src.stop()


def payloads(mqtt):
    return [p.payload for p in mqtt.published]


async def test_a_topic_created_after_the_start_is_read_from_its_first_record(running, caplog):
    kafka, mqtt = TimedKafkaTwin(), InMemoryMqtt()
    with caplog.at_level(logging.INFO, logger="mqferry_kafka_consumer"):
        await running(kafka, mqtt, topic_mapping=LATE)
        await wait_until(lambda: "'late' does not exist (yet)" in caplog.text)
        for i in range(3):  # created, then written to before the source is assigned it
            kafka.produce("late", b"m%d" % i, timestamp=now_ms())
        await wait_until(lambda: len(mqtt.published) == 3)
        await wait_until(lambda: kafka.committed_offset(GROUP, "late") == 3)
        await wait_until(lambda: "Kafka topic 'late' now exists" in caplog.text)
    assert payloads(mqtt) == [b"m0", b"m1", b"m2"]
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and "'late'" in warnings[0].getMessage()


@pytest.mark.parametrize(("policy", "read_from"), [
    ("latest", "read from their first record produced after the source started "
               "(offset_reset_policy: latest)"),
    ("earliest", "read from their first record (offset_reset_policy: earliest)"),
])
async def test_a_topic_that_appears_is_said_to_be_read_as_the_reset_policy_reads_it(
        running, caplog, policy, read_from):
    kafka, mqtt = TimedKafkaTwin(), InMemoryMqtt()
    with caplog.at_level(logging.INFO, logger="mqferry_kafka_consumer"):
        await running(kafka, mqtt, topic_mapping=LATE, offset_reset_policy=policy)
        await wait_until(lambda: "'late' does not exist (yet)" in caplog.text)
        kafka.produce("late", b"m0", timestamp=now_ms())
        await wait_until(lambda: "Kafka topic 'late' now exists" in caplog.text)
    line = next(r.getMessage() for r in caplog.records if "now exists" in r.getMessage())
    assert line.endswith(read_from)


async def test_an_existing_topic_is_not_said_missing_before_the_consumer_has_its_metadata(
        running, caplog):
    """aiokafka's metadata is empty until its first answer after ``subscribe()``: Kafka's list
    of topics decides, and only the topic it lacks is said missing."""
    kafka, mqtt = TimedKafkaTwin(topics={"in": 1}, cold_metadata=True), InMemoryMqtt()
    with caplog.at_level(logging.INFO, logger="mqferry_kafka_consumer"):
        await running(kafka, mqtt, topic_mapping=MAPPED + LATE)
        await wait_until(lambda: "'late' does not exist (yet)" in caplog.text)
        await wait_until(lambda: kafka.consumers[0].fetched)
        kafka.produce("in", b"m0")
        await wait_until(lambda: kafka.committed_offset(GROUP, "in") == 1)
    assert "'in'" not in caplog.text
    assert kafka.listings == 1


async def test_a_topic_is_not_said_missing_while_kafka_does_not_list_its_topics(
        running, caplog):
    kafka, mqtt = TimedKafkaTwin(cold_metadata=True), InMemoryMqtt()
    kafka.fail_listings.append(KafkaTimeoutError("no answer (twin)"))
    with caplog.at_level(logging.WARNING, logger="mqferry_kafka_consumer"):
        await running(kafka, mqtt, topic_mapping=LATE, topic_pattern_refresh_interval="1s")
        await wait_until(lambda: kafka.listings == 1)
        assert "does not exist" not in caplog.text
        await wait_until(lambda: "'late' does not exist (yet)" in caplog.text)  # asked again
    assert kafka.listings == 2


async def test_a_partition_whose_records_predate_the_start_still_starts_at_latest(running):
    kafka, mqtt = TimedKafkaTwin(), InMemoryMqtt()
    kafka.produce("late", b"old")  # timestamped in 2023: before the start
    await running(kafka, mqtt, topic_mapping=LATE)
    await wait_until(lambda: kafka.committed_offset(GROUP, "late") == 1)
    kafka.produce("late", b"new", timestamp=now_ms())
    await wait_until(lambda: kafka.committed_offset(GROUP, "late") == 2)
    assert payloads(mqtt) == [b"new"]


async def test_only_records_timestamped_after_the_start_are_read_of_a_never_committed_partition(
        running):
    kafka, mqtt = TimedKafkaTwin(), InMemoryMqtt()
    kafka.produce("late", b"old")
    kafka.produce("late", b"after start", timestamp=now_ms() + 60_000)
    await running(kafka, mqtt, topic_mapping=LATE)
    await wait_until(lambda: kafka.committed_offset(GROUP, "late") == 2)
    assert payloads(mqtt) == [b"after start"]
    assert kafka.commits[0] == (GROUP, TopicPartition("late", 0), 1)  # the start, pinned


async def test_earliest_ignores_timestamps(running):
    kafka, mqtt = TimedKafkaTwin(), InMemoryMqtt()
    kafka.produce("late", b"old")
    await running(kafka, mqtt, topic_mapping=LATE, offset_reset_policy="earliest")
    await wait_until(lambda: kafka.committed_offset(GROUP, "late") == 1)
    assert payloads(mqtt) == [b"old"]


async def test_a_failed_timestamp_lookup_falls_back_to_latest_and_says_so(running, caplog):
    kafka, mqtt = TimedKafkaTwin(), InMemoryMqtt()
    kafka.fail_lookups.append(KafkaTimeoutError("no answer (twin)"))
    kafka.produce("late", b"new", timestamp=now_ms() + 60_000)
    with caplog.at_level(logging.WARNING, logger="mqferry_kafka_consumer"):
        await running(kafka, mqtt, topic_mapping=LATE)
        await wait_until(lambda: kafka.committed_offset(GROUP, "late") == 1)
    assert payloads(mqtt) == []
    assert "cannot look up the first records produced after the source started" in caplog.text
    assert "late/0 start at the latest offset" in caplog.text


def test_named_topics_refresh_their_metadata_as_often_as_patterns():
    kafka = TimedKafkaTwin()
    src = make(kafka, InMemoryMqtt(), topic_mapping=LATE, topic_pattern_refresh_interval="3s")
    src._make_consumer()
    assert kafka.consumers[0].options["metadata_max_age_ms"] == 3000


IN = TopicPartition("in", 0)
MAPPED = [{"kafka_topic": "in", "mqtt_topic": "out", "qos": 1, "payload_template": "${.value}"}]


async def test_records_deleted_before_they_were_read_start_the_partition_at_the_first_kept(
        running, caplog):
    """A committed offset before the first record kept: Kafka would answer "out of range" and
    the consumer jump to ``latest``, past the records still there. It starts at the first kept."""
    kafka, mqtt = TimedKafkaTwin(topics={"in": 1}), InMemoryMqtt()
    for i in range(10):
        kafka.produce("in", b"m%d" % i)
    kafka.committed[(GROUP, IN)] = 2  # read up to 2 before it stopped
    kafka.log_start[IN] = 5  # then retention deleted 0-4
    with caplog.at_level(logging.WARNING, logger="mqferry_kafka_consumer"):
        await running(kafka, mqtt, topic_mapping=MAPPED)
        await wait_until(lambda: kafka.committed_offset(GROUP, "in") == 10)
    assert payloads(mqtt) == [b"m%d" % i for i in range(5, 10)]
    assert "records 2 to 4 were deleted from Kafka (retention) before the group read them; " \
           "starting at offset 5" in caplog.text


async def test_a_committed_offset_past_the_end_reads_the_recreated_topic_from_its_start(
        running, caplog):
    """The topic was deleted and created again: the group's offset is past its end, and every
    record it holds was produced after that commit."""
    kafka, mqtt = TimedKafkaTwin(topics={"in": 1}), InMemoryMqtt()
    for i in range(3):
        kafka.produce("in", b"n%d" % i)
    kafka.committed[(GROUP, IN)] = 50  # committed on the topic before it was re-created
    with caplog.at_level(logging.WARNING, logger="mqferry_kafka_consumer"):
        await running(kafka, mqtt, topic_mapping=MAPPED, offset_reset_policy="latest")
        await wait_until(lambda: kafka.committed_offset(GROUP, "in") == 3)
    assert payloads(mqtt) == [b"n0", b"n1", b"n2"]
    assert "the committed offset 50 is past the partition's end (3)" in caplog.text


async def test_a_failed_lookup_of_the_bounds_keeps_the_committed_offsets(
        running, caplog, monkeypatch):
    kafka, mqtt = TimedKafkaTwin(topics={"in": 1}), InMemoryMqtt()
    for i in range(4):
        kafka.produce("in", b"k%d" % i)
    kafka.committed[(GROUP, IN)] = 1

    async def refuse(self, tps):
        raise KafkaTimeoutError()

    monkeypatch.setattr(TimedTwinConsumer, "beginning_offsets", refuse)
    with caplog.at_level(logging.WARNING, logger="mqferry_kafka_consumer"):
        await running(kafka, mqtt, topic_mapping=MAPPED)
        await wait_until(lambda: kafka.committed_offset(GROUP, "in") == 4)
    assert payloads(mqtt) == [b"k1", b"k2", b"k3"]
    assert "cannot look up the first and last offsets of in/0 (KafkaTimeoutError)" in caplog.text
