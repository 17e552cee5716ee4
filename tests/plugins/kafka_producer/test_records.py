import asyncio
import errno
import os

import pytest

from mqferry import DiskBufferError, DiskQueue
from mqferry.testing import RecordingDelivery
from mqferry_kafka_producer.config import BufferOptions
from mqferry_kafka_producer.record import Record
from mqferry_kafka_producer.records import RecordBuffer


def rec(value=b"v" * 100, *, delivery=True, topic="t"):
    return Record(topic, b"k", value, 1700000000000, [("h", b"1")],
                  RecordingDelivery() if delivery else None)


def make(tmp_path, place=lambda r: None, **opts):
    dropped = []
    buf = RecordBuffer(BufferOptions(**opts), tmp_path / "buf",
                       lambda r, reason: dropped.append(reason), place)
    buf.open()
    return buf, dropped


UNPLACED = ("t", None)


def ready(buf, key=UNPLACED):
    return list(buf.ready.get(key, ()))


def test_codec_round_trip():
    r = Record("topic/é", None, b"", 123, [("a", b"x"), ("b", b"")], None)
    back = Record.decode(r.encode(), seq=7, queued_at=1.0)
    assert (back.topic, back.key, back.value, back.timestamp, back.headers, back.seq) == (
        "topic/é", None, b"", 123, [("a", b"x"), ("b", b"")], 7)


async def test_memory_records_wait_for_kafka_to_be_secured(tmp_path):
    buf, _ = make(tmp_path)
    r = rec()
    buf.offer(r)
    await buf.persist()
    assert r.delivery.outcome is None
    assert buf.take(UNPLACED) == [r]
    assert buf.disk is None


async def test_disk_records_are_secured_once_fsynced_and_survive(tmp_path):
    buf, _ = make(tmp_path, mode="disk")
    r = rec()
    d = r.delivery
    buf.offer(r)
    assert d.outcome is None
    await buf.persist()
    assert d.outcome == "secured"
    [taken] = buf.take(UNPLACED)
    buf.close()
    again, _ = make(tmp_path, mode="disk")
    assert again.recover(0.0) == 1
    [replayed] = again.take(UNPLACED)
    assert replayed.value == taken.value and replayed.delivery is None
    again.done(replayed)
    again.close()
    assert make(tmp_path, mode="disk")[0].recover(0.0) == 0


async def test_hybrid_spills_to_disk_past_segment_bytes_keeping_order(tmp_path):
    buf, _ = make(tmp_path, mode="hybrid", segment_bytes="4KB")
    recs = [rec(b"x" * 1000) for _ in range(8)]
    for r in recs:
        buf.offer(r)
    await buf.persist()
    taken = buf.take(UNPLACED)
    assert taken == recs
    on_disk = [r.seq is not None for r in taken]
    assert on_disk[0] is False and on_disk[-1] is True
    assert on_disk == sorted(on_disk)  # once spilling, everything after is on disk
    assert all(r.delivery is None for r in taken if r.seq is not None)


def test_block_holds_records_until_room(tmp_path):
    buf, dropped = make(tmp_path, per_partition_limit=500)
    first, second, third = rec(b"a" * 300), rec(b"b" * 300), rec(b"c" * 10)
    buf.offer(first)
    buf.offer(second)
    buf.offer(third)  # stays behind the second, in order
    assert ready(buf) == [first] and list(buf.waiting) == [second, third]
    buf.take(UNPLACED)
    buf.done(first)
    assert ready(buf) == [second, third]
    assert dropped == []


def test_drop_oldest_counts_what_it_drops(tmp_path):
    buf, dropped = make(tmp_path, per_partition_limit=500, overflow="drop_oldest")
    first, second = rec(b"a" * 300), rec(b"b" * 300)
    buf.offer(first)
    buf.offer(second)
    assert ready(buf) == [second]
    assert dropped == ["dropped.queue_full"]


