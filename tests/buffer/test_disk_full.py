"""A full disk (ENOSPC) during an append leaves the queue exactly as it was before the append."""

import errno

import pytest

from mqferry._buffer import DiskBufferError, DiskQueue


class FillingDisk:
    """``os.write`` on a disk with ``room`` bytes left: a short write, then ENOSPC."""

    def __init__(self) -> None:
        self.room: int | None = None  # None: no limit

    def __call__(self, fd, data):
        import os

        if self.room is None:
            return os.write(fd, data)
        if self.room == 0:
            raise OSError(errno.ENOSPC, "No space left on device")
        n = os.write(fd, bytes(data[: self.room]))
        self.room -= n
        return n


def snapshot(path):
    return {p.name: p.read_bytes() for p in sorted(path.iterdir()) if p.is_file()}


def test_a_full_disk_fails_the_append_and_leaves_the_queue_as_it_was(tmp_path):
    disk = FillingDisk()
    q = DiskQueue(tmp_path, segment_bytes=4096, write=disk)
    assert q.append([b"one", b"two"]) == [0, 1]
    before = snapshot(tmp_path)
    disk.room = 13  # half of the next record fits
    with pytest.raises(DiskBufferError) as info:
        q.append([b"three", b"four"])
    assert info.value.errno == errno.ENOSPC
    assert isinstance(info.value, OSError)
    assert str(tmp_path) in str(info.value) and "nothing was written" in str(info.value)
    assert snapshot(tmp_path) == before  # no partial record left behind
    assert q.pending == 2
    disk.room = None  # space freed: the same records go in, with the next numbers
    assert q.append([b"three", b"four"]) == [2, 3]
    q.close()
    again = DiskQueue(tmp_path, segment_bytes=4096)
    assert [d for _, d in again.recovered()] == [b"one", b"two", b"three", b"four"]
    assert again.problems == [] and again.lost_on_open == 0


def test_a_full_disk_across_two_segments_leaves_no_partial_record_nor_empty_segment(tmp_path):
    disk = FillingDisk()
    q = DiskQueue(tmp_path, segment_bytes=4096, write=disk)
    big = b"x" * 3000
    q.append([b"first"])
    before = snapshot(tmp_path)
    disk.room = 2 * 3008 + 100  # two records fit in segment 0; the third, in a new segment, is cut
    with pytest.raises(DiskBufferError):
        q.append([big, big, big])
    assert snapshot(tmp_path) == before
    disk.room = 0
    with pytest.raises(DiskBufferError):
        q.append([big])
    assert snapshot(tmp_path) == before
    disk.room = None
    assert q.append([big, big, big]) == [1, 2, 3]
    assert len(snapshot(tmp_path)) == 3  # segment 0, segment 3 and the lock file
    q.close()
    again = DiskQueue(tmp_path, segment_bytes=4096)
    assert [s for s, _ in again.recovered()] == [0, 1, 2, 3]
    assert again.problems == [] and again.lost_on_open == 0


def test_a_full_disk_on_the_first_append_leaves_no_segment_file(tmp_path):
    disk = FillingDisk()
    disk.room = 0
    q = DiskQueue(tmp_path, segment_bytes=4096, write=disk)
    with pytest.raises(DiskBufferError):
        q.append([b"a"])
    assert list(tmp_path.glob("*.seg")) == []
    disk.room = None
    assert q.append([b"a"]) == [0]


def test_a_partial_record_that_cannot_be_cut_off_is_not_appended_after(tmp_path, monkeypatch,
                                                                         caplog):
    disk = FillingDisk()
    q = DiskQueue(tmp_path, segment_bytes=4096, write=disk)
    q.append([b"one"])
    disk.room = 5

    def refuse(fd, size):
        raise OSError(errno.EIO, "Input/output error")

    monkeypatch.setattr("os.ftruncate", refuse)
    with pytest.raises(DiskBufferError):
        q.append([b"two"])
    monkeypatch.undo()
    assert any("cannot undo" in r.getMessage() for r in caplog.records)
    disk.room = None
    assert q.append([b"two", b"three"]) == [1, 2]  # in a new segment, after the partial record
    caplog.clear()
    q.close()
    again = DiskQueue(tmp_path, segment_bytes=4096)
    assert [d for _, d in again.recovered()] == [b"one", b"two", b"three"]
    assert again.lost_on_open == 0 and again.problems == []
