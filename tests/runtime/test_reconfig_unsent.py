"""What a replaced Kafka sink had not sent is counted, and its MQTT messages come again.

A real ``kafka_producer`` action on the Kafka twin (registered under a type of its own, so that
the twin is injected through its factory), fed by a rule from the MQTT twin, replaced while
Kafka holds its batches: its counters still add up after the change
(``matched = success + failed + dropped + queuing + inflight``), and the messages of the records
it left are not acknowledged.
"""

from __future__ import annotations

import copy
import logging
from typing import Any

import pytest

from mqferry import ActionType, ConnectorType, hookimpl
from mqferry._plugins import load_plugins
from mqferry._runtime.reconfig import Controller
from mqferry.testing import build_app, wait_until
from mqferry_kafka import KafkaConnector, KafkaConnectorConfig
from mqferry_kafka.testing import KafkaTwin
from mqferry_kafka_producer.action import KafkaProducerAction
from mqferry_kafka_producer.config import KafkaProducerActionConfig

CONFIG = {
    "connectors": {"twin_kafka": {"k": {"bootstrap_hosts": "h:9092"}}},
    "actions": {"twin_kafka": {"sink": {"connector": "k", "parameters": {
        "topic": "t", "message": {"key": "", "value": "${payload}"}}}}},
    "rules": {"r": {"sql": 'SELECT payload FROM "s/#"', "actions": ["twin_kafka:sink"]}},
}


class TwinKafkaPlugin:
    """``twin_kafka``: the Kafka sink's connector and action, producing to ``kafka``."""

    def __init__(self, kafka: KafkaTwin) -> None:
        self.kafka = kafka

    @hookimpl
    def mqferry_register_connector_types(self, register: Any) -> None:
        register.add(ConnectorType("twin_kafka", KafkaConnectorConfig, lambda name, cfg, ctx:
                                   KafkaConnector(kind="kafka_producer", name=name, config=cfg)))

    @hookimpl
    def mqferry_register_action_types(self, register: Any) -> None:
        register.add(ActionType(
            "twin_kafka", KafkaProducerActionConfig,
            lambda name, cfg, conn, ctx: KafkaProducerAction(
                name=name, config=cfg, connector=conn, data_dir=ctx.data_dir,
                producer_factory=self.kafka, close_timeout=0.5, flush_timeout=0.5),
            connector_type="twin_kafka"))


@pytest.fixture
def kafka():
    return KafkaTwin(topics={"t": 1, "t2": 1})


@pytest.fixture
def plugins(kafka):
    return load_plugins(extra=[("twin_kafka", TwinKafkaPlugin(kafka))])


def identity(action) -> tuple[int, int]:
    """``matched`` and what it must equal: every record ends under one of these."""
    snap = action.metrics.snapshot()
    ended = sum(int(snap.get(k, 0)) for k in ("success", "failed", "dropped", "queuing",
                                              "inflight"))
    return int(snap["matched"]), ended


async def test_what_a_replaced_sink_left_unsent_is_counted_and_redelivered(kafka, plugins,
                                                                          tmp_path, caplog):
    h = build_app(CONFIG, plugins=plugins, data_dir=tmp_path)
    await h.start()
    app, acked = h.app, h.mqtt.acked
    ctrl = Controller(app, plugins, data=copy.deepcopy(CONFIG))
    old = app.actions["twin_kafka:sink"]
    try:
        for i in range(300):
            h.mqtt.deliver("s/1", b"%d" % i)
        await wait_until(lambda: old.metrics.get("success") == 300)
        kafka.hold = True  # Kafka stops answering: batches wait in flight, the rest queues
        for i in range(300, 1300):
            h.mqtt.deliver("s/1", b"%d" % i)
        await wait_until(lambda: kafka.held() > 0)
        left = old.buffer.queued + old.sender.inflight
        assert left == 1000

        def retopic(data):
            data["actions"]["twin_kafka"]["sink"]["parameters"]["topic"] = "t2"

        with caplog.at_level(logging.WARNING, logger="mqferry._runtime.reconfig.apply"):
            plan = await ctrl.change(retopic)
        new = app.actions["twin_kafka:sink"]
        assert new is not old
        matched, ended = identity(new)
        assert (matched, ended) == (1300, 1300)
        assert (new.metrics.get("success"), new.metrics.get("dropped.replaced")) == (300, 1000)
        assert ("action twin_kafka:sink: 1000 records it had not sent are counted as "
                "dropped.replaced") in caplog.text
        # not acknowledged: the session is renewed, so the broker delivers them again, to the
        # new action, which counts them as it counts any message
        assert plan.mqtt_reconnected
        assert len(acked) == 300
        kafka.hold = False
        for i in range(300, 1300):  # the broker's redelivery
            h.mqtt.deliver("s/1", b"%d" % i)
        await wait_until(lambda: new.metrics.get("success") == 1300)
        assert identity(new) == (2300, 2300)
    finally:
        kafka.hold = False
        kafka.answer()
        await h.stop()
