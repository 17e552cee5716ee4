"""Records that cannot be processed fail alone, and a dead consume loop is reported and restarted.

In-memory twins for MQTT and the rules; ``tests/integration/test_poison_records.py`` proves the
same against the real brokers.
"""

from __future__ import annotations

import asyncio
import json
import logging

from aiokafka import TopicPartition

from mqferry import Status
from mqferry.testing import InMemoryMqtt
from mqferry_kafka_consumer.failures import FailureLog

TP = TopicPartition("in", 0)
RECORD_VALUE = b'{"data": 1}'
PAYLOAD_TEMPLATE = "${value.data}"
#: ``${value.data}`` of this value makes the JSON encoder give up (TypeError)
DEEP = json.dumps({"data": json.loads("[" * 300 + "]" * 300)}).encode()


async def test_a_payload_that_cannot_render_fails_alone_and_the_partition_moves_on(
        record, source, settle):
    mqtt = InMemoryMqtt()
    src = source(mqtt)
    src.handler.handle_batches({TP: [record(0), record(1, DEEP), record(2)]})
    await settle()
    assert [p.payload for p in mqtt.published] == [b"1", b"1"]
    assert src.tracker.committable() == {TP: 3}
    snap = src.metrics.snapshot()
    assert (snap["received"], snap["success"], snap["failed"], snap["failed.render"]) == (
        3, 2, 1, 1)


class RefusingMqtt(InMemoryMqtt):
    """Raises something unexpected for one topic (a bug deep in a client)."""

    def publish_nowait(self, topic, payload, **kw):
        if topic == "out/bad":
            raise RuntimeError("client bug")
        return super().publish_nowait(topic, payload, **kw)


async def test_a_publish_that_raises_anything_fails_alone(record, source, settle):
    mqtt = RefusingMqtt()
    src = source(mqtt)
    src.handler.handle_batches({TP: [record(0, key=b"bad"), record(1, key=b"ok")]})
    await settle()
    assert [p.topic for p in mqtt.published] == ["out/ok"]
    assert src.tracker.committable() == {TP: 2}
    assert (src.metrics.get("failed"), src.metrics.get("failed.publish")) == (1, 1)


async def test_rules_that_raise_fail_the_record_alone(record, source, settle):
    def dispatch_nowait(event):
        if event["key"] == "bad":
            raise RecursionError("rule bug")
        future = asyncio.get_running_loop().create_future()
        future.set_result(None)
        return future

    mqtt = InMemoryMqtt()
    src = source(mqtt, topic="in", topic_mapping=[])
    src.context.dispatch_nowait = dispatch_nowait
    src.handler.handle_batches({TP: [record(0, key=b"bad"), record(1)]})
    await settle()
    assert src.tracker.committable() == {TP: 2}
    assert (src.metrics.get("failed"), src.metrics.get("failed.rules"),
            src.metrics.get("success")) == (1, 1, 1)


async def test_failures_are_logged_at_most_once_per_interval_per_reason(
        record, source, settle, caplog):
    mqtt = InMemoryMqtt()
    src = source(mqtt)
    with caplog.at_level(logging.WARNING, logger="mqferry_kafka_consumer.handler"):
        src.handler.handle_batches({TP: [record(i, DEEP) for i in range(50)]})
        await settle()
    assert src.metrics.get("failed.render") == 50
    lines = [r.getMessage() for r in caplog.records]
    assert len(lines) == 1, lines
    assert "in/0@0" in lines[0] and "payload_template: TemplateError(" in lines[0]
    assert "254 levels" in lines[0]


def test_the_failure_log_reports_how_many_lines_it_left_out(caplog):
    clock = [0.0]
    flog = FailureLog(logging.getLogger("t.failures"), interval=10, clock=lambda: clock[0])
    with caplog.at_level(logging.WARNING, logger="t.failures"):
        assert flog.log(logging.WARNING, "failed.render", "bad %d", 1)
        assert not flog.log(logging.WARNING, "failed.render", "bad %d", 2)
        assert flog.log(logging.WARNING, "failed.publish", "other %d", 3)
        clock[0] = 11.0
        assert flog.log(logging.WARNING, "failed.render", "bad %d", 4)
    assert [r.getMessage() for r in caplog.records] == [
        "bad 1", "other 3", "bad 4 (1 more failed.render since the last report)"]


class DyingMqtt(InMemoryMqtt):
    """``wait_connected`` raises ``failures`` times, then waits for :attr:`connected`."""

    def __init__(self, failures: int) -> None:
        super().__init__()
        self.failures = failures
        self.connected.clear()

    async def wait_connected(self, timeout=None):
        if self.failures:
            self.failures -= 1
            raise TypeError("Recursion limit reached")
        await super().wait_connected(timeout)


async def test_a_dead_consume_loop_is_reported_with_its_reason_and_restarted(source, settle):
    mqtt = DyingMqtt(failures=1)
    src = source(mqtt)
    await src.start()
    await settle()
    health = await src.health()
    assert health.status is Status.DISCONNECTED
    assert health.reason.startswith(
        "consume task failed: TypeError('Recursion limit reached'); restarting in ")
    assert src.metrics.get("consume.restarted") == 1
    # restarted after the back-off: waiting for MQTT again, still saying why
    for _ in range(100):
        await asyncio.sleep(0.02)
        if (await src.health()).status is Status.CONNECTING:
            break
    health = await src.health()
    assert health.status is Status.CONNECTING
    assert health.reason == "restarting after: consume task failed: " \
        "TypeError('Recursion limit reached')"
    await asyncio.wait_for(src.stop(), 5)  # stops cleanly, no exception re-raised
    assert (await src.health()).status is Status.STOPPED
