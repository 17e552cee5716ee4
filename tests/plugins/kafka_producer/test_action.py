"""The kafka_producer action on an in-memory Kafka twin: isolation of bad records and topics,
the flush loop's survival, and a bounded stop."""

from __future__ import annotations

import asyncio
import logging
import time

import pytest

from mqferry._errors import DeliveryError
from mqferry.testing import RecordingDelivery
from mqferry_kafka.testing import KafkaTwin

#: the topic comes from each output, and a stop may take its time
ACTION_DEFAULTS = {"topic": "${t}", "close_timeout": 5.0}


async def send(action, topic, value):
    d = RecordingDelivery()
    action.submit({"t": topic, "v": value}, d)
    return d


@pytest.mark.parametrize("name", ["bad topic", "a/b", "x" * 250, ".", "..", "é"])
async def test_an_invalid_topic_name_fails_alone_without_asking_kafka(settled, running, name):
    kafka = KafkaTwin(topics={"good": 1})
    action = await running(kafka)
    bad = await send(action, name, "x")
    good = await send(action, "good", "ok")
    assert await settled(bad, good) == ["failed:failed.invalid_topic", "secured"]
    assert kafka.values("good") == [b"ok"]
    assert kafka.metadata_requests == 1  # for "good" only
    assert action.metrics.get("failed.invalid_topic") == 1
    with pytest.raises(DeliveryError, match=r"invalid_topic"):
        action.preview({"t": name, "v": "x"})


async def test_an_invalid_topic_name_goes_to_the_fallback_topic(settled, running):
    kafka = KafkaTwin(topics={"good": 1, "unrouted": 1})
    action = await running(kafka, fallback_topic="unrouted")
    d = await send(action, "no way!", "x")
    assert await settled(d) == ["secured"]
    assert kafka.values("unrouted") == [b"x"]
    assert action.metrics.get("fallback.invalid_topic") == 1
    assert action.preview({"t": "no way!", "v": "x"})["topic"] == "unrouted"


async def test_records_of_known_topics_do_not_wait_for_a_lookup(settled, running):
    kafka = KafkaTwin(topics={"good": 1, "late": 1})
    action = await running(kafka)
    assert await settled(await send(action, "good", "warm-up")) == ["secured"]
    kafka.metadata_delay = 3.0  # the next lookup hangs for 3 s
    slow = await send(action, "late", "1")
    started = time.monotonic()
    fast = [await send(action, "good", str(i)) for i in range(5)]
    assert await settled(*fast, timeout=1.0) == ["secured"] * 5
    assert time.monotonic() - started < 0.5
    assert slow.outcome is None  # still being looked up
    assert await settled(slow) == ["secured"]
    assert kafka.values("late") == [b"1"]


async def test_a_missing_topic_fails_its_records_alone_with_one_lookup(settled, running):
    kafka = KafkaTwin(topics={"good": 1})
    action = await running(kafka)
    assert await settled(await send(action, "good", "warm-up")) == ["secured"]
    kafka.metadata_delay = 0.3
    missing = [await send(action, "nope", str(i)) for i in range(3)]
    good = [await send(action, "good", str(i)) for i in range(3)]
    assert await settled(*good, timeout=0.25) == ["secured"] * 3
    assert await settled(*missing) == ["failed:failed.unknown_topic"] * 3
    assert kafka.metadata_requests == 2  # "good", then "nope" once for its three records
    again = await send(action, "nope", "later")  # within the negative cache: no lookup
    assert await settled(again) == ["failed:failed.unknown_topic"]
    assert kafka.metadata_requests == 2


async def test_a_missing_topic_goes_to_the_fallback_topic(settled, running):
    kafka = KafkaTwin(topics={"unrouted": 2})
    action = await running(kafka, fallback_topic="unrouted")
    d = await send(action, "nope", "x")
    assert await settled(d) == ["secured"]
    assert kafka.values("unrouted") == [b"x"]


