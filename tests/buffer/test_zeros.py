"""Runs of zero bytes in segments: never records. At the end of the segment being written they
are a torn tail (cut off, nothing lost); anywhere else they are damage (counted as lost)."""

import logging

import pytest

from mqferry._buffer import DiskQueue
from mqferry._buffer.segment import frame

RECORD = b"r" * 1000  # five to a 4096-byte segment, 1008 bytes each on disk


def records(n, start=0):
    return [RECORD + b"%d" % i for i in range(start, start + n)]


def reopen(path):
    return DiskQueue(path, segment_bytes=4096)


def errors(caplog):
    return [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]


def one_segment(path, n):
    q = reopen(path)
    assert q.append(records(n)) == list(range(n))
    q.close()
    [seg] = path.glob("*.seg")
    return seg


@pytest.mark.parametrize("zeros", [3, 8, 4096])
def test_zeros_at_the_end_of_the_last_segment_are_cut_off_as_a_torn_tail(tmp_path, caplog, zeros):
    seg = one_segment(tmp_path, 3)
    size = seg.stat().st_size
    with seg.open("ab") as f:
        f.write(bytes(zeros))  # the file was extended, its data never written
    q = reopen(tmp_path)
    assert q.recovered() == list(enumerate(records(3)))  # exactly the records, no empty ones
    assert q.lost_on_open == 0 and q.problems == [] and errors(caplog) == []
    assert any("torn tail" in m and "zero bytes" in m for m in caplog.messages)
    assert seg.stat().st_size == size
    assert q.append([b"next"]) == [3]
    q.close()
    caplog.clear()
    again = reopen(tmp_path)
    assert again.recovered() == [*enumerate(records(3)), (3, b"next")]
    assert again.lost_on_open == 0 and again.problems == [] and caplog.messages == []


def test_a_segment_of_nothing_but_zeros_holds_no_record(tmp_path, caplog):
    (tmp_path / f"{0:020d}.seg").write_bytes(bytes(4096))
    q = reopen(tmp_path)
    assert q.recovered() == []
    assert q.lost_on_open == 0 and q.problems == [] and errors(caplog) == []
    assert q.pending == 0
    assert q.append([b"first"]) == [0]
    q.close()
    assert reopen(tmp_path).recovered() == [(0, b"first")]


def test_zeros_over_a_record_between_records_lose_that_record_only(tmp_path, caplog):
    seg = one_segment(tmp_path, 5)
    data = bytearray(seg.read_bytes())
    data[2 * 1009 : 3 * 1009] = bytes(1009)  # record 2, header and body
    seg.write_bytes(bytes(data))
    q = reopen(tmp_path)
    assert [s for s, _ in q.recovered()] == [0, 1, 3, 4]
    assert q.lost_on_open == 1
    assert any("1 unacknowledged records lost (sequence numbers 2)" in m for m in errors(caplog))
    assert q.append([b"next"]) == [5]


def test_zeros_between_records_are_damage_not_records(tmp_path, caplog):
    seg = tmp_path / f"{0:020d}.seg"
    seg.write_bytes(frame(b"one") + bytes(64) + frame(b"two"))
    q = reopen(tmp_path)
    assert [d for _, d in q.recovered()] == [b"one", b"two"]
    assert q.lost_on_open == 1  # damage counts as one lost record, the fewest it can be
    assert len(q.problems) == 1 and "damaged records (at bytes 11)" in q.problems[0]


def test_zeros_at_the_end_of_an_earlier_segment_are_damage(tmp_path, caplog):
    q = reopen(tmp_path)
    q.append(records(15))
    q.close()
    segs = sorted(tmp_path.glob("*.seg"))
    assert [int(p.stem) for p in segs] == [0, 5, 10]
    data = bytearray(segs[0].read_bytes())
    data[4 * 1009 :] = bytes(len(data) - 4 * 1009)  # record 4, the last of segment 0
    segs[0].write_bytes(bytes(data))
    segs[1].write_bytes(bytes(segs[1].stat().st_size))  # all of segment 5
    again = reopen(tmp_path)
    assert [s for s, _ in again.recovered()] == [0, 1, 2, 3, 10, 11, 12, 13, 14]
    assert again.lost_on_open == 6
    assert any("sequence numbers 4)" in m for m in errors(caplog))
    # segment 5 reads as one damaged record, and the rest of it as a gap before segment 10
    assert any("sequence numbers 5)" in m for m in errors(caplog))
    assert any("sequence numbers 6..9)" in m for m in errors(caplog))
    assert not any("torn" in m for m in caplog.messages)
    for s in [0, 1, 2, 3, 10, 11, 12, 13, 14]:
        again.ack(s)
    assert again.pending == 0
    assert [p.name for p in tmp_path.glob("*.seg")] == [segs[2].name]


def test_an_empty_record_is_refused_and_nothing_is_written(tmp_path):
    q = reopen(tmp_path)
    with pytest.raises(ValueError, match="record 1 of the 2 appended is empty"):
        q.append([b"a", b""])
    assert list(tmp_path.glob("*.seg")) == [] and q.pending == 0
    assert q.append([b"a"]) == [0]
    with pytest.raises(ValueError, match="empty record"):
        frame(b"")


@pytest.mark.parametrize("body", [b"two", b"t" * 256, b"t" * 65536])
def test_a_long_run_of_zeros_is_passed_over_in_one_step(tmp_path, monkeypatch, body):
    # A record's length field may start with zero bytes (256 is 00 01 00 00 on disk): the
    # record right after the run is still found, whatever its length.
    from mqferry._buffer import segment

    tries = []
    record_at = segment._record_at

    def counted(data, pos):
        tries.append(pos)
        return record_at(data, pos)

    monkeypatch.setattr(segment, "_record_at", counted)
    seg = tmp_path / f"{0:020d}.seg"
    seg.write_bytes(frame(b"one") + bytes(1 << 20) + frame(body) + frame(b"three"))
    q = reopen(tmp_path)
    assert [d for _, d in q.recovered()] == [b"one", body, b"three"]
    assert q.lost_on_open == 1 and len(q.problems) == 1
    # one try per offset would be over a million
    assert len(tries) < 50


def test_resynchronising_over_garbage_remembers_only_the_chains_it_walked():
    # Offsets where not even one record starts are never reached again (the scan moves past
    # them): remembering each of them cost memory per byte of damage (a 10 MiB run of zeros
    # held over a gigabyte while its segment was read).
    from mqferry._buffer import segment

    junk = bytes(range(1, 256)) * 64  # no record starts anywhere in it
    data = frame(b"one") + junk + frame(b"two") + frame(b"three")
    bad = set()
    start = len(frame(b"one"))
    assert segment._resync(data, start, bad) == start + len(junk)
    assert len(bad) < 10
