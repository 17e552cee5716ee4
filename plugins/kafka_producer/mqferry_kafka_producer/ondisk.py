"""Reading what a disk buffer holds, off the event loop.

Opening a disk queue reads and checks every segment, and each record found is decoded: about
3 s for a million records. :func:`read_disk` does both without touching the action's buffer, so
it runs in a worker thread; :meth:`RecordBuffer.install
<mqferry_kafka_producer.records.RecordBuffer.install>` then queues the result on the loop.
"""

from __future__ import annotations

from pathlib import Path
from typing import NamedTuple

from mqferry import DiskBufferError, DiskQueue
from mqferry_kafka_producer.config import BufferOptions
from mqferry_kafka_producer.record import Record


class FoundOnDisk(NamedTuple):
    """What :func:`read_disk` found: the opened queue, its records (decoded), and the sequence
    numbers of those that could not be decoded, with why."""

    disk: DiskQueue
    records: list[Record]
    undecodable: list[tuple[int, str]]


def has_segments(directory: Path) -> bool:
    """Whether ``directory`` holds segment files (a disk or hybrid buffer left records there).

    Raises:
        DiskBufferError: the directory cannot be read.
    """
    try:
        return DiskQueue.has_segments(directory)
    except OSError as exc:
        raise DiskBufferError(directory, f"cannot be read: {exc.strerror or exc}",
                              errno=exc.errno) from exc


def read_disk(options: BufferOptions, directory: Path, clock: float) -> FoundOnDisk | None:
    """Open the disk queue in ``directory`` and decode what it holds. ``None`` in memory mode
    when the directory holds no segment files (there is nothing to send).

    Raises:
        DiskBufferError: the directory cannot be used, or another queue holds it.
    """
    if options.mode == "memory" and not has_segments(directory):
        return None
    return decode(DiskQueue(directory, segment_bytes=options.segment_bytes), clock)


def decode(disk: DiskQueue, clock: float) -> FoundOnDisk:
    """The records ``disk`` found when it was opened (once: see ``DiskQueue.recovered``),
    decoded."""
    kept: list[Record] = []
    bad: list[tuple[int, str]] = []
    for seq, data in disk.recovered():
        try:
            kept.append(Record.decode(data, seq=seq, queued_at=clock))
        except Exception as exc:  # its checksum held, its contents do not: not a record
            bad.append((seq, repr(exc)))
    return FoundOnDisk(disk, kept, bad)