async def test_while_no_broker_answers_records_stay_queued_in_order(settled, running):
    kafka = KafkaTwin(topics={"t": 1}, unreachable=True)
    action = await running(kafka)
    ds = [await send(action, "t", str(i)) for i in range(5)]
    # the lookup reports the cluster unreachable (polled: a busy machine may take a while)
    for _ in range(100):
        if (await action.health()).status.value == "connecting" and kafka.metadata_requests:
            break
        await asyncio.sleep(0.1)
    assert (await action.health()).status.value == "connecting"
    assert all(d.outcome is None for d in ds)
    kafka.unreachable = False
    assert await settled(*ds, timeout=10) == ["secured"] * 5
    assert kafka.values("t") == [str(i).encode() for i in range(5)]


def deep(n):
    v: list = []
    for _ in range(n):
        v = [v]
    return v


async def test_any_render_error_fails_the_output_alone(settled, running):
    kafka = KafkaTwin(topics={"t": 1})
    action = await running(kafka, topic="t", message={"key": "", "value": "${.}"})
    bad = [RecordingDelivery(), RecordingDelivery()]
    action.submit({"d": deep(300)}, bad[0])  # orjson: TypeError on this depth
    action.submit({"n": 2**70}, bad[1])  # orjson: TypeError, beyond 64 bits
    good = await send(action, "t", "ok")
    assert await settled(*bad, good) == ["failed:failed.render"] * 2 + ["secured"]
    assert action.metrics.get("failed.render") == 2
    with pytest.raises(DeliveryError, match=r"failed\.render"):
        action.preview({"d": deep(300)})


async def test_a_record_larger_than_a_request_fails_before_batching(settled, running):
    kafka = KafkaTwin(topics={"t": 1})
    action = await running(kafka, max_batch_bytes="100KB")
    big = await send(action, "t", "x" * (2 * 1024 * 1024))
    small = await send(action, "t", "ok")
    assert await settled(big, small) == ["failed:failed.too_large", "secured"]
    assert kafka.values("t") == [b"ok"]


async def test_the_flush_loop_survives_an_unexpected_error(settled, running):
    kafka = KafkaTwin(topics={"t": 1})
    action = await running(kafka)
    assert await settled(await send(action, "t", "0")) == ["secured"]
    kafka.raise_on_send = [RuntimeError("boom"), RuntimeError("boom again")]
    ds = [await send(action, "t", str(i)) for i in range(1, 4)]
    assert await settled(*ds) == ["secured"] * 3
    assert kafka.values("t") == [b"0", b"1", b"2", b"3"]  # put back in order, none lost
    assert action.metrics.get("flush_errors") == 2
    assert (await action.health()).status.value == "connected"


async def test_a_record_that_always_breaks_the_round_fails_after_max_retries(settled, running):
    kafka = KafkaTwin(topics={"t": 1}, poison_values=[b"poison"])
    action = await running(kafka, max_retries=2)
    poison = await send(action, "t", "poison")
    assert await settled(poison) == ["failed:failed.max_retries"]
    after = await send(action, "t", "after")
    assert await settled(after) == ["secured"]
    assert kafka.values("t") == [b"after"]


async def test_stop_is_bounded_when_kafka_hangs(make, settled, caplog):
    kafka = KafkaTwin(topics={"t": 1})
    action = make(kafka, close_timeout=0.5)
    await action.start()
    assert await settled(await send(action, "t", "0")) == ["secured"]
    kafka.hold = kafka.hang_stop = True
    held = [await send(action, "t", str(i)) for i in range(3)]
    await asyncio.sleep(0.1)
    started = time.monotonic()
    with caplog.at_level(logging.WARNING):
        await action.stop(timeout=0.5)
    assert time.monotonic() - started < 1.5
    # not settled: they come back from where they came; reported as left by the gauges
    assert all(d.outcome is None for d in held)
    assert ("stopped with 3 records unsent (Kafka does not answer): not settled with their "
            "origin, so they come back: the MQTT broker redelivers the MQTT messages (their "
            "acks were not sent), and a Kafka source's consumer group reads its records again "
            "(their offsets were not committed)") in caplog.text
    assert action.metrics.snapshot()["inflight"] == 3
    # Kafka answering late settles nothing any more
    producer = kafka.producers[0]
    for fut, _ in producer.pending:
        fut.set_result(None)
    await asyncio.sleep(0.05)
    assert all(d.outcome is None for d in held)


