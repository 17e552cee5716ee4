"""Opening a damaged queue directory: what is kept, what is counted lost, and what is logged."""

import logging
from pathlib import Path

import pytest

from mqferry._buffer import DiskBufferError, DiskQueue

RECORD = b"r" * 1000  # five to a 4096-byte segment


def three_segments(path):
    q = DiskQueue(path, segment_bytes=4096)
    assert q.append([RECORD + bytes([i]) for i in range(15)]) == list(range(15))
    q.close()
    segs = sorted(path.glob("*.seg"))
    assert [int(p.stem) for p in segs] == [0, 5, 10]
    return segs


def reopen(path):
    return DiskQueue(path, segment_bytes=4096)


def errors(caplog):
    return [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]


def ack_all(q):
    for seq, _ in q.recovered():
        q.ack(seq)


@pytest.mark.parametrize("damage", ["empty", "missing"])
def test_a_gap_between_segments_is_counted_and_the_mark_passes_it(tmp_path, caplog, damage):
    segs = three_segments(tmp_path)
    if damage == "empty":
        segs[1].write_bytes(b"")
    else:
        segs[1].unlink()
    q = reopen(tmp_path)
    assert q.lost_on_open == 5
    assert any("5 unacknowledged records lost (sequence numbers 5..9)" in m
               for m in errors(caplog))
    assert [s for s, _ in q.recovered()] == [0, 1, 2, 3, 4, 10, 11, 12, 13, 14]
    for s in [0, 1, 2, 3, 4, 10, 11, 12, 13, 14]:
        q.ack(s)
    assert q.pending == 0
    assert [p.name for p in tmp_path.glob("*.seg")] == [segs[2].name]  # old segments deleted
    caplog.clear()
    q.close()
    again = reopen(tmp_path)
    assert again.recovered() == [] and again.lost_on_open == 0 and errors(caplog) == []
    assert again.append([b"next"]) == [15]


def test_a_missing_first_segment_is_counted(tmp_path, caplog):
    segs = three_segments(tmp_path)
    segs[0].unlink()
    q = reopen(tmp_path)
    assert q.lost_on_open == 5
    assert [s for s, _ in q.recovered()] == list(range(5, 15))
    assert any("sequence numbers 0..4" in m for m in errors(caplog))


def test_a_segment_that_is_a_directory_is_set_aside(tmp_path, caplog):
    segs = three_segments(tmp_path)
    segs[1].unlink()
    segs[1].mkdir()
    q = reopen(tmp_path)
    assert [s for s, _ in q.recovered()] == [0, 1, 2, 3, 4, 10, 11, 12, 13, 14]
    assert (tmp_path / (segs[1].name + ".damaged")).is_dir()
    assert any(segs[1].name in m and "set aside" in m for m in errors(caplog))
    assert q.lost_on_open == 5 and len(q.problems) == 2  # the directory, and the gap it leaves


def test_an_unreadable_segment_is_set_aside(tmp_path, caplog, monkeypatch):
    segs = three_segments(tmp_path)
    read_bytes = Path.read_bytes

    def refuse(self):
        if self.name == segs[2].name:
            raise PermissionError(13, "Permission denied", str(self))
        return read_bytes(self)

    monkeypatch.setattr(Path, "read_bytes", refuse)
    q = reopen(tmp_path)
    assert [s for s, _ in q.recovered()] == list(range(10))
    assert any("Permission denied" in m and segs[2].name in m for m in errors(caplog))
    assert q.problems
    assert q.append([b"next"]) == [10]  # the set-aside segment's name is free again


def test_an_ack_mark_that_is_a_directory_means_nothing_acknowledged(tmp_path, caplog):
    q = DiskQueue(tmp_path, segment_bytes=4096)
    q.append([b"a", b"b"])
    q.ack(0)
    (tmp_path / "acked").unlink()
    (tmp_path / "acked").mkdir()
    q.close()
    again = reopen(tmp_path)
    assert [d for _, d in again.recovered()] == [b"a", b"b"]  # replayed rather than lost
    assert any("ack mark" in m and "replaying" in m for m in errors(caplog))
    again.ack(0)
    again.close()
    assert reopen(tmp_path).recovered() == [(1, b"b")]  # the mark works again


