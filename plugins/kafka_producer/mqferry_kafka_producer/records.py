"""Records waiting for Kafka: the action's buffer with its limits.

A record moves: offered -> (waiting while its partition is full, with ``overflow: block``) ->
admitted -> (persisted: fsync'd to disk, for disk and spilled hybrid records) -> ready -> in
flight -> done. Its delivery is secured when it is persisted, or when Kafka acknowledges it.

The buffer is kept per Kafka partition, as EMQX's (one queue per partition), so that
``per_partition_limit`` bounds each partition. A record's partition is chosen when it is
offered if the topic's partition count is known; otherwise (the first records of a topic,
records replayed from disk) it waits in its topic's *unplaced* queue, keyed ``(topic, None)``
and bounded by the same limit, until the count is looked up before sending.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Callable, Iterable
from pathlib import Path

from mqferry import DiskQueue
from mqferry_kafka_producer.config import BufferOptions
from mqferry_kafka_producer.ondisk import FoundOnDisk, decode, has_segments, read_disk
from mqferry_kafka_producer.record import Record

log = logging.getLogger(__name__)

#: records held back by ``overflow: block``. With at-least-once delivery their MQTT acks are
#: held, so the broker's in-flight window bounds them long before this; with at-most-once
#: nothing pushes back, and newer records beyond this are dropped (``dropped.queue_full``).
MAX_WAITING = 100_000


Drop = Callable[[Record, str], None]
#: a queue of the buffer: ``(topic, partition)``, or ``(topic, None)`` for unplaced records
Key = tuple[str, int | None]
#: the partition for a record whose topic's partition count is known, else ``None``
Place = Callable[[Record], int | None]


def _key(rec: Record) -> Key:
    return (rec.topic, rec.partition)


class RecordBuffer:
    """The records of one action, one queue per Kafka partition, with its limit and policy.

    Args:
        options: the action's ``buffer`` settings.
        directory: where disk segments live (disk and hybrid modes).
        on_drop: called for each record dropped (with the metric reason), to fail its delivery.
        place: chooses the partition of a record when it is offered (``None``: not known yet).
    """

    def __init__(self, options: BufferOptions, directory: Path, on_drop: Drop,
                 place: Place = lambda rec: None) -> None:
        self.options = options
        self.limit = options.per_partition_limit
        self._on_drop = on_drop
        self._place = place
        self.directory = directory
        #: the disk queue, once :meth:`open` (disk and hybrid modes; in memory mode only while
        #: it drains what a disk or hybrid buffer of the same name left there)
        self.disk: DiskQueue | None = None
        self.waiting: deque[Record] = deque()
        #: records admitted for the disk, oldest first; they leave it once fsync'd
        self.to_persist: list[Record] = []
        #: the write to the disk under way, if any (one at a time, see :meth:`persist`)
        self._writing: asyncio.Future[list[int]] | None = None
        #: records ready to send, per partition, oldest first
        self.ready: dict[Key, deque[Record]] = {}
        #: admitted bytes per partition: to persist, ready and in flight
        self.partition_bytes: dict[Key, int] = {}
        self.bytes = 0  # admitted, all partitions
        self.memory_bytes = 0  # admitted and not on disk
        #: records a previous run left on disk that could not be decoded, or were lost to
        #: damage in a queue closed since (see :meth:`take_lost`)
        self.undecodable = 0

    def open(self) -> bool:
        """Open the disk queue, unless it is open; whether one is open.

        Disk and hybrid modes always open it; memory mode only when the directory holds
        segment files (a disk or hybrid buffer of the same name left them), to send what they
        hold: it is closed again once drained, and new records stay in memory. Not done when
        the buffer is made: the action it replaces may still hold the directory (a disk queue
        has one owner). Records offered before wait in memory, unsecured.

        Raises:
            DiskBufferError: the directory cannot be used, or another queue holds it
                (:class:`~mqferry.DiskBufferInUseError`).
        """
        if self.disk is not None and not self.disk.closed:
            return True
        if self.options.mode == "memory" and not has_segments(self.directory):
            return False
        self.disk = DiskQueue(self.directory, segment_bytes=self.options.segment_bytes)
        return True

    def recover(self, clock: float) -> int:
        """Open the disk queue and queue the records a previous run left on it; how many.

        They go ahead of any record offered before (they are older), unplaced. On the event
        loop: :meth:`read_disk` in a worker thread, then :meth:`install`, keeps a large buffer's
        reading off it.

        Raises:
            DiskBufferError: as :meth:`open`.
        """
        disk = self.disk
        found = (decode(disk, clock) if disk is not None and not disk.closed
                 else self.read_disk(clock))
        return 0 if found is None else self.install(found)

    def read_disk(self, clock: float) -> FoundOnDisk | None:
        """:func:`~mqferry_kafka_producer.ondisk.read_disk` of this buffer's directory: safe in a
        worker thread."""
        return read_disk(self.options, self.directory, clock)

    def install(self, found: FoundOnDisk) -> int:
        """Take over the disk queue :meth:`read_disk` opened, and queue what it held; how many."""
        disk = self.disk = found.disk
        for seq, reason in found.undecodable:
            self.undecodable += 1
            log.error("disk buffer %s: record %d cannot be decoded (%s); it is left out",
                      disk.directory, seq, reason)
            disk.ack(seq)
        for rec in found.records:
            self._count(rec, rec.size)
        self.requeue(found.records)
        self._drained()
        return len(found.records)

    def _ack(self, seq: int) -> None:
        disk = self.disk
        if disk is not None:
            disk.ack(seq)
            self._drained()

    def _drained(self) -> None:
        """In memory mode, close the disk queue once everything it held is acknowledged."""
        disk = self.disk
        if disk is not None and self.options.mode == "memory" and not disk.pending:
            self.undecodable, disk.lost_on_open = self.undecodable + disk.lost_on_open, 0
            disk.close(clear=True)
            self.disk = None
            log.info("disk buffer %s: drained; the action buffers in memory", self.directory)

    def take_lost(self) -> int:
        """How many records the disk buffer lost to damage (found when it was opened, or not
        decodable), counted once."""
        lost, self.undecodable = self.undecodable, 0
        if self.disk is not None:
            lost, self.disk.lost_on_open = lost + self.disk.lost_on_open, 0
        return lost

    @property
    def queued(self) -> int:
        """Records not yet sent."""
        return (len(self.waiting) + len(self.to_persist)
                + sum(len(q) for q in self.ready.values()))

    def has_ready(self) -> bool:
        """Whether any record is ready to send."""
        return any(self.ready.values())

    def unsaved(self) -> int:
        """Queued records that are not on disk (waiting, to persist, or ready in memory)."""
        in_memory = sum(1 for q in self.ready.values() for r in q if r.seq is None)
        return len(self.waiting) + len(self.to_persist) + in_memory

    def oldest_created(self) -> float | None:
        """The creation time of the oldest queued record (waiting, to persist or ready)."""
        heads = [q[0].created for q in self.ready.values() if q]
        if self.to_persist:
            heads.append(self.to_persist[0].created)
        if self.waiting:
            heads.append(self.waiting[0].created)
        return min(heads) if heads else None

    def offer(self, rec: Record) -> None:
        """Admit ``rec``, or apply the overflow policy when its partition is full."""
        self._try_place(rec)
        if not self.waiting and self.options.mode == "memory":
            # the common case, inlined: one key, one lookup per table
            key = (rec.topic, rec.partition)
            size = rec.size
            used = self.partition_bytes.get(key, 0)
            if not used or used + size <= self.limit:
                self.partition_bytes[key] = used + size
                self.bytes += size
                self.memory_bytes += size
                q = self.ready.get(key)
                if q is None:
                    q = self.ready[key] = deque()
                q.append(rec)
                return
        if self.options.overflow == "drop_oldest":
            # Never holds intake: the oldest ready records make room. When the batches in
            # flight alone fill the partition (Kafka is slow to answer), the newest record is
            # admitted beside them; the next one replaces it. In flight is bounded (two
            # batches per partition), so the partition's bytes stay bounded too. Records still
            # on their way to the disk cannot be dropped: while the partition has some, a
            # record that does not fit is dropped itself.
            key = _key(rec)
            if not self._fits(rec):
                self.drop_oldest(key, rec.size, "dropped.queue_full")
                if not self._fits(rec) and any(_key(r) == key for r in self.to_persist):
                    self._on_drop(rec, "dropped.queue_full")
                    return
        elif self.waiting or not self._fits(rec):
            if len(self.waiting) >= MAX_WAITING:
                self._on_drop(rec, "dropped.queue_full")
                return
            self.waiting.append(rec)
            return
        self._admit(rec)

    def _try_place(self, rec: Record) -> None:
        # Unplaced records of the topic are older: placing this one first could put it ahead
        # of them in its partition. (A key is removed when its bytes return to zero.)
        if rec.partition is None and (rec.topic, None) not in self.partition_bytes:
            rec.partition = self._place(rec)

    def _fits(self, rec: Record) -> bool:
        used = self.partition_bytes.get(_key(rec), 0)
        return not used or used + rec.size <= self.limit

    def _count(self, rec: Record, n: int) -> None:
        key = _key(rec)
        left = self.partition_bytes.get(key, 0) + n
        if left:
            self.partition_bytes[key] = left
        else:
            del self.partition_bytes[key]
        self.bytes += n

    def _ready(self, rec: Record) -> deque[Record]:
        q = self.ready.get(_key(rec))
        if q is None:
            q = self.ready[_key(rec)] = deque()
        return q

    def _admit(self, rec: Record) -> None:
        self._count(rec, rec.size)
        mode = self.options.mode
        spill = mode == "disk" or (
            mode == "hybrid"
            and (self.to_persist or self.memory_bytes + rec.size > self.options.segment_bytes)
        )
        if spill:
            self.to_persist.append(rec)
        else:
            self.memory_bytes += rec.size
            self._ready(rec).append(rec)

    def _admit_waiting(self) -> None:
        waiting = self.waiting
        while waiting:
            head = waiting[0]
            self._try_place(head)
            if not self._fits(head):
                return
            self._admit(waiting.popleft())

    async def persist(self) -> None:
        """fsync the records waiting for the disk, secure them, and make them ready.

        The records stay in :attr:`to_persist` until the disk has them: when the write fails
        (``OSError``, the disk is full, say: raised to the caller) they are still there, in
        order, for the next attempt. One write at a time, and a write is never abandoned
        half-way: when the caller is cancelled, the write goes on in its thread and its
        records are settled when it ends, so that none is written twice.

        Raises:
            OSError: the disk queue could not write the records (nothing was secured).
        """
        disk = self.disk
        if disk is None:
            return
        while self._writing is not None:  # a write under way (its caller may be gone)
            await asyncio.wait([self._writing])
        batch: list[Record] = []
        frames: list[bytes] = []
        for rec in list(self.to_persist):
            try:
                frames.append(rec.encode())
            except Exception:  # more than 65,535 headers, say: it fails alone, not the queue
                self.to_persist.remove(rec)
                self._drop(rec, "dropped.unencodable")
                continue
            batch.append(rec)
        if not batch:
            return
        write = asyncio.ensure_future(asyncio.to_thread(disk.append, frames))
        self._writing = write
        write.add_done_callback(lambda f: self._written(batch, f))
        await asyncio.shield(write)  # the records are settled by _written, which runs first

    def _written(self, batch: list[Record], write: asyncio.Future[list[int]]) -> None:
        self._writing = None
        if write.cancelled() or write.exception() is not None:
            return  # the records stay at the head of to_persist
        del self.to_persist[: len(batch)]
        for rec, seq in zip(batch, write.result(), strict=True):
            rec.seq = seq
            if rec.delivery is not None:
                rec.delivery.secured()
                rec.delivery = None
            self._ready(rec).append(rec)

    def take(self, key: Key) -> list[Record]:
        """Every ready record of one partition (or unplaced queue), oldest first."""
        q = self.ready.pop(key, None)
        return list(q) if q else []

    def move(self, rec: Record, topic: str, partition: int) -> None:
        """Queue a taken record for another partition or topic (at the tail of its queue)."""
        self._count(rec, -rec.size)
        rec.topic, rec.partition = topic, partition
        self._count(rec, rec.size)
        self._ready(rec).append(rec)
        if self.waiting:
            self._admit_waiting()

    def requeue(self, records: Iterable[Record]) -> None:
        """Put records back at the head of their queues, keeping their order."""
        for rec in reversed(list(records)):
            self._ready(rec).appendleft(rec)

    def done(self, rec: Record) -> None:
        """``rec`` left the buffer (acknowledged, failed or dropped)."""
        key = (rec.topic, rec.partition)
        size = rec.size
        left = self.partition_bytes[key] - size
        if left:
            self.partition_bytes[key] = left
        else:
            del self.partition_bytes[key]
        self.bytes -= size
        if rec.seq is None:
            self.memory_bytes -= rec.size
        else:
            self._ack(rec.seq)
        if self.waiting:
            self._admit_waiting()

    def drop_oldest(self, key: Key, room: int, reason: str) -> int:
        """Drop ready records of one partition, oldest first, until ``room`` more bytes fit."""
        dropped = 0
        q = self.ready.get(key)
        while q and self.partition_bytes.get(key, 0) + room > self.limit:
            self._drop(q.popleft(), reason)
            dropped += 1
        return dropped

    def shed_memory(self, reason: str) -> int:
        """Drop the oldest half of each partition's queued in-memory records; how many."""
        shed = 0
        for key, q in self.ready.items():
            mem = [r for r in q if r.seq is None]
            victims = {id(r) for r in mem[: max(1, len(mem) // 2)]} if mem else set()
            if not victims:
                continue
            kept: deque[Record] = deque()
            for rec in q:
                if id(rec) in victims:
                    self._drop(rec, reason)
                else:
                    kept.append(rec)
            self.ready[key] = kept
            shed += len(victims)
        return shed

    def _drop(self, rec: Record, reason: str) -> None:
        self._count(rec, -rec.size)
        if rec.seq is None:
            self.memory_bytes -= rec.size
        else:
            self._ack(rec.seq)
        self._on_drop(rec, reason)

    def expire(self, older_than: float) -> int:
        """Drop ready records queued before the clock value ``older_than``; how many."""
        n = 0
        for q in self.ready.values():
            while q and q[0].queued_at < older_than:
                self._drop(q.popleft(), "dropped.expired")
                n += 1
        if n and self.waiting:
            self._admit_waiting()
        return n

    def close(self) -> None:
        """Close the disk queue: the directory is free for the next owner."""
        if self.disk is not None:
            self.disk.close()