async def test_a_record_larger_than_its_topic_accepts_fails_before_it_enters_a_batch(settled,
        running, caplog):
    kafka = KafkaTwin(topics={"t": 1}, max_message_bytes=10_000)
    action = await running(kafka)
    assert await settled(await send(action, "t", "first")) == ["secured"]  # limit looked up
    assert kafka.describe_requests == 1
    big = await send(action, "t", "x" * 20_000)
    small = await send(action, "t", "after")
    assert await settled(big, small) == ["failed:failed.too_large", "secured"]
    assert kafka.values("t") == [b"first", b"after"]
    assert kafka.refused_batches == 0  # never offered to Kafka: no sequence number spent
    assert len(kafka.producers) == 1  # no new producer session
    assert action.metrics.get("failed.too_large") == 1
    assert action.last_error["reason"] == "failed.too_large"
    assert action.last_error["message"].startswith("a record of 20000 bytes")
    [warning] = [r for r in caplog.records if "failed.too_large" in r.getMessage()]
    assert warning.levelname == "WARNING"
    assert warning.getMessage().endswith(
        "a record of 20000 bytes (20087 as a Kafka batch) for t is larger than the topic accepts "
        "(max.message.bytes = 10000)")


async def test_a_batch_kafka_refuses_as_too_large_renews_the_session_quietly(
        settled, running, caplog):
    caplog.set_level(logging.INFO)
    # With compression the size is known only once compressed: Kafka's refusal decides.
    kafka = KafkaTwin(topics={"t": 1}, max_message_bytes=10_000)
    action = await running(kafka, compression="gzip")
    big = await send(action, "t", "x" * 20_000)
    assert await settled(big) == ["failed:failed.too_large"]
    small = await send(action, "t", "after")
    assert await settled(small) == ["secured"]
    assert kafka.refused_batches == 1
    assert len(kafka.producers) == 2  # the spent sequence number: a new session, at once
    renewals = [r for r in caplog.records if "new producer session" in r.getMessage()]
    assert [r.levelname for r in renewals] == ["INFO"]
    assert "Kafka refused a batch as too large" in renewals[0].getMessage()


async def test_a_record_kafka_refuses_for_its_timestamp_fails_alone(settled, running):
    """A batch refused for one record's timestamp: its batch-mates are sent one by one."""
    now = 1_700_000_000_000
    kafka = KafkaTwin(topics={"t": 1}, max_timestamp=now + 3_600_000)
    action = await running(kafka, topic="t", message={"value": "${v}", "timestamp": "${ts}"})
    ds = [RecordingDelivery() for _ in range(4)]
    stamps = [now, now + 1, now + 7_200_000, now + 2]  # the third is 2 h ahead
    for i, (d, ts) in enumerate(zip(ds, stamps, strict=True)):
        action.submit({"v": str(i), "ts": ts}, d)  # all buffered before the first round
    assert await settled(*ds) == ["secured", "secured", "failed:failed.refused", "secured"]
    assert sorted(kafka.values("t")) == [b"0", b"1", b"3"]
    assert action.metrics.get("failed.refused") == 1
    assert kafka.refused_batches >= 2  # the batch of all, then the record alone


@pytest.mark.parametrize("ts", [2**63, 2**64 + 5, -5, "18000000000000000000", float("inf"),
                                float("nan"), "soon"])
