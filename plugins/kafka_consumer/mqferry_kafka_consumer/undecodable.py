"""Records aiokafka cannot decode: found one partition at a time, so each fails alone.

aiokafka decodes a record's header keys as UTF-8 while it hands out a partition's records. A
record whose header key is not UTF-8 (Kafka's Java client cannot write one; kcat, librdkafka
and Go clients can) raises ``UnicodeDecodeError`` out of ``getmany()``, for every partition at
once, and the same batch is fetched again: without this the whole source stalls for good.

When ``getmany()`` raises so, the source asks each assigned partition alone; the one that raises
again is read one record at a time until the record that raises, whose offset is then the
partition's position. The records before it are handed out as usual; the source rejects that
one (counted, logged, dead-lettered) and seeks past it.
"""

from __future__ import annotations

from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition

from mqferry_kafka_consumer.handler import RecordHandler

__all__ = ["UNDECODABLE", "find_undecodable", "skip_undecodable"]

#: what aiokafka raises out of ``getmany()`` for a record it cannot decode
UNDECODABLE = (UnicodeDecodeError,)
#: how long one partition's fetch may take while looking (the fetcher fetches it again first)
FETCH_MS = 500


async def find_undecodable(consumer: AIOKafkaConsumer, tp: TopicPartition, limit: int,
                           ) -> tuple[list[Any], int | None]:
    """The records of ``tp`` up to ``limit``, and the offset of an undecodable one if any.

    The offset is where the records returned end: they come before it.
    """
    try:
        got = await consumer.getmany(tp, timeout_ms=FETCH_MS, max_records=limit)
    except UNDECODABLE:
        pass
    else:
        return got.get(tp, []), None
    # This partition: one record at a time, so that the position stops right before it.
    records: list[Any] = []
    while len(records) < limit:
        try:
            got = await consumer.getmany(tp, timeout_ms=FETCH_MS, max_records=1)
        except UNDECODABLE:
            return records, await consumer.position(tp)
        batch = got.get(tp)
        if not batch:
            break  # not fetched again in time: the source's next round looks again
        records.extend(batch)
    return records, None


async def skip_undecodable(consumer: AIOKafkaConsumer, handler: RecordHandler, room: int,
                           exc: BaseException) -> None:
    """After ``getmany()`` raised ``exc``: hand out up to ``room`` records partition by
    partition, and reject the first undecodable record found, seeking past it.

    That ``getmany()`` may have taken records of other partitions before it raised, moving
    their positions past records nobody got: every partition is first put back right after
    the last record handed out (or at its committed offset when none was).
    """
    for tp in consumer.assignment():
        window = handler.tracker.window(tp)
        position = window.next_offset if window.next_offset is not None else window.committed
        if position is not None:
            consumer.seek(tp, position)
    for tp in sorted(consumer.assignment()):
        records, bad = await find_undecodable(consumer, tp, room)
        if records:
            handler.handle_batches({tp: records})
            room -= len(records)
        if bad is not None:
            handler.undecodable(tp, bad, f"the record cannot be decoded: {exc}")
            consumer.seek(tp, bad + 1)
            return
        if room <= 0 or handler.rewind:
            return
