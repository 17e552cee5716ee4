"""The source's health says when Kafka stops answering its fetches, and recovers with them.

Twins on both sides (:class:`tests.plugins.kafka_consumer.twin.TimedKafkaTwin`,
:class:`mqferry.testing.InMemoryMqtt`); against a real, stopped Kafka:
tests/integration/test_cluster_kafka_outage.py.
"""

import asyncio

from mqferry import Status
from mqferry.testing import InMemoryMqtt, wait_until
from tests.plugins.kafka_consumer.test_offsets import make, twin


async def status(src):
    return (await src.health()).status


async def test_a_kafka_that_answers_no_fetch_makes_the_source_connecting_until_it_answers():
    kafka, mqtt = twin(), InMemoryMqtt()
    src = make(kafka, mqtt, offset_reset_policy="earliest", max_wait_time="0.1s")
    src.fetch_stall_after = 0.3
    await src.start()
    try:
        kafka.produce("in", b"m0")
        await wait_until(lambda: len(mqtt.published) == 1)
        await asyncio.sleep(0.5)  # idle, but Kafka answers: still connected
        assert await status(src) is Status.CONNECTED
        kafka.unreachable = True
        await asyncio.sleep(0.5)
        health = await src.health()
        assert health.status is Status.CONNECTING
        assert health.reason is not None
        assert health.reason.startswith("Kafka answered no fetch for ")
        assert "127.0.0.1:1" in health.reason
        kafka.unreachable = False
        kafka.produce("in", b"m1")
        await wait_until(lambda: len(mqtt.published) == 2)
        assert await status(src) is Status.CONNECTED
    finally:
        await src.stop()


async def test_paused_partitions_are_not_kafka_silence():
    kafka, mqtt = twin(), InMemoryMqtt(hold_acks=True)
    for i in range(4):
        kafka.produce("in", b"m%d" % i)
    src = make(kafka, mqtt, offset_reset_policy="earliest", max_inflight=2,
               max_wait_time="0.1s")
    src.fetch_stall_after = 0.3
    await src.start()
    try:
        await wait_until(lambda: kafka.pauses >= 1)
        await asyncio.sleep(0.5)  # paused well past the limit: nothing is fetched, by choice
        assert await status(src) is Status.CONNECTED
    finally:
        await src.stop()