def test_expiry_drops_old_records(tmp_path):
    buf, dropped = make(tmp_path)
    old, new = rec(), rec()
    old.queued_at, new.queued_at = 1.0, 100.0
    buf.offer(old)
    buf.offer(new)
    assert buf.expire(older_than=50.0) == 1
    assert dropped == ["dropped.expired"]
    assert ready(buf) == [new]


def test_memory_pressure_sheds_the_oldest_half(tmp_path):
    buf, dropped = make(tmp_path)
    recs = [rec() for _ in range(4)]
    for r in recs:
        buf.offer(r)
    assert buf.shed_memory("dropped.queue_full") == 2
    assert ready(buf) == recs[2:]
    assert dropped == ["dropped.queue_full"] * 2
    assert [r.delivery.outcome for r in recs[:2]] == [None, None]  # failed by the action


async def test_bytes_return_to_zero_when_records_are_done(tmp_path):
    buf, _ = make(tmp_path, mode="hybrid", segment_bytes="4KB")
    for _ in range(8):
        buf.offer(rec(b"x" * 1000))
    await buf.persist()
    for r in buf.take(UNPLACED):
        buf.done(r)
    assert (buf.bytes, buf.memory_bytes, buf.disk.pending) == (0, 0, 0)


def by_key(r):
    return int(r.key)


def keyed(k, size=300):
    r = rec(b"v" * size)
    r.key = str(k).encode()
    return r


def test_the_limit_applies_to_each_partition(tmp_path):
    buf, dropped = make(tmp_path, by_key, per_partition_limit=500)
    a0, b0, a1, b1 = keyed(0), keyed(0), keyed(1), keyed(1)
    for r in (a0, a1):
        buf.offer(r)
    assert ready(buf, ("t", 0)) == [a0] and ready(buf, ("t", 1)) == [a1]
    assert buf.partition_bytes == {("t", 0): a0.size, ("t", 1): a1.size}
    buf.offer(b0)  # partition 0 is full: b0 waits, and so does everything after it
    buf.offer(b1)
    assert list(buf.waiting) == [b0, b1]
    buf.take(("t", 0))
    buf.done(a0)
    assert ready(buf, ("t", 0)) == [b0]
    assert list(buf.waiting) == [b1]  # partition 1 is still full
    buf.take(("t", 1))
    buf.done(a1)
    assert ready(buf, ("t", 1)) == [b1] and not buf.waiting
    assert dropped == []


def test_drop_oldest_drops_only_from_the_full_partition(tmp_path):
    buf, dropped = make(tmp_path, by_key, per_partition_limit=500, overflow="drop_oldest")
    a0, a1, b0 = keyed(0), keyed(1), keyed(0)
    for r in (a0, a1, b0):
        buf.offer(r)
    assert ready(buf, ("t", 0)) == [b0] and ready(buf, ("t", 1)) == [a1]
    assert dropped == ["dropped.queue_full"]


def test_unplaced_records_are_placed_after_their_count_is_known(tmp_path):
    counts = {}
    buf, _ = make(tmp_path, lambda r: 0 if "t" in counts else None, per_partition_limit=1000)
    first, second, third = keyed(0), keyed(0), keyed(0)
    buf.offer(first)
    counts["t"] = 1
    buf.offer(second)  # older records of the topic are unplaced: so is this one, behind them
    assert ready(buf) == [first, second] and second.partition is None
    for r in buf.take(UNPLACED):
        buf.move(r, "t", 0)
    assert ready(buf, ("t", 0)) == [first, second]
    assert buf.partition_bytes == {("t", 0): first.size + second.size}
    buf.offer(third)  # placed at once now, and partition 0 is full
    assert list(buf.waiting) == [third] and third.partition == 0


def test_move_to_another_topic_moves_the_bytes(tmp_path):
    buf, _ = make(tmp_path)
    r = rec()
    buf.offer(r)
    [taken] = buf.take(UNPLACED)
    buf.move(taken, "fallback", 2)
    assert buf.partition_bytes == {("fallback", 2): r.size}
    assert ready(buf, ("fallback", 2)) == [r]
    buf.done(r)
    assert buf.partition_bytes == {} and buf.bytes == 0