def test_a_directory_path_that_is_a_file_raises_one_clear_error(tmp_path):
    path = tmp_path / "queue"
    path.write_text("not a directory")
    with pytest.raises(DiskBufferError, match="is not a directory") as info:
        DiskQueue(path, segment_bytes=4096)
    assert str(path) in str(info.value)


def test_a_damaged_first_record_of_the_last_segment_loses_only_that_record(tmp_path, caplog):
    q = DiskQueue(tmp_path, segment_bytes=4096)
    q.append([b"record %d" % i for i in range(14)])
    q.close()
    [seg] = tmp_path.glob("*.seg")
    data = bytearray(seg.read_bytes())
    data[10] ^= 0xFF  # the body of record 0
    seg.write_bytes(bytes(data))
    again = reopen(tmp_path)
    assert [s for s, _ in again.recovered()] == list(range(1, 14))
    assert again.lost_on_open == 1
    assert not any("torn" in r.getMessage() for r in caplog.records)
    assert any("1 unacknowledged records lost (sequence numbers 0)" in m for m in errors(caplog))
    assert again.append([b"next"]) == [14]


def test_a_damaged_length_whose_body_is_intact_is_recovered(tmp_path):
    q = DiskQueue(tmp_path, segment_bytes=4096)
    q.append([b"one", b"two", b"three"])
    q.close()
    [seg] = tmp_path.glob("*.seg")
    data = bytearray(seg.read_bytes())
    data[11] ^= 0x40  # the length of record 1
    seg.write_bytes(bytes(data))
    again = reopen(tmp_path)
    assert [d for _, d in again.recovered()] == [b"one", b"two", b"three"]
    assert again.lost_on_open == 0


def test_a_damaged_record_in_a_middle_segment_says_how_many_were_lost(tmp_path, caplog):
    segs = three_segments(tmp_path)
    data = bytearray(segs[1].read_bytes())
    data[2 * 1009 + 500] ^= 0xFF  # the body of record 7
    segs[1].write_bytes(bytes(data))
    q = reopen(tmp_path)
    assert [s for s, _ in q.recovered()] == [s for s in range(15) if s != 7]
    assert q.lost_on_open == 1
    assert any(segs[1].name in m and "sequence numbers 7)" in m for m in errors(caplog))


def test_a_torn_record_at_the_end_is_a_warning_not_a_loss(tmp_path, caplog):
    q = DiskQueue(tmp_path, segment_bytes=4096)
    q.append([b"good"])
    q.close()
    [seg] = tmp_path.glob("*.seg")
    with seg.open("ab") as f:
        f.write(b"\x10\x00\x00\x00\x00\x00\x00\x00abc")  # a header and part of its body
    again = reopen(tmp_path)
    assert again.recovered() == [(0, b"good")]
    assert again.problems == [] and again.lost_on_open == 0 and errors(caplog) == []
    assert any("torn" in r.getMessage() for r in caplog.records)


@pytest.mark.parametrize("mark", ["99999999", "-5", "garbage"])
def test_an_ack_mark_out_of_range_replays_everything(tmp_path, caplog, mark):
    q = DiskQueue(tmp_path, segment_bytes=4096)
    q.append([b"a", b"b", b"c"])
    (tmp_path / "acked").write_text(mark)
    q.close()
    again = reopen(tmp_path)
    assert [s for s, _ in again.recovered()] == [0, 1, 2]
    assert any("ack mark" in m and "replaying" in m for m in errors(caplog))
    assert len(again.problems) == 1
    again.ack(0)
    again.ack(1)  # the mark moves again
    again.close()
    assert reopen(tmp_path).recovered() == [(2, b"c")]
