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
    again = DiskQueue(tmp_path, segment_bytes=4096)  # an empty queue, with no problem found
    assert again.recovered() == [] and again.problems == [] and again.pending == 0
    assert again.append([b"next"]) == [3]  # numbering on from the mark
    again.close()
    assert DiskQueue(tmp_path, segment_bytes=4096).recovered() == [(3, b"next")]


def test_clear_deletes_a_segment_an_earlier_deletion_failed_on(tmp_path, monkeypatch):
    from pathlib import Path

    q = DiskQueue(tmp_path, segment_bytes=4096)
    seqs = q.append([b"x" * 3000] * 3)  # three segments
    real_unlink = Path.unlink
    failing = {"00000000000000000000.seg"}

    def unlink(self, *args, **kwargs):
        if self.name in failing:
            failing.discard(self.name)
            raise PermissionError(13, "Permission denied")
        return real_unlink(self, *args, **kwargs)

    monkeypatch.setattr(Path, "unlink", unlink)
    for s in seqs:
        q.ack(s)
    assert (tmp_path / "00000000000000000000.seg").exists()  # its deletion failed
    q.close(clear=True)
    assert not DiskQueue.has_segments(tmp_path)
    again = DiskQueue(tmp_path, segment_bytes=4096)
    assert again.recovered() == [] and again.problems == []  # acknowledged: never sent again


def test_a_crash_part_way_through_a_clear_replays_nothing(tmp_path, monkeypatch):
    from pathlib import Path

    real_unlink = Path.unlink
    monkeypatch.setattr(Path, "unlink", lambda self, *a, **k: (
        None if self.suffix == ".seg" else real_unlink(self, *a, **k)))
    q = DiskQueue(tmp_path, segment_bytes=4096)
    for s in q.append([b"x" * 3000] * 3):
        q.ack(s)
    q.close()  # the finished segment's deletion did nothing: two files are left
    monkeypatch.setattr(Path, "unlink", real_unlink)
    segments = sorted(tmp_path.glob("*.seg"))
    assert len(segments) == 2
    for seg in segments:  # oldest first, as the clear deletes them: a crash after each
        seg.unlink()
        again = DiskQueue(tmp_path, segment_bytes=4096)
        assert again.recovered() == [] and again.problems == [] and again.pending == 0
        again.close()


def test_clear_keeps_a_queue_that_holds_records(tmp_path):
    q = DiskQueue(tmp_path, segment_bytes=4096)
    q.append([b"a", b"b", b"c"])
    q.ack(0)
    q.ack(2)  # 1 is not acknowledged
    q.close(clear=True)
    assert DiskQueue(tmp_path, segment_bytes=4096).recovered() == [(1, b"b"), (2, b"c")]
