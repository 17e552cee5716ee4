"""A replaced sink that gave up its Kafka source's events: the source consumes them again.

A ``kafka_consumer`` source (on the Kafka twin's consumer) feeds a rule whose ``kafka_producer``
action (on the twin's producer, as in ``test_reconfig_unsent``) cannot reach Kafka. Replacing
that action leaves its records' events unsettled for good; the source goes back to the first
of them, commits nothing past them, and the new action delivers every record.
"""

from __future__ import annotations

import copy
import logging
from typing import Any

import pytest
from aiokafka.errors import KafkaConnectionError

from mqferry import ConnectorType, SourceType, hookimpl
from mqferry._plugins import load_plugins
from mqferry._runtime.reconfig import Controller
from mqferry.testing import build_app, wait_until
from mqferry_kafka import KafkaConnector, KafkaConnectorConfig
from mqferry_kafka_consumer.config import KafkaConsumerSourceConfig
from mqferry_kafka_consumer.source import KafkaConsumerSource
from tests.plugins.kafka_consumer.twin import TimedKafkaTwin
from tests.runtime.test_reconfig_unsent import TwinKafkaPlugin

GROUP = "g"
CONFIG = {
    "connectors": {"twin_kafka": {"k": {"bootstrap_hosts": "h:9092"}},
                   "twin_kafka_in": {"c": {"bootstrap_hosts": "h:9092"}},
                   # the built-in, never started: rules name the twin source's events by it
                   "kafka_consumer": {"c": {"bootstrap_hosts": "127.0.0.1:1", "enable": False}}},
    "sources": {"twin_kafka_in": {"s": {"connector": "c", "parameters": {
        "topic": "in", "group_id": GROUP, "offset_reset_policy": "earliest",
        "offset_commit_interval_seconds": 0.05}}},
                "kafka_consumer": {"s": {"connector": "c", "enable": False,
                                         "parameters": {"topic": "in"}}}},
    "actions": {"twin_kafka": {"sink": {"connector": "k", "parameters": {
        "topic": "t", "message": {"key": "", "value": "${value}"}}}}},
    "rules": {"r": {"sql": 'SELECT value FROM "$bridges/kafka_consumer:s"',
                    "actions": ["twin_kafka:sink"]}},
}


class TwinSourcePlugin:
    """``twin_kafka_in``: the Kafka source, consuming from ``kafka`` (events named
    ``$bridges/kafka_consumer:<name>``, as the built-in's)."""

    def __init__(self, kafka: TimedKafkaTwin) -> None:
        self.kafka = kafka

    @hookimpl
    def mqferry_register_connector_types(self, register: Any) -> None:
        register.add(ConnectorType("twin_kafka_in", KafkaConnectorConfig, lambda name, cfg, ctx:
                                   KafkaConnector(kind="kafka_consumer", name=name, config=cfg)))

    @hookimpl
    def mqferry_register_source_types(self, register: Any) -> None:
        register.add(SourceType(
            "twin_kafka_in", KafkaConsumerSourceConfig,
            lambda name, cfg, conn, ctx: KafkaConsumerSource(
                name=name, config=cfg, connector=conn, context=ctx,
                consumer_factory=self.kafka.consumer),
            connector_type="twin_kafka_in"))


@pytest.fixture
def kafka():
    return TimedKafkaTwin(topics={"in": 1, "t": 1, "t2": 1})


@pytest.fixture
def plugins(kafka):
    return load_plugins(extra=[("twin_kafka", TwinKafkaPlugin(kafka)),
                               ("twin_kafka_in", TwinSourcePlugin(kafka))])


def retopic(data):
    data["actions"]["twin_kafka"]["sink"]["parameters"]["topic"] = "t2"


async def test_events_a_replaced_sink_never_settled_are_consumed_again_and_delivered(
        kafka, plugins, tmp_path, caplog):
    for i in range(100):
        kafka.produce("in", b"%d" % i)
    h = build_app(CONFIG, plugins=plugins, data_dir=tmp_path)
    await h.start()
    app = h.app
    ctrl = Controller(app, plugins, data=copy.deepcopy(CONFIG))
    src = app.sources["twin_kafka_in:s"]
    try:
        await wait_until(lambda: kafka.committed_offset(GROUP, "in") == 100)
        assert kafka.values("t") == [b"%d" % i for i in range(100)]
        kafka.hold = True  # Kafka stops answering the sink
        for i in range(100, 300):
            kafka.produce("in", b"%d" % i)
        await wait_until(lambda: src.tracker.inflight == 200 and kafka.held() > 0)
        with caplog.at_level(logging.WARNING):
            plan = await ctrl.change(retopic)  # the old sink gives up flushing
        assert plan.mqtt_reconnected
        # its requests never reached Kafka
        kafka.answer(error=KafkaConnectionError("the broker is gone (twin)"))
        kafka.hold = False
        await wait_until(lambda: kafka.committed_offset(GROUP, "in") == 300)
        assert sorted(int(v) for v in kafka.values("t2")) == list(range(100, 300))
        assert kafka.values("t") == [b"%d" % i for i in range(100)]
        assert ("source kafka_consumer:s: replaced actions left 200 outputs unsettled with 200 "
                "records in flight; consuming again from in/0@100") in caplog.text
        assert src.metrics.get("redelivered") == 200
        assert src.metrics.get("failed") == 0
    finally:
        kafka.hold = False
        kafka.answer()
        await h.stop()
