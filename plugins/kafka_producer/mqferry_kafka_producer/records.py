"""Records waiting for Kafka, their on-disk form, and the action's buffer with its limit.

A record moves: offered -> (waiting while the buffer is full, with ``overflow: block``) ->
admitted -> (persisted: fsync'd to disk, for disk and spilled hybrid records) -> ready -> in
flight -> done. Its delivery is secured when it is persisted, or when Kafka acknowledges it.
"""

from __future__ import annotations

import asyncio
import struct
import time
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

from mqferry import Delivery
from mqferry.buffer import DiskQueue
from mqferry_kafka_producer.config import BufferOptions
from mqferry_kafka_producer.render import Header

_FIXED = struct.Struct("<qH")  # timestamp, topic length
_LEN = struct.Struct("<i")
_SHORT = struct.Struct("<H")
_OVERHEAD = 64  # per-record bookkeeping counted against the limit
#: records held back by ``overflow: block``. With at-least-once delivery their MQTT acks are
#: held, so the broker's in-flight window bounds them long before this; with at-most-once
#: nothing pushes back, and newer records beyond this are dropped (``dropped.queue_full``).
MAX_WAITING = 100_000


@dataclass(slots=True)
class Record:
    """One Kafka record and the promise made about it."""

    topic: str
    key: bytes | None
    value: bytes | None
    timestamp: int
    headers: list[Header]
    delivery: Delivery | None
    #: the connected-time clock when the record was queued (see ``KafkaProducerAction``)
    queued_at: float = 0.0
    created: float = field(default_factory=time.monotonic)
    seq: int | None = None
    retries: int = 0
    #: sent in a batch of its own (its batch was too large for the broker)
    alone: bool = False
    #: bytes counted against the buffer limit (computed once: it is read at every stage)
    size: int = field(init=False)

    def __post_init__(self) -> None:
        hdr = sum(len(k) + len(v) for k, v in self.headers) if self.headers else 0
        self.size = (len(self.key or b"") + len(self.value or b"") + hdr + len(self.topic)
                     + _OVERHEAD)

    def encode(self) -> bytes:
        """The record's bytes for the disk buffer."""
        topic = self.topic.encode()
        parts = [_FIXED.pack(self.timestamp, len(topic)), topic]
        for blob in (self.key, self.value):
            parts.append(_LEN.pack(-1 if blob is None else len(blob)))
            parts.append(blob or b"")
        parts.append(_SHORT.pack(len(self.headers)))
        for k, v in self.headers:
            kb = k.encode()
            parts += [_SHORT.pack(len(kb)), kb, _LEN.pack(len(v)), v]
        return b"".join(parts)

    @classmethod
    def decode(cls, data: bytes, *, seq: int, queued_at: float) -> Record:
        """A record read back from the disk buffer (its MQTT message was acknowledged)."""
        ts, tlen = _FIXED.unpack_from(data, 0)
        pos = _FIXED.size
        topic = data[pos : pos + tlen].decode()
        pos += tlen
        blobs: list[bytes | None] = []
        for _ in range(2):
            (n,) = _LEN.unpack_from(data, pos)
            pos += _LEN.size
            blobs.append(None if n < 0 else data[pos : pos + n])
            pos += max(n, 0)
        (count,) = _SHORT.unpack_from(data, pos)
        pos += _SHORT.size
        headers = []
        for _ in range(count):
            (kl,) = _SHORT.unpack_from(data, pos)
            pos += _SHORT.size
            k = data[pos : pos + kl].decode()
            pos += kl
            (vl,) = _LEN.unpack_from(data, pos)
            pos += _LEN.size
            headers.append((k, data[pos : pos + vl]))
            pos += vl
        return cls(topic, blobs[0], blobs[1], ts, headers, None, queued_at=queued_at, seq=seq)


Drop = Callable[[Record, str], None]


