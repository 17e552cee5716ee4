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


async def _secured_after(settled, d, start):
    await settled(d)
    return asyncio.get_running_loop().time() - start


async def test_adaptive_linger_gathers_a_trickle_into_one_batch_after_a_request(
        settled, running):
    kafka = KafkaTwin(topics={"t": 1})
    action = await running(kafka, adaptive_linger_time="300ms")
    loop = asyncio.get_running_loop()
    start = loop.time()
    [a] = send(action, "a")
    # the first record after a quiet spell goes at once
    assert await _secured_after(settled, a, start) < 0.2
    trickle = []
    for v in ("b", "c", "d"):
        trickle += send(action, v)
        await asyncio.sleep(0.02)
    assert all(d.outcome is None for d in trickle)  # waiting out the interval, not acknowledged
    assert await settled(*trickle) == ["secured"] * 3
    assert loop.time() - start < 1.0  # they waited for one interval, not more
    assert kafka.batches == [1, 3]


async def test_adaptive_linger_lets_a_record_after_a_quiet_spell_go_at_once(settled, running):
    kafka = KafkaTwin(topics={"t": 1})
    action = await running(kafka, adaptive_linger_time="200ms")
    assert await settled(*send(action, "a")) == ["secured"]
    await asyncio.sleep(0.3)  # longer than the interval
    start = asyncio.get_running_loop().time()
    [b] = send(action, "b")
    assert await _secured_after(settled, b, start) < 0.1
    assert kafka.batches == [1, 1]


async def test_adaptive_linger_off_sends_each_record_of_a_trickle_alone(settled, running):
    kafka = KafkaTwin(topics={"t": 1})
    action = await running(kafka, adaptive_linger_time=0)
    ds = []
    for v in ("a", "b", "c"):
        ds += send(action, v)
        await asyncio.sleep(0.02)
    assert await settled(*ds) == ["secured"] * 3
    assert kafka.batches == [1, 1, 1]


async def test_a_set_linger_time_keeps_its_meaning_and_the_adaptive_one_is_unused(
        settled, running):
    kafka = KafkaTwin(topics={"t": 1})
    action = await running(kafka, max_linger_time="50ms", adaptive_linger_time="5s")
    assert await settled(*send(action, "a")) == ["secured"]
    start = asyncio.get_running_loop().time()
    [b] = send(action, "b")
    assert await _secured_after(settled, b, start) < 1.0  # max_linger_time, not the 5 s interval
    assert kafka.batches == [1, 1]


async def test_records_gathered_by_the_adaptive_linger_are_secured_only_when_kafka_answers(
        settled, running):
    kafka = KafkaTwin(topics={"t": 1}, hold=True)
    action = await running(kafka, adaptive_linger_time="100ms")
    first = send(action, "a")
    await wait_until(lambda: kafka.held() == 1)
    later = send(action, "b", "c")
    await wait_until(lambda: kafka.held() == 2)
    await asyncio.sleep(0.05)
    assert [d.outcome for d in first + later] == [None, None, None]
    kafka.answer()
    assert await settled(*first + later) == ["secured"] * 3
    assert kafka.batches == [1, 2]


async def test_adaptive_linger_does_not_pause_after_a_large_batch(settled, running):
    from mqferry_kafka_producer.flush import ADAPTIVE_LINGER_BELOW

    kafka = KafkaTwin(topics={"t": 1})
    action = await running(kafka, adaptive_linger_time="5s")
    burst = send(action, *[f"r{i}" for i in range(ADAPTIVE_LINGER_BELOW)])
    assert await settled(*burst) == ["secured"] * ADAPTIVE_LINGER_BELOW
    start = asyncio.get_running_loop().time()
    [after] = send(action, "next")
    assert await _secured_after(settled, after, start) < 1.0  # not held for the 5 s interval
    assert kafka.batches == [ADAPTIVE_LINGER_BELOW, 1]
