"""The consumer source's test setup: a source on an MQTT twin, records, a settle step.

A test module may set ``RECORD_VALUE`` (the default value of :func:`record`'s records) and
``PAYLOAD_TEMPLATE`` (the default mapping's payload template).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from aiokafka.structs import ConsumerRecord

from mqferry.testing import runtime_context
from mqferry_kafka import KafkaConnector, KafkaConnectorConfig
from mqferry_kafka_consumer.config import KafkaConsumerSourceConfig
from mqferry_kafka_consumer.source import KafkaConsumerSource


def build_source(mqtt: Any, *, payload_template: str = "${.value}",
                 **params: Any) -> KafkaConsumerSource:
    """A ``kafka_consumer:s`` source publishing to ``mqtt``, never started (no broker)."""
    params.setdefault("topic_mapping", [{"kafka_topic": "in", "mqtt_topic": "out/${.key}",
                                         "qos": 1, "payload_template": payload_template}])
    cfg = KafkaConsumerSourceConfig(connector="k", parameters=params)
    conn = KafkaConnector(kind="kafka_consumer", name="k",
                          config=KafkaConnectorConfig(bootstrap_hosts="127.0.0.1:1"))
    return KafkaConsumerSource(name="s", config=cfg, connector=conn,
                               context=runtime_context(mqtt))


def build_record(offset: int, value: bytes = b"v", key: bytes = b"k",
                 topic: str = "in") -> ConsumerRecord[bytes, bytes]:
    """A record of partition 0, as aiokafka hands it over."""
    return ConsumerRecord(topic=topic, partition=0, offset=offset, timestamp=1,
                          timestamp_type=0, key=key, value=value, checksum=None,
                          serialized_key_size=len(key), serialized_value_size=len(value),
                          headers=[])


@pytest.fixture
def source(request: pytest.FixtureRequest) -> Callable[..., KafkaConsumerSource]:
    """``source(mqtt, **parameters)``: :func:`build_source` with the module's template."""
    template = getattr(request.module, "PAYLOAD_TEMPLATE", "${.value}")

    def make(mqtt: Any, **params: Any) -> KafkaConsumerSource:
        return build_source(mqtt, payload_template=template, **params)
    return make


@pytest.fixture
def record(request: pytest.FixtureRequest) -> Callable[..., ConsumerRecord[bytes, bytes]]:
    """``record(offset, value=..., key=b"k", topic="in")``: the module's default value."""
    default = getattr(request.module, "RECORD_VALUE", b"v")

    def make(offset: int, value: bytes = default, key: bytes = b"k",
             topic: str = "in") -> ConsumerRecord[bytes, bytes]:
        return build_record(offset, value, key, topic)
    return make


async def _settle() -> None:
    for _ in range(5):
        await asyncio.sleep(0)


@pytest.fixture
def settle() -> Callable[[], Awaitable[None]]:
    """``await settle()``: let the publishes and dispatches of a batch run."""
    return _settle
