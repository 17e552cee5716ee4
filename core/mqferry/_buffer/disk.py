"""A durable FIFO of opaque records in segment files, for buffers that survive ``kill -9``.

Layout of a queue directory::

    00000000000000000000.seg   records whose sequence numbers start at 0
    00000000000000004096.seg   the next segment
    acked                      the first sequence number not yet acknowledged

A record on disk is ``length (u32) | crc32 (u32) | bytes``. :meth:`DiskQueue.append` writes a
group of records and fsyncs once, so a record returned from it is on disk. Records are
acknowledged out of order; the ``acked`` mark moves over the leading run of acknowledged records
and whole segments behind it are deleted. On open, a torn record at the end of the last segment
(a crash mid-write) is cut off, and every record from the mark on is replayed; records that were
acknowledged after the mark was last written come back once more (at-least-once).
"""

from __future__ import annotations

import logging
import os
import struct
import zlib
from collections.abc import Iterator
from pathlib import Path

log = logging.getLogger(__name__)

_HEADER = struct.Struct("<II")
_SUFFIX = ".seg"


class DiskQueue:
    """Append-only segments with an acknowledgement mark.

    Args:
        directory: the queue's own directory (created if missing).
        segment_bytes: start a new segment file after this many bytes.
    """

    def __init__(self, directory: Path, *, segment_bytes: int) -> None:
        self.directory = directory
        self.segment_bytes = max(segment_bytes, 4096)
        directory.mkdir(parents=True, exist_ok=True)
        self._mark_file = directory / "acked"
        self._acked_upto = self._read_mark()
        self._done: set[int] = set()
        self._segments: list[int] = sorted(
            int(p.stem) for p in directory.glob(f"*{_SUFFIX}") if p.stem.isdigit()
        )
        self._next_seq = self._acked_upto
        self._writer: int | None = None
        self._writer_bytes = 0
        self._recovered = list(self._scan())
        if self._recovered:
            self._next_seq = self._recovered[-1][0] + 1

    # -- public ---------------------------------------------------------------------------

    @property
    def pending(self) -> int:
        """Records appended and not yet acknowledged."""
        return self._next_seq - self._acked_upto - len(self._done)

    def recovered(self) -> list[tuple[int, bytes]]:
        """The unacknowledged records found on open, in order (returned once)."""
        out, self._recovered = self._recovered, []
        return out

    def append(self, records: list[bytes]) -> list[int]:
        """Write ``records`` and fsync; return their sequence numbers."""
        seqs = []
        chunks: list[bytes] = []
        for data in records:
            if self._writer is None or self._writer_bytes >= self.segment_bytes:
                self._flush(chunks)
                chunks = []
                self._rotate()
            frame = _HEADER.pack(len(data), zlib.crc32(data)) + data
            chunks.append(frame)
            self._writer_bytes += len(frame)
            seqs.append(self._next_seq)
            self._next_seq += 1
        self._flush(chunks)
        if self._writer is not None:
            os.fsync(self._writer)
        return seqs

    def ack(self, seq: int) -> None:
        """Acknowledge one record; advance the mark and delete finished segments."""
        if seq < self._acked_upto:
            return
        self._done.add(seq)
        moved = False
        while self._acked_upto in self._done:
            self._done.discard(self._acked_upto)
            self._acked_upto += 1
            moved = True
        if moved:
            self._write_mark()
            self._drop_finished_segments()

    def close(self) -> None:
        """Close the segment being written."""
        if self._writer is not None:
            os.close(self._writer)
            self._writer = None

    # -- internals ------------------------------------------------------------------------

    def _path(self, first_seq: int) -> Path:
        return self.directory / f"{first_seq:020d}{_SUFFIX}"

    def _flush(self, chunks: list[bytes]) -> None:
        if chunks and self._writer is not None:
            os.write(self._writer, b"".join(chunks))

    def _rotate(self) -> None:
        self.close()
        first = self._next_seq
        self._writer = os.open(self._path(first), os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        self._writer_bytes = 0
        if first not in self._segments:
            self._segments.append(first)
            # the new file's directory entry must survive a crash too
            dir_fd = os.open(self.directory, os.O_RDONLY)
            try:
                os.fsync(dir_fd)
            finally:
                os.close(dir_fd)

    def _read_mark(self) -> int:
        try:
            return int(self._mark_file.read_text().strip() or 0)
        except FileNotFoundError:
            return 0
        except ValueError:
            log.warning("disk buffer %s: unreadable ack mark; replaying everything",
                        self.directory)
            return 0

    def _write_mark(self) -> None:
        tmp = self._mark_file.with_suffix(".tmp")
        tmp.write_text(str(self._acked_upto))
        tmp.replace(self._mark_file)

    def _drop_finished_segments(self) -> None:
        # A segment is finished when the next one starts at or before the mark.
        while len(self._segments) > 1 and self._segments[1] <= self._acked_upto:
            first = self._segments.pop(0)
            self._path(first).unlink(missing_ok=True)

    def _scan(self) -> Iterator[tuple[int, bytes]]:
        for i, first in enumerate(self._segments):
            path = self._path(first)
            data = path.read_bytes()
            pos, seq = 0, first
            while pos + _HEADER.size <= len(data):
                length, crc = _HEADER.unpack_from(data, pos)
                body = data[pos + _HEADER.size : pos + _HEADER.size + length]
                if len(body) < length or zlib.crc32(body) != crc:
                    break
                if seq >= self._acked_upto:
                    yield seq, body
                pos += _HEADER.size + length
                seq += 1
            if pos < len(data):
                if i == len(self._segments) - 1:
                    log.warning("disk buffer %s: cutting a torn record at the end of %s",
                                self.directory, path.name)
                    with path.open("r+b") as f:
                        f.truncate(pos)
                else:
                    log.error("disk buffer %s: corrupt record in %s at byte %d; the rest of "
                              "that segment is skipped", self.directory, path.name, pos)
                    # Unreadable records can never be acknowledged; let the mark pass them.
                    self._done.update(range(seq, self._segments[i + 1]))
            self._next_seq = max(self._next_seq, seq)