def test_requeued_records_go_back_to_the_head_of_their_partition(tmp_path):
    buf, _ = make(tmp_path, by_key)
    first, second, third = keyed(0, 10), keyed(0, 10), keyed(0, 10)
    buf.offer(first)
    buf.offer(second)
    taken = buf.take(("t", 0))
    buf.offer(third)
    buf.requeue(taken)
    assert ready(buf, ("t", 0)) == [first, second, third]
    assert buf.oldest_created() == first.created


def test_a_waiting_record_is_placed_when_the_unplaced_queue_empties(tmp_path):
    counts = {}
    buf, _ = make(tmp_path, lambda r: 0 if "t" in counts else None, per_partition_limit=500)
    first, second = keyed(0), keyed(0)
    buf.offer(first)
    counts["t"] = 1
    buf.offer(second)
    assert list(buf.waiting) == [second] and second.partition is None
    [taken] = buf.take(UNPLACED)
    buf.move(taken, "t", 0)
    assert list(buf.waiting) == [second] and second.partition == 0  # behind first, in order
    buf.take(("t", 0))
    buf.done(first)
    assert ready(buf, ("t", 0)) == [second] and not buf.waiting


def test_drop_oldest_never_holds_a_record_back_while_batches_fill_the_partition(tmp_path):
    """In-flight records alone fill the partition: new ones replace each other, none waits."""
    buf, dropped = make(tmp_path, per_partition_limit=500, overflow="drop_oldest")
    sent = rec(b"s" * 400)
    buf.offer(sent)
    assert buf.take(UNPLACED) == [sent]  # in flight: still counted against the limit
    first, second = rec(b"a" * 300), rec(b"b" * 300)
    buf.offer(first)
    assert ready(buf) == [first] and not buf.waiting
    buf.offer(second)
    assert ready(buf) == [second] and not buf.waiting
    assert dropped == ["dropped.queue_full"]
    buf.done(sent)
    assert buf.partition_bytes == {UNPLACED: second.size}


async def test_drop_oldest_stays_bounded_while_records_wait_for_the_disk(tmp_path):
    """Disk mode: records not persisted yet cannot be dropped, so a new one that does not fit
    is dropped itself (the partition never grows past its limit plus what is in flight)."""
    buf, dropped = make(tmp_path, mode="disk", per_partition_limit=500, overflow="drop_oldest")
    first = rec(b"a" * 300)
    buf.offer(first)
    for _ in range(50):  # no persist() meanwhile: the flush loop is stalled
        buf.offer(rec(b"b" * 300))
    assert buf.to_persist == [first] and not buf.waiting
    assert dropped == ["dropped.queue_full"] * 50
    assert buf.partition_bytes == {UNPLACED: first.size}
    await buf.persist()
    assert ready(buf) == [first]
    buf.close()


async def test_records_a_full_disk_refused_stay_queued_and_are_secured_once_it_has_room(tmp_path):
    full = [True]

    def write(fd, data):
        if full[0]:
            raise OSError(errno.ENOSPC, "No space left on device")
        return os.write(fd, data)

    buf, _ = make(tmp_path, mode="disk")
    buf.disk.close()
    buf.disk = DiskQueue(tmp_path / "buf", segment_bytes=4096, write=write)
    records = [rec(bytes([65 + i]) * 100) for i in range(3)]
    deliveries = [r.delivery for r in records]
    for r in records:
        buf.offer(r)
    with pytest.raises(DiskBufferError, match="No space left on device"):
        await buf.persist()
    assert buf.to_persist == records  # kept, in order, unsecured
    assert [d.outcome for d in deliveries] == [None] * 3
    late = rec(b"Z" * 100)
    deliveries.append(late.delivery)
    buf.offer(late)
    full[0] = False
    await buf.persist()
    assert [d.outcome for d in deliveries] == ["secured"] * 4
    assert buf.take(UNPLACED) == [*records, late]
    assert buf.to_persist == []