async def test_a_timestamp_kafka_cannot_hold_means_now(settled, running, ts):
    kafka = KafkaTwin(topics={"t": 1})
    action = await running(kafka, topic="t", message={"value": "${v}", "timestamp": "${ts}"})
    good, odd = RecordingDelivery(), RecordingDelivery()
    action.submit({"v": "a", "ts": 1_700_000_000_000}, good)
    action.submit({"v": "b", "ts": ts}, odd)
    assert await settled(good, odd) == ["secured", "secured"]
    assert kafka.values("t") == [b"a", b"b"]
    before = time.time_ns() // 1_000_000
    assert before - 60_000 <= action.preview({"v": "b", "ts": ts})["timestamp"] <= before + 60_000


async def test_records_split_off_a_refused_batch_go_one_at_a_time(settled, running):
    """Each waits until the one before it settled (a refused one spends sequence numbers)."""
    now = 1_700_000_000_000
    kafka = KafkaTwin(topics={"t": 1}, max_timestamp=now + 3_600_000)
    action = await running(kafka, topic="t", message={"value": "${v}", "timestamp": "${ts}"})
    ds = [RecordingDelivery() for _ in range(3)]
    for i, d in enumerate(ds):
        action.submit({"v": str(i), "ts": now + 7_200_000 if i == 0 else now}, d)
    kafka.hold = True  # the split records' batches now wait for an answer
    for _ in range(100):
        await asyncio.sleep(0.01)
        if kafka.held():
            break
    await asyncio.sleep(0.05)
    assert kafka.held() == 1  # the first good record alone, the other behind it
    kafka.answer()
    for _ in range(100):
        await asyncio.sleep(0.01)
        if kafka.held():
            break
    assert kafka.held() == 1
    kafka.hold = False
    kafka.answer()
    assert await settled(*ds) == ["failed:failed.refused", "secured", "secured"]
    assert kafka.batches == [1, 1]


async def test_a_header_value_json_cannot_hold_is_left_out_counted_and_logged(settled, running,
                                                                               caplog):
    kafka = KafkaTwin(topics={"t": 1})
    action = await running(kafka, topic="t", message={"value": "${v}"},
                           kafka_header_value_encode_mode="json",
                           kafka_ext_headers=[{"kafka_ext_header_key": "big",
                                               "kafka_ext_header_value": "${n}"},
                                              {"kafka_ext_header_key": "ok",
                                               "kafka_ext_header_value": "${v}"}])
    ds = [RecordingDelivery() for _ in range(2)]
    with caplog.at_level(logging.WARNING):
        action.submit({"v": "a", "n": 2**70}, ds[0])  # past 64 bits: orjson cannot encode it
        action.submit({"v": "b", "n": 7}, ds[1])
        assert await settled(*ds) == ["secured", "secured"]
    assert kafka.values("t") == [b"a", b"b"]
    assert action.metrics.get("rendered.header_skipped") == 1
    assert "header 'big' left out of a record for t" in caplog.text


async def test_every_header_left_out_of_a_record_is_named(settled, running, caplog):
    kafka = KafkaTwin(topics={"t": 1})
    headers = [{"kafka_ext_header_key": k, "kafka_ext_header_value": "${n}"} for k in ("a", "b")]
    action = await running(kafka, topic="t", message={"value": "${v}"},
                           kafka_header_value_encode_mode="json", kafka_ext_headers=headers)
    d = RecordingDelivery()
    with caplog.at_level(logging.WARNING):
        action.submit({"v": "x", "n": 2**70}, d)
        assert await settled(d) == ["secured"]
    assert kafka.values("t") == [b"x"]
    assert action.metrics.get("rendered.header_skipped") == 1  # records, not headers
    assert "header 'a', header 'b' left out of a record for t" in caplog.text


