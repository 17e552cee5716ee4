"""Replacing a Kafka sink with a disk buffer hands the buffer over: every record is sent once.

A disk buffer has one owner: the new action opens it only once the replaced one closed it,
and what came meanwhile waits in the new one (its MQTT acks too). A real ``kafka_producer``
action on the Kafka twin (as in ``test_reconfig_unsent``), fed by a rule from the MQTT twin.
"""

from __future__ import annotations

import asyncio
import copy
import logging

import pytest
from aiokafka.errors import KafkaConnectionError

from mqferry import DiskQueue
from mqferry._plugins import load_plugins
from mqferry._runtime.reconfig import Controller
from mqferry.testing import build_app, wait_until
from mqferry_kafka.testing import KafkaTwin
from tests.runtime.test_reconfig_unsent import CONFIG as MEMORY_CONFIG
from tests.runtime.test_reconfig_unsent import TwinKafkaPlugin, identity

CONFIG = copy.deepcopy(MEMORY_CONFIG)
CONFIG["actions"]["twin_kafka"]["sink"]["parameters"]["buffer"] = {"mode": "disk"}
SINK = "twin_kafka:sink"


@pytest.fixture
def kafka():
    return KafkaTwin(topics={"t": 1, "t2": 1})


@pytest.fixture
def plugins(kafka):
    return load_plugins(extra=[("twin_kafka", TwinKafkaPlugin(kafka))])


def retopic(data):
    data["actions"]["twin_kafka"]["sink"]["parameters"]["topic"] = "t2"


def deliver(h, start, stop):
    return [h.mqtt.deliver("s/1", b"%d" % i) for i in range(start, stop)]


def values(kafka):
    return sorted(int(s.value) for s in kafka.sent)


def assert_buffer_clean(directory, caplog):
    """Nothing was reported lost, and the buffer is left empty and healthy."""
    assert not [r for r in caplog.records if "lost" in r.getMessage()]
    q = DiskQueue(directory, segment_bytes=4096)
    try:
        assert (q.lost_on_open, q.problems, q.recovered()) == (0, [], [])
    finally:
        q.close()


@pytest.mark.parametrize("mode", ["disk", "hybrid"])
async def test_a_replaced_disk_sink_hands_its_records_over_and_each_is_sent_once(
        kafka, plugins, tmp_path, caplog, mode):
    config = copy.deepcopy(CONFIG)
    config["actions"]["twin_kafka"]["sink"]["parameters"]["buffer"]["mode"] = mode
    if mode == "hybrid":  # spills to disk past one segment
        config["actions"]["twin_kafka"]["sink"]["parameters"]["buffer"]["segment_bytes"] = "4KB"
    h = build_app(config, plugins=plugins, data_dir=tmp_path)
    await h.start()
    app = h.app
    ctrl = Controller(app, plugins, data=copy.deepcopy(config))
    old = app.actions[SINK]
    try:
        deliver(h, 0, 300)
        await wait_until(lambda: old.metrics.get("success") == 300)
        kafka.hold = True  # batches wait in flight, the rest queues (on disk)
        deliver(h, 300, 1300)
        await wait_until(lambda: kafka.held() > 0 and old.buffer.queued + old.sender.inflight
                         == 1000 and not old.buffer.to_persist)
        with caplog.at_level(logging.INFO):
            change = asyncio.ensure_future(ctrl.change(retopic))
            await wait_until(lambda: app.actions[SINK] is not old)
            new = app.actions[SINK]
            # Routed to, not started: it waits for the old one to close the buffer, and holds
            # what comes meanwhile, unsecured.
            later = deliver(h, 1300, 1500)
            await asyncio.sleep(0.1)
            assert not set(later) & set(h.mqtt.acked)
            kafka.hold = False  # the old one flushes what it holds, while it stops
            kafka.answer()
            plan = await change
        assert plan.failed == {} and not plan.mqtt_reconnected
        await wait_until(lambda: len(kafka.sent) == 1500)
        await asyncio.sleep(0.2)
        assert values(kafka) == list(range(1500))  # each once
        assert kafka.values("t2") == [b"%d" % i for i in range(1300, 1500)]
        await wait_until(lambda: set(later) <= set(h.mqtt.acked))
        assert identity(new) == (1500, 1500) and new.metrics.get("success") == 1500
        assert new.metrics.get("dropped") == 0
    finally:
        kafka.hold = False
        kafka.answer()
        await h.stop()
    assert_buffer_clean(tmp_path / "kafka_producer" / "sink", caplog)


async def test_what_a_replaced_disk_sink_kept_while_kafka_is_down_is_sent_by_its_successor(
        kafka, plugins, tmp_path, caplog):
    h = build_app(CONFIG, plugins=plugins, data_dir=tmp_path)
    await h.start()
    app = h.app
    ctrl = Controller(app, plugins, data=copy.deepcopy(CONFIG))
    old = app.actions[SINK]
    try:
        deliver(h, 0, 300)
        await wait_until(lambda: old.metrics.get("success") == 300)
        kafka.hold = True
        deliver(h, 300, 1300)
        await wait_until(lambda: kafka.held() > 0 and not old.buffer.to_persist)
        await wait_until(lambda: len(h.mqtt.acked) == 1300)  # on disk: secured
        with caplog.at_level(logging.INFO):
            plan = await ctrl.change(retopic)  # the old one gives up flushing
        new = app.actions[SINK]
        # handed over, not dropped: no MQTT message to redeliver, nothing counted as dropped
        assert plan.failed == {} and not plan.mqtt_reconnected
        assert new.metrics.get("dropped.replaced") == 0
        assert "the 1000 records it kept in its disk buffer are sent by its replacement" in (
            caplog.text)
        assert identity(new) == (1300, 1300) and new.buffer.queued == 1000
        # the old producer's requests never reached Kafka; the new one sends what it took over
        kafka.answer(error=KafkaConnectionError("the broker is gone (twin)"))
        kafka.hold = False
        deliver(h, 1300, 1400)
        await wait_until(lambda: len(kafka.sent) == 1400)
        await asyncio.sleep(0.2)
        assert values(kafka) == list(range(1400))
        assert identity(new) == (1400, 1400) and new.metrics.get("success") == 1400
    finally:
        kafka.hold = False
        kafka.answer()
        await h.stop()
    assert_buffer_clean(tmp_path / "kafka_producer" / "sink", caplog)