class RecordBuffer:
    """The records of one action, with its mode, byte limit and overflow policy.

    Args:
        options: the action's ``buffer`` settings.
        directory: where disk segments live (disk and hybrid modes).
        on_drop: called for each record dropped (with the metric reason), to fail its delivery.
    """

    def __init__(self, options: BufferOptions, directory: Path, on_drop: Drop) -> None:
        self.options = options
        self.limit = options.per_partition_limit
        self._on_drop = on_drop
        self.disk = (
            DiskQueue(directory, segment_bytes=options.segment_bytes)
            if options.mode != "memory" else None
        )
        self.waiting: deque[Record] = deque()
        self.to_persist: list[Record] = []
        self.ready: deque[Record] = deque()
        self.bytes = 0  # admitted: to persist, ready and in flight
        self.memory_bytes = 0  # admitted and not on disk

    def recover(self, clock: float) -> int:
        """Queue the records a previous run left on disk; how many."""
        if self.disk is None:
            return 0
        found = self.disk.recovered()
        for seq, data in found:
            rec = Record.decode(data, seq=seq, queued_at=clock)
            self.bytes += rec.size
            self.ready.append(rec)
        return len(found)

    @property
    def queued(self) -> int:
        """Records not yet sent."""
        return len(self.waiting) + len(self.to_persist) + len(self.ready)

    def offer(self, rec: Record) -> None:
        """Admit ``rec``, or apply the overflow policy when the buffer is full."""
        if self.waiting or (self.bytes and self.bytes + rec.size > self.limit):
            if self.options.overflow == "drop_oldest":
                self.drop_oldest(rec.size, "dropped.queue_full")
            if self.waiting or (self.bytes and self.bytes + rec.size > self.limit):
                if len(self.waiting) >= MAX_WAITING:
                    self._on_drop(rec, "dropped.queue_full")
                    return
                self.waiting.append(rec)
                return
        self._admit(rec)

    def _admit(self, rec: Record) -> None:
        self.bytes += rec.size
        mode = self.options.mode
        spill = mode == "disk" or (
            mode == "hybrid"
            and (self.to_persist or self.memory_bytes + rec.size > self.options.segment_bytes)
        )
        if spill:
            self.to_persist.append(rec)
        else:
            self.memory_bytes += rec.size
            self.ready.append(rec)

    async def persist(self) -> None:
        """fsync the records waiting for the disk, secure them, and make them ready."""
        if not self.to_persist or self.disk is None:
            return
        batch, self.to_persist = self.to_persist, []
        seqs = await asyncio.to_thread(self.disk.append, [r.encode() for r in batch])
        for rec, seq in zip(batch, seqs, strict=True):
            rec.seq = seq
            if rec.delivery is not None:
                rec.delivery.secured()
                rec.delivery = None
            self.ready.append(rec)

    def take(self) -> list[Record]:
        """Every ready record, oldest first."""
        out = list(self.ready)
        self.ready.clear()
        return out

    def requeue(self, records: Iterable[Record]) -> None:
        """Put records back at the head of the queue, keeping their order."""
        self.ready.extendleft(reversed(list(records)))

    def done(self, rec: Record) -> None:
        """``rec`` left the buffer (acknowledged, failed or dropped)."""
        self.bytes -= rec.size
        if rec.seq is None:
            self.memory_bytes -= rec.size
        elif self.disk is not None:
            self.disk.ack(rec.seq)
        while self.waiting and (not self.bytes
                                or self.bytes + self.waiting[0].size <= self.limit):
            self._admit(self.waiting.popleft())

    def drop_oldest(self, room: int, reason: str) -> int:
        """Drop queued records, oldest first, until ``room`` more bytes fit; how many dropped."""
        dropped = 0
        while self.ready and self.bytes + room > self.limit:
            self._drop(self.ready.popleft(), reason)
            dropped += 1
        return dropped

    def shed_memory(self, reason: str) -> int:
        """Drop the oldest half of the queued in-memory records (memory pressure); how many."""
        mem = [r for r in self.ready if r.seq is None]
        victims = {id(r) for r in mem[: max(1, len(mem) // 2)]} if mem else set()
        kept: deque[Record] = deque()
        for rec in self.ready:
            if id(rec) in victims:
                self._drop(rec, reason)
            else:
                kept.append(rec)
        self.ready = kept
        return len(victims)

    def _drop(self, rec: Record, reason: str) -> None:
        self.bytes -= rec.size
        if rec.seq is None:
            self.memory_bytes -= rec.size
        elif self.disk is not None:
            self.disk.ack(rec.seq)
        self._on_drop(rec, reason)

    def expire(self, older_than: float) -> int:
        """Drop ready records queued before the clock value ``older_than``; how many."""
        n = 0
        while self.ready and self.ready[0].queued_at < older_than:
            self._drop(self.ready.popleft(), "dropped.expired")
            n += 1
        return n

    def close(self) -> None:
        """Close the disk queue."""
        if self.disk is not None:
            self.disk.close()
