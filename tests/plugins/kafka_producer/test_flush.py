"""The producer's flush loop and retries on the Kafka twin (mqferry_kafka.testing.KafkaTwin).

What Kafka answers decides each record: acknowledged records are secured; an error response is
retried at the head of the queue and counts towards ``max_retries``; a lost connection is
retried without counting; linger gathers records into one batch; stop() flushes first.
"""

import asyncio

from aiokafka.errors import KafkaConnectionError, NotEnoughReplicasError

from mqferry.testing import RecordingDelivery, wait_until
from mqferry_kafka.testing import KafkaTwin


def send(action, *values):
    out = []
    for v in values:
        d = RecordingDelivery()
        action.submit({"v": v}, d)
        out.append(d)
    return out


async def test_an_error_response_is_retried_at_the_head_of_the_queue_in_order(settled, running):
    kafka = KafkaTwin(topics={"t": 1}, hold=True)
    # one batch in flight per partition: above 1, a later batch may pass a retried one
    action = await running(kafka, max_inflight=1)
    first = send(action, "a", "b")
    await wait_until(lambda: kafka.held() == 1)
    later = send(action, "c")
    kafka.hold = False
    kafka.answer(error=NotEnoughReplicasError("twin"))
    assert await settled(*first, *later) == ["secured"] * 3
    assert kafka.values("t") == [b"a", b"b", b"c"]  # the retried records stay first
    m = action.metrics.snapshot()
    assert (m["retried"], m["retried.success"], m["success"]) == (2, 2, 3)


async def test_error_responses_count_towards_max_retries_then_the_records_fail(settled, running):
    kafka = KafkaTwin(topics={"t": 1})
    kafka.raise_on_send = [NotEnoughReplicasError("twin") for _ in range(3)]
    action = await running(kafka, max_retries=2)
    [doomed] = send(action, "x")
    assert await settled(doomed) == ["failed:failed.max_retries"]
    assert await settled(*send(action, "y")) == ["secured"]  # the next record goes on
    assert kafka.values("t") == [b"y"]
    m = action.metrics.snapshot()
    assert (m["retried"], m["retried.failed"], m["failed.max_retries"]) == (2, 1, 1)
    assert action.last_error["reason"] == "failed.max_retries"


async def test_a_lost_connection_is_retried_without_counting_and_reported(settled, running):
    kafka = KafkaTwin(topics={"t": 1})
    kafka.raise_on_send = [KafkaConnectionError("twin") for _ in range(3)]
    action = await running(kafka, max_retries=0)  # one error response would fail it
    [d] = send(action, "x")
    await wait_until(lambda: not kafka.raise_on_send)
    assert await settled(d) == ["secured"]
    assert action.metrics.snapshot()["retried"] == 3
    assert (await action.health()).status.value == "connected"


async def test_health_shows_the_lost_connection_until_kafka_answers_again(running):
    kafka = KafkaTwin(topics={"t": 1}, hold=True)
    action = await running(kafka)
    [d] = send(action, "x")
    await wait_until(lambda: kafka.held() == 1)
    kafka.hold = False
    kafka.answer(error=KafkaConnectionError("twin: broker gone"))
    await wait_until(lambda: d.outcome is not None)
    health = await action.health()
    assert d.outcome == "secured" and health.status.value == "connected"


async def test_linger_gathers_the_records_of_a_burst_into_one_batch(settled, running):
    kafka = KafkaTwin(topics={"t": 1})
    action = await running(kafka, max_linger_time="200ms")
    ds = send(action, *[str(i) for i in range(20)])
    assert await settled(*ds) == ["secured"] * 20
    assert kafka.batches == [20]


async def test_stop_flushes_what_is_buffered_and_in_flight(running):
    kafka = KafkaTwin(topics={"t": 1}, hold=True)
    action = await running(kafka)
    ds = send(action, "a", "b")
    await wait_until(lambda: kafka.held() == 1)
    stopping = asyncio.ensure_future(action.stop(timeout=5.0))
    await asyncio.sleep(0.05)
    assert not stopping.done()  # waits for Kafka's answer
    kafka.answer()
    await stopping
    assert [d.outcome for d in ds] == ["secured", "secured"]
    assert kafka.values("t") == [b"a", b"b"]


async def test_with_two_batches_in_flight_a_later_batch_may_pass_a_retried_one(settled, running):
    # the documented cost of max_inflight above 1: nothing lost, order not kept across a retry
    kafka = KafkaTwin(topics={"t": 1}, hold=True)
    action = await running(kafka, max_inflight=2)
    first = send(action, "a")
    await wait_until(lambda: kafka.held() == 1)
    later = send(action, "b")
    await wait_until(lambda: kafka.held() == 2)
    kafka.answer(1, error=NotEnoughReplicasError("twin"))
    kafka.answer(1)
    kafka.hold = False
    assert await settled(*first, *later) == ["secured"] * 2
    assert kafka.values("t") == [b"b", b"a"]
