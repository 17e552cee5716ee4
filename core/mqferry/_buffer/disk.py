"""A durable FIFO of opaque records in segment files, for buffers that survive ``kill -9``.

Layout of a queue directory::

    00000000000000000000.seg   records whose sequence numbers start at 0
    00000000000000004096.seg   the next segment
    acked                      the first sequence number not yet acknowledged
    lock                       held (``flock``) by the one queue that has the directory open

A record on disk is ``length (u32) | crc32 (u32) | bytes`` (:mod:`.segment`).
:meth:`DiskQueue.append` writes a group of records and fsyncs, so a record returned from it is on
disk; an append that fails (a full disk) raises :class:`DiskBufferError` and leaves the files and
sequence numbers as they were, so the caller still holds the records and may try again. Records
are acknowledged out of order; the ``acked`` mark moves over the leading run of acknowledged
records and whole segments behind it are deleted. On open (:mod:`.recovery`), a torn record or a
run of zeros at the end of the last segment (a crash mid-write) is cut off, damage is counted in
:attr:`DiskQueue.lost_on_open` and :attr:`DiskQueue.problems`, and every record from the mark on
is replayed; records that were acknowledged after the mark was last written come back once more
(at-least-once). A queue owns its directory (:mod:`.lock`) from its opening to
:meth:`DiskQueue.close`: a second queue on it, in this process or another, is refused; a closed
queue appends nothing and its acknowledgements are ignored (the next owner replays those
records: at-least-once).

:meth:`DiskQueue.append` runs in a worker thread (it waits for fsync) while :meth:`DiskQueue.ack`
runs on the event loop. The state they share (the segment list, the sequence numbers, the mark)
changes only under one lock, held for bookkeeping and never for a write to a segment, so neither
waits for the other's disk: an append publishes a segment and its sequence numbers once they are
on disk, and an acknowledgement only deletes segments that are not the last one listed and whose
records are all acknowledged, so it never deletes a file an append is writing or one that holds
a record not yet acknowledged.
"""

from __future__ import annotations

import errno
import logging
import os
import threading
from collections.abc import Callable
from pathlib import Path

from mqferry._buffer.errors import DiskBufferError
from mqferry._buffer.lock import lock_directory, unlock_directory
from mqferry._buffer.recovery import (
    MARK,
    check_directory,
    count_pending,
    has_segments,
    open_directory,
    segment_files,
    segment_path,
)
from mqferry._buffer.segment import frame

log = logging.getLogger(__name__)

#: a segment to write to (its first sequence number, or None for the open one) and its frames
_Plan = list[tuple[int | None, list[bytes]]]


