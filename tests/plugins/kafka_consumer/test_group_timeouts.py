"""The source's consumer group timeouts: configurable, checked, handed to the consumer."""

import pytest
from pydantic import ValidationError

from mqferry.testing import InMemoryMqtt, runtime_context, wait_until
from mqferry_kafka import KafkaConnector, KafkaConnectorConfig
from mqferry_kafka.testing import KafkaTwin
from mqferry_kafka_consumer.config import KafkaConsumerSourceConfig
from mqferry_kafka_consumer.source import KafkaConsumerSource


def source(kafka, **params):
    cfg = KafkaConsumerSourceConfig(connector="k", parameters={"topic": "in", **params})
    conn = KafkaConnector(kind="kafka_consumer", name="k",
                          config=KafkaConnectorConfig(bootstrap_hosts="127.0.0.1:1"))
    return KafkaConsumerSource(name="s", config=cfg, connector=conn,
                               context=runtime_context(InMemoryMqtt()),
                               consumer_factory=kafka.consumer)


async def test_the_session_timeout_and_heartbeat_reach_the_consumer():
    kafka = KafkaTwin()
    src = source(kafka, session_timeout="6s", heartbeat_interval="1s")
    await src.start()
    try:
        await wait_until(lambda: kafka.consumers)
        [consumer] = kafka.consumers
        assert consumer.options["session_timeout_ms"] == 6000
        assert consumer.options["heartbeat_interval_ms"] == 1000
    finally:
        await src.stop()


def test_the_defaults_are_kafkas():
    params = KafkaConsumerSourceConfig(connector="k", parameters={"topic": "in"}).parameters
    assert (params.session_timeout, params.heartbeat_interval) == (10.0, 3.0)


def test_a_heartbeat_not_below_the_session_timeout_is_refused_naming_both():
    with pytest.raises(ValidationError, match=r"heartbeat_interval \(6s\) must be shorter "
                                              r"than session_timeout \(6s\)"):
        KafkaConsumerSourceConfig(connector="k", parameters={
            "topic": "in", "session_timeout": "6s", "heartbeat_interval": "6s"})
