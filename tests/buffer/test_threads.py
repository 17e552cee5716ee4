"""Appends in a worker thread, acknowledgements and close on the event loop's thread: the state
they share changes under a lock, and neither waits for the other's disk."""

import queue
import random
import sys
import threading

import pytest

from mqferry._buffer import DiskBufferError, DiskQueue


def firsts(path):
    return sorted(int(p.stem) for p in path.glob("*.seg"))


@pytest.fixture
def busy_switching():
    # switch threads as often as possible, so that appends and acks interleave finely
    before = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    yield
    sys.setswitchinterval(before)


def test_appends_in_a_thread_and_concurrent_acks_lose_and_duplicate_nothing(tmp_path,
                                                                            busy_switching):
    rng = random.Random(7)
    q = DiskQueue(tmp_path, segment_bytes=4096)  # about ten records to a segment
    appended: queue.Queue[list[int] | None] = queue.Queue()
    batches = [rng.randint(1, 12) for _ in range(300)]

    def appender():
        n = 0
        for size in batches:
            appended.put(q.append([b"%06d" % (n + i) + b"x" * 400 for i in range(size)]))
            n += size
        appended.put(None)

    thread = threading.Thread(target=appender)
    thread.start()
    seen: list[int] = []
    unacked: set[int] = set()
    kept: set[int] = set()  # never acknowledged: must come back after a restart
    while (seqs := appended.get(timeout=30)) is not None:
        seen += seqs
        unacked.update(seqs)
        for seq in rng.sample(sorted(unacked), k=len(unacked) // 2):  # out of order
            unacked.discard(seq)
            if rng.random() < 0.02:
                kept.add(seq)
            else:
                q.ack(seq)
            # segments are deleted from the front only: the first left holds the oldest record
            # not acknowledged, whatever the appender is doing meanwhile
            oldest = min(unacked | kept, default=None)
            if oldest is not None:
                assert firsts(tmp_path) and firsts(tmp_path)[0] <= oldest
    thread.join()
    assert seen == list(range(sum(batches)))  # none twice, none skipped
    kept |= unacked
    assert q.pending == len(kept)
    q.close()
    again = DiskQueue(tmp_path, segment_bytes=4096)
    assert again.lost_on_open == 0 and again.problems == []
    back = again.recovered()
    # everything from the oldest record not acknowledged comes back (the mark stops there:
    # records acknowledged after it are replayed too, at least once), and nothing before it
    assert [s for s, _ in back] == list(range(min(kept), len(seen)))
    assert all(data.startswith(b"%06d" % s) for s, data in back)


def test_close_during_an_append_waits_for_it_without_blocking(tmp_path):
    entered, release = threading.Event(), threading.Event()
    blocking = False

    def write(fd, data):
        if blocking:
            entered.set()
            assert release.wait(10)
        import os

        return os.write(fd, data)

    q = DiskQueue(tmp_path, segment_bytes=4096, write=write)
    assert q.append([b"one"]) == [0]  # the segment is open for the next append
    blocking = True
    result: list[object] = []
    thread = threading.Thread(target=lambda: result.append(q.append([b"two"])))
    thread.start()
    assert entered.wait(10)
    q.close()  # returns at once: the append under way closes the segment when it ends
    with pytest.raises(DiskBufferError, match="is in use by this process"):
        DiskQueue(tmp_path, segment_bytes=4096)  # and gives up the directory then, not before
    release.set()
    thread.join(10)
    assert result == [[1]]
    with pytest.raises(DiskBufferError, match="the queue is closed"):
        q.append([b"three"])
    q.ack(0)  # ignored: the directory is the next owner's, who replays the record
    again = DiskQueue(tmp_path, segment_bytes=4096)
    assert [d for _, d in again.recovered()] == [b"one", b"two"]


def test_acknowledging_a_record_never_appended_is_refused(tmp_path):
    q = DiskQueue(tmp_path, segment_bytes=4096)
    assert q.append([b"a"]) == [0]
    with pytest.raises(ValueError, match="cannot acknowledge record 1: it was never appended"):
        q.ack(1)
    assert q.append([b"b"]) == [1]
    q.ack(0)
    q.close()
    assert DiskQueue(tmp_path, segment_bytes=4096).recovered() == [(1, b"b")]


def test_segments_are_kept_while_the_ack_mark_cannot_be_written(tmp_path, caplog):
    q = DiskQueue(tmp_path, segment_bytes=4096)
    big = b"x" * 5000  # one to a segment
    seqs = q.append([big, big, big])
    assert firsts(tmp_path) == [0, 1, 2]
    (tmp_path / "acked.tmp").mkdir()  # the mark cannot be written
    q.ack(seqs[0])
    q.ack(seqs[1])
    assert firsts(tmp_path) == [0, 1, 2]  # deleted, their acks would be forgotten as losses
    assert any("cannot write the ack mark" in m for m in caplog.messages)
    q.close()
    caplog.clear()
    again = DiskQueue(tmp_path, segment_bytes=4096)
    assert again.lost_on_open == 0 and again.problems == []
    assert [s for s, _ in again.recovered()] == [0, 1, 2]  # replayed: at least once
    (tmp_path / "acked.tmp").rmdir()
    again.ack(0)
    again.ack(1)
    assert firsts(tmp_path) == [2]  # the mark written, the finished segments go
