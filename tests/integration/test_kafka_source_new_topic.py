"""A Kafka topic created after the source started: found within seconds, nothing skipped.

Real Kafka and Mosquitto, an ``mqferry run`` process; kcat produces, mosquitto_sub witnesses.
The twin-side claims are in tests/plugins/kafka_consumer/test_new_topics.py.
"""

from __future__ import annotations

import time
import uuid

import pytest

from tests.integration.conftest import _create_topic, _delete_topics, _run_in_thread
from tests.integration.test_kafka_source import config, mapping, mqferry  # noqa: F401

pytestmark = pytest.mark.integration


def test_records_produced_right_after_a_mapped_topic_is_created_reach_mqtt(
        mqferry, kafka_bootstrap, mqtt_broker, kcat_produce, mosquitto_sub):  # noqa: F811
    topic = f"mqferry-test-late-{uuid.uuid4().hex[:8]}"
    prefix = f"late-{uuid.uuid4().hex[:6]}"
    params = {"topic_mapping": [mapping(topic, f"{prefix}/${{.value}}",
                                        payload_template="${.value}")],
              "topic_pattern_refresh_interval": "3s"}  # offset_reset_policy: latest (default)
    app = mqferry(config(kafka_bootstrap, mqtt_broker, params=params))
    app.wait_ready()
    app.wait_for_log(f"Kafka topic {topic!r} does not exist (yet)", 30)
    try:
        with mosquitto_sub(f"{prefix}/#", 5) as sub:
            _run_in_thread(lambda: _create_topic(kafka_bootstrap, topic, 1, 30))
            created = time.monotonic()
            kcat_produce(topic, [f"m{i}" for i in range(5)])  # before the source is assigned it
            got = sub.wait(15)
            took = time.monotonic() - created
        assert sorted(m.payload for m in got) == [b"m%d" % i for i in range(5)], app.log
        assert took < 15
        app.wait_for_log(f"Kafka topic {topic!r} now exists", 10)
        assert app.terminate() == 0
    finally:
        _run_in_thread(lambda: _delete_topics(kafka_bootstrap, [topic]))


def test_only_a_topic_kafka_does_not_have_is_said_missing_at_the_start(
        mqferry, kafka_bootstrap, mqtt_broker, new_topic):  # noqa: F811
    """The consumer's metadata is empty until its first answer after ``start()``: an existing
    topic must not be said missing before that answer came."""
    existing, missing = new_topic(), f"mqferry-test-missing-{uuid.uuid4().hex[:8]}"
    params = {"topic_mapping": [mapping(existing, "x/e"), mapping(missing, "x/m")],
              "topic_pattern_refresh_interval": "30s"}
    app = mqferry(config(kafka_bootstrap, mqtt_broker, params=params))
    app.wait_ready(sources=1)
    app.wait_for_log(f"Kafka topic {missing!r} does not exist (yet)", 30)
    assert f"Kafka topic {existing!r}" not in app.log, app.log  # neither missing nor "now exists"
    assert app.terminate() == 0


async def _delete_records_before(bootstrap: str, topic: str, offset: int) -> None:
    from aiokafka import TopicPartition
    from aiokafka.admin import AIOKafkaAdminClient, RecordsToDelete

    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        await admin.delete_records({TopicPartition(topic, 0): RecordsToDelete(offset)})
    finally:
        await admin.close()


def test_records_kept_after_a_deletion_past_the_committed_offset_still_reach_mqtt(
        mqferry, kafka_bootstrap, mqtt_broker, new_topic, kcat_produce,  # noqa: F811
        mosquitto_sub):
    """Kafka deleted records the group had not read (retention, DeleteRecords): the ones kept
    are delivered, not skipped by a jump to ``latest``."""
    topic = new_topic()
    prefix = f"kept-{uuid.uuid4().hex[:6]}"
    params = {"topic_mapping": [mapping(topic, f"{prefix}/${{.value}}",
                                        payload_template="${.value}")]}
    cfg = config(kafka_bootstrap, mqtt_broker, params=params)  # offset_reset_policy: latest
    app = mqferry(cfg)
    app.wait_ready()
    app.wait_for_log("partitions assigned", 30)  # the group's start (offset 0) is committed
    assert app.terminate() == 0
    kcat_produce(topic, [f"m{i}" for i in range(10)])  # produced while mqferry is down
    _run_in_thread(lambda: _delete_records_before(kafka_bootstrap, topic, 5))
    with mosquitto_sub(f"{prefix}/#", 5) as sub:
        app = mqferry(cfg)
        app.wait_ready()
        got = sub.wait(30)
    assert sorted(m.payload for m in got) == [b"m%d" % i for i in range(5, 10)], app.log
    app.wait_for_log("records 0 to 4 were deleted from Kafka (retention)", 10)
    assert app.terminate() == 0
