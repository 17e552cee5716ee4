"""A disk-buffered action on the Kafka twin: persisting does not wait for Kafka, a full disk
loses nothing, and stop() says truly what it kept.

With ``buffer.mode: disk`` a record is secured once fsync'd, whether or not Kafka has been
reached; a write the disk refuses leaves its records queued (unsecured) and is tried again.
"""

import asyncio
import logging

from aiokafka.errors import KafkaConnectionError, NodeNotReadyError

from mqferry.testing import RecordingDelivery, wait_until
from mqferry_kafka.testing import KafkaTwin, TwinProducer
from tests.plugins.kafka_producer.test_records import full_disk

ACTION_DEFAULTS = {"buffer": {"mode": "disk"}}


def send(action, *values):
    out = []
    for v in values:
        d = RecordingDelivery()
        action.submit({"v": v}, d)
        out.append(d)
    return out


class _DownProducer(TwinProducer):
    async def start(self):
        if self.kafka.down:
            raise KafkaConnectionError("no broker answers (twin)")


class DownKafka(KafkaTwin):
    """A cluster whose producers cannot start while ``down``."""

    down = True

    def __call__(self, **options):
        producer = _DownProducer(self, options)
        self.producers.append(producer)
        return producer


async def test_a_full_disk_keeps_the_records_queued_until_it_takes_them(settled, make):
    kafka = KafkaTwin(topics={"t": 1})
    action = make(kafka)
    full_disk(action.buffer, fail=3)
    await action.start()
    try:
        ds = send(action, *[str(i) for i in range(20)])
        assert await settled(*ds, timeout=10) == ["secured"] * 20
        await wait_until(lambda: len(kafka.values("t")) == 20)
        assert kafka.values("t") == [str(i).encode() for i in range(20)]
        await wait_until(lambda: action.metrics.snapshot()["queuing_bytes"] == 0)
        m = action.metrics.snapshot()
        assert (m["persist_errors"], m["queuing"], m["success"], m["failed"]) == (3, 0, 20, 0)
    finally:
        await action.stop(timeout=1.0)


async def test_records_are_secured_on_disk_while_kafka_was_never_reached(settled, make):
    kafka = DownKafka(topics={"t": 1})
    action = make(kafka)
    await action.start()
    try:
        ds = send(action, "a", "b", "c")
        assert await settled(*ds) == ["secured"] * 3  # fsync'd: the MQTT acks may go
        assert any(action.buffer.disk.directory.glob("*.seg"))
        assert action.buffer.disk.pending == 3
        assert (await action.health()).status.value == "connecting"
        await asyncio.sleep(0.05)
        assert action.metrics.snapshot()["oldest_unacked_age_ms"] >= 50
        kafka.down = False
        await wait_until(lambda: len(kafka.values("t")) == 3, timeout=10)
        assert kafka.values("t") == [b"a", b"b", b"c"]
    finally:
        await action.stop(timeout=1.0)


async def test_stop_before_kafka_was_reached_writes_what_is_in_memory(make, caplog):
    kafka = DownKafka(topics={"t": 1})
    action = make(kafka)
    await action.start()
    ds = send(action, "a", "b")  # stopped before the persist loop ran
    with caplog.at_level(logging.WARNING):
        await action.stop(timeout=1.0)
    assert [d.outcome for d in ds] == ["secured"] * 2
    assert "2 records unsent: kept in the disk buffer" in caplog.text
    again = make(kafka)
    assert again.buffer.recover(0.0) == 2
    again.buffer.close()


async def test_stop_says_how_many_records_a_refusing_disk_did_not_keep(make, caplog):
    kafka = DownKafka(topics={"t": 1})
    action = make(kafka)
    full_disk(action.buffer, fail=1000)
    await action.start()
    ds = send(action, "a", "b")
    with caplog.at_level(logging.WARNING):
        await action.stop(timeout=0.3)
    assert [d.outcome for d in ds] == [None, None]  # not acknowledged: the broker resends them
    assert "0 kept in the disk buffer, 2 NOT kept" in caplog.text
    assert "No space left on device" in caplog.text and "broker redelivers" in caplog.text
    assert action.metrics.snapshot()["persist_errors"] >= 1


async def test_a_batch_kafka_does_not_answer_shows_the_action_connecting(settled, running):
    kafka = KafkaTwin(topics={"t": 1}, hold=True)
    action = await running(kafka, buffer={"mode": "memory"})
    action.stall_after = 0.2
    [d] = send(action, "x")

    async def status():
        return (await action.health()).status.value

    await wait_until(lambda: kafka.held() == 1)
    assert await status() == "connected"
    for _ in range(60):
        if await status() == "connecting":
            break
        await asyncio.sleep(0.1)
    health = await action.health()
    assert health.status.value == "connecting" and "not answered" in health.reason
    kafka.answer()
    kafka.hold = False
    assert await settled(d) == ["secured"]
    assert await status() == "connected"


async def test_node_not_ready_is_a_lost_connection_not_a_refusal(settled, running):
    kafka = KafkaTwin(topics={"t": 1})
    kafka.raise_on_send = [NodeNotReadyError("twin"), NodeNotReadyError("twin")]
    action = await running(kafka, buffer={"mode": "memory"}, max_retries=0)
    assert await settled(*send(action, "x")) == ["secured"]
