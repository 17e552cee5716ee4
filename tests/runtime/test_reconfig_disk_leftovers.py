"""What a Kafka sink kept in its disk buffer is sent by the next action of its name, whatever its
buffer mode; until one runs, a warning names the directory and the count.

A real ``kafka_producer`` action on the Kafka twin, fed by a rule from the MQTT twin (as in
``test_reconfig_disk_handover``).
"""

from __future__ import annotations

import asyncio
import copy
import logging
import os
import threading

import pytest
from aiokafka.errors import KafkaConnectionError

from mqferry import DiskQueue
from mqferry._plugins import load_plugins
from mqferry._runtime.reconfig import Controller
from mqferry._runtime.reconfig import apply as reconfig_apply
from mqferry.testing import build_app, wait_until
from mqferry_kafka.testing import KafkaTwin
from tests.runtime.test_reconfig_disk_handover import CONFIG, SINK, deliver, retopic, values
from tests.runtime.test_reconfig_unsent import TwinKafkaPlugin


@pytest.fixture
def kafka():
    return KafkaTwin(topics={"t": 1, "t2": 1})


@pytest.fixture
def plugins(kafka):
    return load_plugins(extra=[("twin_kafka", TwinKafkaPlugin(kafka))])


def to_memory(data):
    data["actions"]["twin_kafka"]["sink"]["parameters"]["buffer"] = {"mode": "memory"}


def remove_sink(data):
    del data["actions"]["twin_kafka"]["sink"]
    data["rules"]["r"]["actions"] = []


async def _kept_on_disk(kafka, h, count):
    """``count`` messages the sink secured on disk while Kafka holds its batches."""
    old = h.app.actions[SINK]
    kafka.hold = True
    deliver(h, 0, count)
    await wait_until(lambda: len(h.mqtt.acked) == count and not old.buffer.to_persist)


async def test_a_sink_changed_to_a_memory_buffer_sends_what_it_kept_on_disk(
        kafka, plugins, tmp_path, caplog):
    h = build_app(CONFIG, plugins=plugins, data_dir=tmp_path)
    await h.start()
    ctrl = Controller(h.app, plugins, data=copy.deepcopy(CONFIG))
    try:
        await _kept_on_disk(kafka, h, 500)
        with caplog.at_level(logging.INFO):
            plan = await ctrl.change(to_memory)
        assert plan.failed == {} and not plan.mqtt_reconnected
        new = h.app.actions[SINK]
        assert "the 500 records it kept in its disk buffer are sent by its replacement" in (
            caplog.text)
        # the old producer's requests never reached Kafka; the new one sends what it kept
        kafka.answer(error=KafkaConnectionError("the broker is gone (twin)"))
        kafka.hold = False
        deliver(h, 500, 600)
        await wait_until(lambda: len(kafka.sent) == 600)
        await asyncio.sleep(0.2)
        assert values(kafka) == list(range(600))  # each once
        await wait_until(lambda: new.buffer.disk is None)  # drained: memory again
        assert DiskQueue.count(new.disk_directory) == 0
        assert new.metrics.get("dropped") == 0
        # it opened the buffer once the old action had closed it: no refusal on the way
        assert new.metrics.get("disk_open_errors") == 0
        assert "in use by this process" not in caplog.text
    finally:
        kafka.hold = False
        kafka.answer()
        await h.stop()


async def test_a_removed_sink_leaves_its_disk_records_and_says_where(kafka, plugins, tmp_path,
                                                                     caplog):
    h = build_app(CONFIG, plugins=plugins, data_dir=tmp_path)
    await h.start()
    ctrl = Controller(h.app, plugins, data=copy.deepcopy(CONFIG))
    directory = tmp_path / "kafka_producer" / "sink"
    try:
        await _kept_on_disk(kafka, h, 300)
        with caplog.at_level(logging.WARNING):
            await ctrl.change(remove_sink)
        assert (f"action {SINK} was removed with 300 records in its disk buffer {directory}: "
                "they stay there, and an action of that name sends them when it runs again"
                ) in caplog.text
        assert "dropped.replaced" not in caplog.text
        assert DiskQueue.count(directory) == 300  # nothing deleted
    finally:
        kafka.hold = False
        kafka.answer()
        await h.stop()
    caplog.clear()
    # a start-up without the action says so too; with it again, they are sent
    unconfigured = copy.deepcopy(CONFIG)
    remove_sink(unconfigured)
    again = build_app(unconfigured, plugins=plugins, data_dir=tmp_path)
    with caplog.at_level(logging.WARNING):
        await again.start()
    await again.stop()
    assert (f"disk buffer {directory} holds 300 records of kafka_producer:sink, which is not "
            "configured") in caplog.text
    kafka.sent.clear()
    back = build_app(CONFIG, plugins=plugins, data_dir=tmp_path)
    await back.start()
    try:
        await wait_until(lambda: len(kafka.sent) == 300)
    finally:
        await back.stop()
    assert values(kafka) == list(range(300))


async def test_a_replacement_waits_for_the_buffer_a_hung_write_holds_then_sends_all(
        kafka, plugins, tmp_path, monkeypatch):
    # a bound below the action's own flush wait: with its write hung, its stop overruns it
    monkeypatch.setattr(reconfig_apply, "STOP_MARGIN", -0.5)
    h = build_app(CONFIG, plugins=plugins, data_dir=tmp_path)
    await h.start()
    ctrl = Controller(h.app, plugins, data=copy.deepcopy(CONFIG))
    old = h.app.actions[SINK]
    gate, writing = threading.Event(), threading.Event()

    def hung_write(fd, data):
        writing.set()
        gate.wait(30)  # a disk that does not answer
        return os.write(fd, data)

    buf = old.buffer
    buf.disk.close()
    buf.disk = DiskQueue(buf.directory, segment_bytes=4096, write=hung_write)
    try:
        kafka.hold = True  # the old one cannot flush: its stop runs to its bound
        deliver(h, 0, 100)
        await wait_until(writing.is_set)
        plan = await ctrl.change(retopic)
        # the old one's stop overran, and it still holds the directory; the new one started
        assert plan.failed == {SINK: "stop did not finish within 0.5s"}
        new = h.app.actions[SINK]
        assert new is not old
        health = await new.health()
        assert health.status.value == "disconnected" and "in use by this process" in (
            health.reason)
        later = deliver(h, 100, 150)
        kafka.answer()
        kafka.hold = False
        gate.set()  # the write ends, the old queue closes, the new one opens the directory
        await wait_until(lambda: set(range(150)) <= set(values(kafka)), timeout=10)
        await wait_until(lambda: set(later) <= set(h.mqtt.acked))
        assert (await new.health()).status.value == "connected"
    finally:
        gate.set()
        kafka.hold = False
        kafka.answer()
        await h.stop()


def test_a_directory_that_cannot_be_counted_is_reported_and_stops_nothing(tmp_path, caplog,
                                                                          monkeypatch):
    from mqferry._runtime import leftovers

    (tmp_path / "kafka_producer" / "gone").mkdir(parents=True)
    (tmp_path / "kafka_producer" / "gone" / "00000000000000000000.seg").write_bytes(b"x")

    def broken(directory):
        raise ValueError("a segment no one can read")
    monkeypatch.setattr(DiskQueue, "count", staticmethod(broken))
    with caplog.at_level(logging.WARNING):
        leftovers.warn_unowned(tmp_path, {})
    assert "cannot count the records it holds: ValueError('a segment no one can read')" in (
        caplog.text)
