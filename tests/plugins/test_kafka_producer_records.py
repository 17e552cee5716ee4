from mqferry.testing import RecordingDelivery
from mqferry_kafka_producer.config import BufferOptions
from mqferry_kafka_producer.records import Record, RecordBuffer


def rec(value=b"v" * 100, *, delivery=True, topic="t"):
    return Record(topic, b"k", value, 1700000000000, [("h", b"1")],
                  RecordingDelivery() if delivery else None)


def make(tmp_path, **opts):
    dropped = []
    buf = RecordBuffer(BufferOptions(**opts), tmp_path / "buf",
                       lambda r, reason: dropped.append(reason))
    return buf, dropped


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
    assert buf.take() == [r]
    assert buf.disk is None


async def test_disk_records_are_secured_once_fsynced_and_survive(tmp_path):
    buf, _ = make(tmp_path, mode="disk")
    r = rec()
    d = r.delivery
    buf.offer(r)
    assert d.outcome is None
    await buf.persist()
    assert d.outcome == "secured"
    [taken] = buf.take()
    buf.close()
    again, _ = make(tmp_path, mode="disk")
    assert again.recover(0.0) == 1
    [replayed] = again.take()
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
    taken = buf.take()
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
    assert list(buf.ready) == [first] and list(buf.waiting) == [second, third]
    buf.take()
    buf.done(first)
    assert list(buf.ready) == [second, third]
    assert dropped == []


def test_drop_oldest_counts_what_it_drops(tmp_path):
    buf, dropped = make(tmp_path, per_partition_limit=500, overflow="drop_oldest")
    first, second = rec(b"a" * 300), rec(b"b" * 300)
    buf.offer(first)
    buf.offer(second)
    assert list(buf.ready) == [second]
    assert dropped == ["dropped.queue_full"]


def test_expiry_drops_old_records(tmp_path):
    buf, dropped = make(tmp_path)
    old, new = rec(), rec()
    old.queued_at, new.queued_at = 1.0, 100.0
    buf.offer(old)
    buf.offer(new)
    assert buf.expire(older_than=50.0) == 1
    assert dropped == ["dropped.expired"]
    assert list(buf.ready) == [new]


def test_memory_pressure_sheds_the_oldest_half(tmp_path):
    buf, dropped = make(tmp_path)
    recs = [rec() for _ in range(4)]
    for r in recs:
        buf.offer(r)
    assert buf.shed_memory("dropped.queue_full") == 2
    assert list(buf.ready) == recs[2:]
    assert dropped == ["dropped.queue_full"] * 2
    assert [r.delivery.outcome for r in recs[:2]] == [None, None]  # failed by the action


async def test_bytes_return_to_zero_when_records_are_done(tmp_path):
    buf, _ = make(tmp_path, mode="hybrid", segment_bytes="4KB")
    for _ in range(8):
        buf.offer(rec(b"x" * 1000))
    await buf.persist()
    for r in buf.take():
        buf.done(r)
    assert (buf.bytes, buf.memory_bytes, buf.disk.pending) == (0, 0, 0)
