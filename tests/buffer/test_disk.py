from mqferry._buffer import DiskQueue


def test_records_come_back_after_a_crash_until_acknowledged(tmp_path):
    q = DiskQueue(tmp_path, segment_bytes=4096)
    seqs = q.append([b"a", b"b", b"c"])
    assert seqs == [0, 1, 2]
    q.ack(1)  # out of order: the mark stays at 0
    q.close()  # writes nothing: the disk is as after kill -9, which drops the lock too
    again = DiskQueue(tmp_path, segment_bytes=4096)
    assert again.recovered() == [(0, b"a"), (1, b"b"), (2, b"c")]
    again.ack(0)
    again.ack(1)
    again.close()
    third = DiskQueue(tmp_path, segment_bytes=4096)
    assert third.recovered() == [(2, b"c")]
    assert third.append([b"d"]) == [3]


def test_finished_segments_are_deleted(tmp_path):
    q = DiskQueue(tmp_path, segment_bytes=4096)
    big = b"x" * 3000
    seqs = q.append([big, big, big, big])
    assert len(list(tmp_path.glob("*.seg"))) >= 2
    for s in seqs:
        q.ack(s)
    assert len(list(tmp_path.glob("*.seg"))) == 1
    assert q.pending == 0
    q.close()
    assert DiskQueue(tmp_path, segment_bytes=4096).recovered() == []


def test_a_torn_record_at_the_end_is_cut_off(tmp_path):
    q = DiskQueue(tmp_path, segment_bytes=4096)
    q.append([b"good", b"also good"])
    q.close()
    [seg] = tmp_path.glob("*.seg")
    with seg.open("ab") as f:
        f.write(b"\x10\x00\x00\x00\x00\x00")  # half a header and no body
    again = DiskQueue(tmp_path, segment_bytes=4096)
    assert [d for _, d in again.recovered()] == [b"good", b"also good"]
    assert again.append([b"next"]) == [2]
    again.close()
    assert [d for _, d in DiskQueue(tmp_path, segment_bytes=4096).recovered()] == [
        b"good", b"also good", b"next"]


def test_a_corrupt_record_is_skipped_and_the_mark_can_pass_it(tmp_path):
    q = DiskQueue(tmp_path, segment_bytes=4096)
    q.append([b"one", b"two"])
    q.close()
    [seg] = tmp_path.glob("*.seg")
    data = bytearray(seg.read_bytes())
    data[-1] ^= 0xFF  # flip a bit in the last record
    seg.write_bytes(bytes(data))
    again = DiskQueue(tmp_path, segment_bytes=4096)
    assert again.recovered() == [(0, b"one")]


def test_pending_counts_unacknowledged(tmp_path):
    q = DiskQueue(tmp_path, segment_bytes=4096)
    q.append([b"a", b"b"])
    assert q.pending == 2
    q.ack(1)
    assert q.pending == 1


def test_a_drained_queue_closed_with_clear_leaves_nothing_to_open(tmp_path):
    q = DiskQueue(tmp_path, segment_bytes=4096)
    for s in q.append([b"x" * 3000] * 3):
        q.ack(s)
    assert DiskQueue.has_segments(tmp_path)  # the last segment stays while the queue is open
    q.close(clear=True)
    assert not DiskQueue.has_segments(tmp_path)
    assert not (tmp_path / "acked").exists()
    again = DiskQueue(tmp_path, segment_bytes=4096)  # a fresh queue, with no problem found
    assert again.recovered() == [] and again.problems == [] and again.pending == 0
    assert again.append([b"next"]) == [0]


def test_clear_keeps_a_queue_that_holds_records(tmp_path):
    q = DiskQueue(tmp_path, segment_bytes=4096)
    q.append([b"a", b"b", b"c"])
    q.ack(0)
    q.ack(2)  # 1 is not acknowledged
    q.close(clear=True)
    assert DiskQueue(tmp_path, segment_bytes=4096).recovered() == [(1, b"b"), (2, b"c")]