async def test_a_disk_buffer_secures_records_while_kafka_has_never_answered(settled, running):
    # A record is secured once on disk, whether Kafka was reached or not: nothing waits for
    # the producer to connect.
    from aiokafka.errors import KafkaConnectionError

    kafka = KafkaTwin(topics={"t": 1})
    down = [True]

    def factory(**options):
        producer = kafka(**options)
        real = producer.start

        async def start():
            if down[0]:
                raise KafkaConnectionError("no broker answers (test)")
            await real()
        producer.start = start
        return producer

    action = await running(factory, buffer={"mode": "disk"})
    ds = [await send(action, "t", str(i)) for i in range(5)]
    assert await settled(*ds, timeout=5) == ["secured"] * 5
    assert (await action.health()).status.value == "connecting"
    assert action.buffer.oldest_created() is not None  # waiting for Kafka, and counted so
    assert kafka.values("t") == []
    down[0] = False
    for _ in range(200):
        if kafka.values("t"):
            break
        await asyncio.sleep(0.05)
    for _ in range(100):
        if len(kafka.values("t")) == 5:
            break
        await asyncio.sleep(0.05)
    assert kafka.values("t") == [str(i).encode() for i in range(5)]


async def test_a_stop_writes_what_has_not_reached_the_disk_yet(make, caplog):
    from aiokafka.errors import KafkaConnectionError

    kafka = KafkaTwin(topics={"t": 1})

    def factory(**options):
        producer = kafka(**options)

        async def start():
            raise KafkaConnectionError("no broker answers (test)")
        producer.start = start
        return producer

    action = make(factory, buffer={"mode": "disk"})
    await action.start()
    for i in range(3):  # no await in between: the flush task has not run yet
        action.submit({"t": "t", "v": str(i)}, RecordingDelivery())
    assert len(action.buffer.to_persist) == 3
    with caplog.at_level(logging.WARNING):
        await action.stop(timeout=1.0)
    assert "stopped with 3 records unsent" in caplog.text
    assert "kept in the disk buffer" in caplog.text
    again = make(kafka, buffer={"mode": "disk"})
    assert again.buffer.recover(0.0) == 3
    again.buffer.close()


async def test_what_a_damaged_disk_buffer_lost_is_counted_when_the_action_starts(make, tmp_path):
    from mqferry import DiskQueue
    from mqferry_kafka_producer.record import Record

    directory = tmp_path / "kafka_producer" / "a"
    q = DiskQueue(directory, segment_bytes=4096)
    for i in range(6):
        q.append([Record("t", None, str(i).encode() * 3000, 1, [], None).encode()])
    q.close()
    segments = sorted(directory.glob("*.seg"))
    assert [int(p.stem) for p in segments] == [0, 2, 4]  # two records each
    segments[1].write_bytes(b"")  # a segment lost in the middle: a gap of 2 records
    action = make(KafkaTwin(topics={"t": 1}), topic="t", buffer={"mode": "disk"})
    await action.start()
    try:
        counters = action.metrics.snapshot()
        assert (counters["dropped"], counters["dropped.disk_damaged"]) == (2, 2)
    finally:
        await action.stop(timeout=1.0)


async def test_zeros_a_crash_left_after_the_disk_buffer_replay_nothing_and_count_nothing(
        make, tmp_path):
    from mqferry import DiskQueue
    from mqferry_kafka_producer.record import Record

    directory = tmp_path / "kafka_producer" / "a"
    q = DiskQueue(directory, segment_bytes=4096)
    q.append([Record("t", None, b"%d" % i, 1, [], None).encode() for i in range(3)])
    q.close()
    [segment] = directory.glob("*.seg")
    with segment.open("ab") as f:
        f.write(bytes(4096))  # the file was extended by a crash, its data never written
    action = make(KafkaTwin(topics={"t": 1}), topic="t", buffer={"mode": "disk"})
    assert action.buffer.recover(0.0) == 3
    assert action.buffer.take_lost() == 0  # no empty record to fail to decode
    action.buffer.close()