async def test_a_stored_record_that_cannot_be_decoded_is_left_out_and_counted(tmp_path):
    # Its checksum holds (the disk queue checks that) but its contents are not a record.
    buf, _ = make(tmp_path, mode="disk")
    buf.disk.append([rec(b"a" * 100).encode(), b"\x01\x02", rec(b"c" * 100).encode()])
    buf.close()
    again, _ = make(tmp_path, mode="disk")
    assert again.recover(0.0) == 2
    assert again.take_lost() == 1
    assert again.take_lost() == 0  # counted once
    assert [r.value for r in again.take(UNPLACED)] == [b"a" * 100, b"c" * 100]


class FullDisk(DiskQueue):
    """A disk queue whose first ``fail`` appends raise ENOSPC (as a full disk), writing nothing."""

    def __init__(self, directory, *, segment_bytes, fail):
        super().__init__(directory, segment_bytes=segment_bytes)
        self.fail = fail

    def append(self, records):
        if self.fail:
            self.fail -= 1
            raise OSError(errno.ENOSPC, "No space left on device")
        return super().append(records)


def full_disk(buf, fail):
    buf.open()
    buf.disk.close()
    buf.disk = FullDisk(buf.disk.directory, segment_bytes=buf.options.segment_bytes, fail=fail)
    return buf.disk


async def test_records_whose_write_fails_stay_queued_in_order_until_the_disk_takes_them(
        tmp_path):
    buf, _ = make(tmp_path, mode="disk")
    full_disk(buf, fail=2)
    recs = [rec(str(i).encode()) for i in range(3)]
    for r in recs:
        buf.offer(r)
    for _ in range(2):
        with pytest.raises(OSError, match="No space"):
            await buf.persist()
        assert buf.to_persist == recs and buf.queued == 3
        assert all(r.delivery.outcome is None for r in recs)  # not secured: acks wait
    later = rec(b"later")
    buf.offer(later)
    await buf.persist()
    assert all(r.delivery is None for r in recs)  # secured, in order
    taken = buf.take(UNPLACED)
    assert taken == [*recs, later] and not buf.to_persist
    for r in taken:
        buf.done(r)
    assert (buf.queued, buf.bytes, buf.partition_bytes) == (0, 0, {})


async def test_a_write_whose_caller_is_cancelled_is_settled_once(tmp_path):
    buf, _ = make(tmp_path, mode="disk")
    r = rec()
    d = r.delivery
    buf.offer(r)
    writing = asyncio.ensure_future(buf.persist())
    await asyncio.sleep(0)
    writing.cancel()
    await buf.persist()  # waits for the write under way; writes nothing twice
    assert d.outcome == "secured" and buf.take(UNPLACED) == [r]
    assert buf.disk.pending == 1


def test_the_oldest_record_counts_records_on_their_way_to_the_disk(tmp_path):
    buf, _ = make(tmp_path, mode="disk")
    r = rec()
    buf.offer(r)
    assert buf.oldest_created() == r.created


async def test_a_record_that_cannot_be_written_to_disk_fails_alone(tmp_path):
    # 70,000 headers do not fit the disk format's count: that record is dropped with its
    # reason, the others are secured (before, it stayed at the head of the queue for ever).
    buf, dropped = make(tmp_path, mode="disk")
    good, bad, after = rec(b"a" * 100), rec(b"b" * 100), rec(b"c" * 100)
    bad.headers = [("h", b"")] * 70_000
    for r in (good, bad, after):
        buf.offer(r)
    deliveries = [good.delivery, after.delivery]
    await buf.persist()
    assert dropped == ["dropped.unencodable"]
    assert [d.outcome for d in deliveries] == ["secured", "secured"]
    assert [r.value for r in buf.take(UNPLACED)] == [b"a" * 100, b"c" * 100]
    assert buf.to_persist == []