class DiskQueue:
    """Append-only segments with an acknowledgement mark.

    Args:
        directory: the queue's own directory (created if missing).
        segment_bytes: start a new segment file after this many bytes.
        write: the ``os.write`` to write segments with (a test passes one that fails part-way,
            as a full disk does).

    Raises:
        DiskBufferError: the directory cannot be used at all (it is a file, cannot be created,
            listed or written to), or another queue has it open (in this process or another:
            the message names it). Damaged files inside it do not raise: see ``problems``.
    """

    @staticmethod
    def check(directory: Path) -> None:
        """Create ``directory`` if missing and check that a queue can use it, without opening it.

        Raises:
            DiskBufferError: the directory cannot be created, listed or written to.
        """
        check_directory(directory)

    @staticmethod
    def has_segments(directory: Path) -> bool:
        """Whether ``directory`` holds segment files (``False`` when it does not exist);
        reading only.

        Raises:
            OSError: the directory cannot be read.
        """
        return has_segments(directory)

    @staticmethod
    def count(directory: Path) -> int:
        """How many unacknowledged records ``directory`` holds, reading only: no lock is taken
        and nothing is created or repaired (for a report on a directory no queue has open).
        0 when it cannot be read."""
        return count_pending(directory)

    def __init__(self, directory: Path, *, segment_bytes: int,
                 write: Callable[[int, bytes | memoryview], int] = os.write) -> None:
        self.directory = directory
        self.segment_bytes = max(segment_bytes, 4096)
        self._os_write = write
        self._mark_file = directory / MARK
        #: guards every attribute below shared by append and ack (see the module's docstring)
        self._lock = threading.Lock()
        #: one append at a time: two would write the same file
        self._append_lock = threading.Lock()
        check_directory(directory)
        self._owner: int | None = lock_directory(directory)
        try:
            found = open_directory(directory)
        except BaseException:
            self._release()
            raise
        #: unacknowledged records found lost when opening (by sequence numbers)
        self.lost_on_open = found.lost
        #: every problem found when opening, one line each (each also logged at ERROR)
        self.problems = found.problems
        self._acked_upto = found.acked
        self._next_seq = found.next_seq
        self._segments = found.segments
        self._holes = found.holes
        self._recovered = found.records
        self._done: set[int] = set()
        self._writer: int | None = None
        self._writer_bytes = 0
        #: an append is writing to ``_writer``: :meth:`close` leaves it to that append
        self._appending = False
        self._close_after_append = False
        #: closed: the directory belongs to whoever opens it next
        self.closed = False
        self._mark_failing = False
        if found.mark_moved and self._write_mark():
            self._delete(self._finished_segments())

    # -- public ---------------------------------------------------------------------------

    @property
    def pending(self) -> int:
        """Records appended and not yet acknowledged."""
        with self._lock:
            lost = sum(end - start for start, end in self._holes.items())
            return self._next_seq - self._acked_upto - len(self._done) - lost

    def recovered(self) -> list[tuple[int, bytes]]:
        """The unacknowledged records found on open, in order (returned once)."""
        out, self._recovered = self._recovered, []
        return out

    def append(self, records: list[bytes]) -> list[int]:
        """Write ``records`` and fsync; return their sequence numbers.

        Safe to call from any thread; appends run one at a time.

        Raises:
            DiskBufferError: nothing was written (a full disk, an I/O error); the queue is as
                before the call, and the same records may be appended again later.
            ValueError: a record is empty (no record can be: see :mod:`.segment`); nothing was
                written.
        """
        if not records:
            return []
        with self._append_lock:
            with self._lock:
                if self.closed:
                    raise DiskBufferError(self.directory, f"cannot write {len(records)} records: "
                                          "the queue is closed; they are still to be kept")
                self._appending = True
            try:
                return self._append(records)
            finally:
                with self._lock:
                    self._appending = False
                    if self._close_after_append:
                        self._close_after_append = False
                        self._close_writer()
                        self._release()

    def _append(self, records: list[bytes]) -> list[int]:
        # Only an append changes the writer and the sequence numbers, and appends run one at a
        # time, so they are read here without the lock; they are changed under it.
        plan, size = self._plan(records)
        created: list[tuple[int, int, int]] = []  # (first seq, fd, size before) of each opened
        try:
            for first, frames in plan:
                if first is None:
                    fd = self._writer
                    assert fd is not None
                else:
                    fd = os.open(segment_path(self.directory, first),
                                 os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
                    created.append((first, fd, os.fstat(fd).st_size))
                self._write_all(fd, b"".join(frames))
                os.fsync(fd)
            if created:
                self._fsync_directory()
        except OSError as exc:
            self._undo(plan[0][0] is None, created)
            raise DiskBufferError(
                self.directory, f"cannot write {len(records)} records "
                f"({exc.strerror or exc}); nothing was written and they are still to be kept",
                errno=exc.errno) from exc
        with self._lock:  # publish the segments and the sequence numbers, now on disk
            for first, fd, _ in created:  # the last one stays open, to write to next
                self._close_writer()
                self._writer = fd
                if first not in self._segments:
                    self._segments.append(first)
            self._writer_bytes = size + (created[-1][2] if created else 0)
            seqs = list(range(self._next_seq, self._next_seq + len(records)))
            self._next_seq += len(records)
        return seqs

    def ack(self, seq: int) -> None:
        """Acknowledge one record; advance the mark and delete finished segments.

        Raises:
            ValueError: ``seq`` was never returned by :meth:`append`: acknowledging it would
                let the mark pass a record appended later, losing it on a restart.
        """
        with self._lock:
            if seq < self._acked_upto or self.closed:
                return
            if seq >= self._next_seq:
                raise ValueError(f"disk buffer {self.directory}: cannot acknowledge record "
                                 f"{seq}: it was never appended (the next is {self._next_seq})")
            self._done.add(seq)
            moved = False
            while True:
                if self._acked_upto in self._done:
                    self._done.discard(self._acked_upto)
                    self._acked_upto += 1
                elif self._acked_upto in self._holes:  # records lost on open
                    self._acked_upto = self._holes.pop(self._acked_upto)
                else:
                    break
                moved = True
            # The mark is written under the lock, so that two acknowledgements cannot write
            # theirs out of order; it is a small write with no fsync.
            finished = self._finished_segments() if moved and self._write_mark() else []
        self._delete(finished)

    def close(self, *, clear: bool = False) -> None:
        """Close the segment being written and give up the directory (after the append under
        way, if any). Idempotent.

        ``clear``: when every record is acknowledged and no append is under way, delete the
        segment files too, so that the directory holds nothing for the next owner to open (a
        memory buffer that drained what a disk buffer left). The mark stays: the next queue
        there numbers on from it. Otherwise it is an ordinary close.
        """
        with self._lock:
            self.closed = True
            if self._appending:
                self._close_after_append = True
                return
            self._close_writer()
            if clear and not self._done and not self._holes and (
                    self._acked_upto == self._next_seq):
                self._clear()
            self._release()

    def _clear(self) -> None:
        # Under the lock, closed, every record acknowledged and the mark past them all (it is
        # written before any segment is deleted, see _finished_segments). Every segment file
        # goes, oldest first, including one an earlier deletion failed on: after each, what is
        # left is a queue whose first segment starts at or before the mark, as after any
        # acknowledgement, so a crash part-way replays nothing.
        try:
            if not self._write_mark():
                return
            for first in sorted(segment_files(self.directory)):
                segment_path(self.directory, first).unlink()
                self._fsync_directory()
            self._segments = []
        except OSError as exc:
            log.error("disk buffer %s: cannot delete the drained segments (%s); the next owner "
                      "opens them and finds nothing to send", self.directory,
                      exc.strerror or exc)

    # -- writing --------------------------------------------------------------------------

    def _plan(self, records: list[bytes]) -> tuple[_Plan, int]:
        """Split the frames over segments, without touching anything; and the last one's size."""
        plan: _Plan = []
        size = self._writer_bytes if self._writer is not None else None
        seq = self._next_seq
        for data in records:
            if not data:
                raise ValueError(f"disk buffer {self.directory}: record {seq - self._next_seq} "
                                 f"of the {len(records)} appended is empty, and no record can "
                                 "be (on disk it would read as zeros left by a crash); nothing "
                                 "was written")
            if size is None or size >= self.segment_bytes:
                plan.append((seq, []))
                size = 0
            elif not plan:
                plan.append((None, []))
            framed = frame(data)
            plan[-1][1].append(framed)
            size += len(framed)
            seq += 1
        assert size is not None
        return plan, size

    def _write_all(self, fd: int, data: bytes) -> None:
        view = memoryview(data)
        while view:
            n = self._os_write(fd, view)
            if n <= 0:
                raise OSError(errno.EIO, "a write wrote nothing")
            view = view[n:]

    def _undo(self, wrote_open: bool, created: list[tuple[int, int, int]]) -> None:
        """Put every file a failed append touched back as it was: no partial record, no new
        file. ``wrote_open``: it wrote to the open segment."""
        try:
            if wrote_open and self._writer is not None:
                os.ftruncate(self._writer, self._writer_bytes)
            for first, fd, before in created:
                os.ftruncate(fd, before)
                os.close(fd)
                if before == 0:
                    segment_path(self.directory, first).unlink()
        except OSError as exc:
            # Never append after a partial record: the next append starts a new segment, and
            # opening reads the partial one as a damaged record (nothing lost: it was never
            # returned from append).
            log.error("disk buffer %s: cannot undo a failed write (%s)", self.directory,
                      exc.strerror or exc)
            with self._lock:
                self._close_writer()

    def _close_writer(self) -> None:
        # under the lock
        if self._writer is not None:
            os.close(self._writer)
            self._writer = None

    def _release(self) -> None:
        # under the lock (or while nothing else can use the queue)
        if self._owner is not None:
            unlock_directory(self._owner)
            self._owner = None

    def _fsync_directory(self) -> None:
        # a new file's directory entry must survive a crash too
        dir_fd = os.open(self.directory, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)

    # -- the mark -------------------------------------------------------------------------

    def _write_mark(self) -> bool:
        """Write the mark (under the lock); whether it was written."""
        tmp = self._mark_file.with_suffix(".tmp")
        try:
            tmp.write_text(str(self._acked_upto))
            tmp.replace(self._mark_file)
        except OSError as exc:
            # The mark only saves replays: without it, more records come back after a restart.
            if not self._mark_failing:
                log.error("disk buffer %s: cannot write the ack mark (%s); acknowledged records "
                          "will be replayed after a restart", self.directory,
                          exc.strerror or exc)
            self._mark_failing = True
            return False
        self._mark_failing = False
        return True

    def _finished_segments(self) -> list[int]:
        """Take the finished segments off the list (under the lock), to delete.

        A segment is finished when the next one starts at or before the mark: every record in
        it is acknowledged. The last one listed is never finished: appends write to it.
        Called only once the mark is on disk: deleting a segment the mark on disk does not pass
        would make its records, acknowledged, count as lost after a restart.
        """
        finished = []
        while len(self._segments) > 1 and self._segments[1] <= self._acked_upto:
            finished.append(self._segments.pop(0))
        return finished

    def _delete(self, segments: list[int]) -> None:
        # Outside the lock: these are off the list, nothing else refers to them.
        for first in segments:
            try:
                segment_path(self.directory, first).unlink(missing_ok=True)
            except OSError as exc:
                log.error("disk buffer %s: cannot delete finished segment %d (%s)",
                          self.directory, first, exc.strerror or exc)
