"""One Kafka record, its form in the disk buffer, and the clock its age is counted in.

The record's constructor and the clock's reading run for every message; this module is
compiled (scripts/compile.py), so both run as C.
"""

from __future__ import annotations

import struct
import time

from mqferry import Delivery
from mqferry_kafka_producer.render import Header

__all__ = ["RECORD_OVERHEAD", "ConnectedClock", "Record"]

_FIXED = struct.Struct("<qH")  # timestamp, topic length
_LEN = struct.Struct("<i")
_SHORT = struct.Struct("<H")
#: per-record bookkeeping counted against the limit (in :attr:`Record.size`)
RECORD_OVERHEAD = 64


class Record:
    """One Kafka record and the promise made about it.

    A plain class rather than a dataclass: compiled, its constructor runs as C, where a
    dataclass's generated ``__init__`` runs as Python (2.7% of the bridge's busy time at full
    load, benchmarks/RESULTS.md).
    """

    __slots__ = ("alone", "created", "delivery", "headers", "key", "partition", "queued_at",
                 "retries", "seq", "size", "timestamp", "topic", "value")

    # the fields in the order of a record, positional as they were in the dataclass
    def __init__(self, topic: str, key: bytes | None, value: bytes | None,  # noqa: PLR0917
                 timestamp: int, headers: list[Header], delivery: Delivery | None, *,
                 queued_at: float = 0.0, seq: int | None = None) -> None:
        self.topic = topic
        self.key = key
        self.value = value
        self.timestamp = timestamp
        self.headers = headers
        self.delivery = delivery
        #: the connected-time clock when the record was queued (see ``KafkaProducerAction``)
        self.queued_at = queued_at
        self.created = time.monotonic()
        self.seq = seq
        #: the Kafka partition, once chosen (see :class:`RecordBuffer`)
        self.partition: int | None = None
        self.retries = 0
        #: sent in a batch of its own (its batch was too large for the broker)
        self.alone = False
        hdr = 0
        for k, v in headers:
            hdr += len(k) + len(v)
        #: bytes counted against the buffer limit (computed once: it is read at every stage)
        self.size = (len(key or b"") + len(value or b"") + hdr + len(topic) + RECORD_OVERHEAD)

    def __repr__(self) -> str:
        return (f"Record(topic={self.topic!r}, partition={self.partition}, seq={self.seq}, "
                f"size={self.size}, retries={self.retries})")

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


class ConnectedClock:
    """Seconds spent connected to Kafka."""

    def __init__(self) -> None:
        self._total = 0.0
        self._since: float | None = None

    def connected(self, up: bool) -> None:
        """Record a change of connection state."""
        now = time.monotonic()
        if up and self._since is None:
            self._since = now
        elif not up and self._since is not None:
            self._total += now - self._since
            self._since = None

    def now(self) -> float:
        """The connected time so far."""
        extra = time.monotonic() - self._since if self._since is not None else 0.0
        return self._total + extra
