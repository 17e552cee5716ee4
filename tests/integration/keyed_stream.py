"""A keyed record stream into Kafka at a steady rate, and its per-key tally at the far end.

The producer is librdkafka (confluent-kafka), which shares no code with mqferry. Record ``n`` of
key ``k`` has the value ``k:n``; key ``k<i>`` goes to partition ``i % partitions``, so every
partition carries keys and the tally can say which partition a gap or a duplicate came from.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass, field

from confluent_kafka import Producer


class KeyedProducer:
    """Produces ``count`` records round-robin over ``keys`` keys at ``rate`` records per second.

    Runs in a thread of its own (:meth:`start`); :meth:`join` waits until every record was sent
    and acknowledged (``acks=all``, idempotent), and raises if any delivery failed.
    """

    def __init__(self, bootstrap: str, topic: str, *, partitions: int, keys: int = 12,
                 count: int = 40_000, rate: float = 2000.0) -> None:
        self.topic, self.partitions, self.count, self.rate = topic, partitions, count, rate
        self.keys = [f"k{i}" for i in range(keys)]
        self.sent = 0
        self.acked: dict[str, int] = dict.fromkeys(self.keys, 0)
        self.errors: list[str] = []
        self.last_error_time: float | None = None
        self._producer = Producer({"bootstrap.servers": bootstrap, "acks": "all",
                                   "enable.idempotence": True, "linger.ms": 5,
                                   # a Kafka restart in a test must not fail the records
                                   "message.timeout.ms": 300_000,
                                   # connection refusals while Kafka is away are expected
                                   "log_level": 2})
        self._thread = threading.Thread(target=self._run, name="keyed-producer", daemon=True)

    def start(self) -> KeyedProducer:
        """Start producing."""
        self._thread.start()
        return self

    def _report(self, err: object, msg: object) -> None:
        if err is not None:
            self.errors.append(str(err))
            self.last_error_time = time.monotonic()
            return
        key = msg.key().decode()  # type: ignore[attr-defined]
        self.acked[key] += 1

    def _run(self) -> None:
        started = time.monotonic()
        seqs = dict.fromkeys(self.keys, 0)
        for n in range(self.count):
            i = n % len(self.keys)
            key = self.keys[i]
            while True:
                try:
                    self._producer.produce(self.topic, value=f"{key}:{seqs[key]}".encode(),
                                           key=key.encode(), partition=i % self.partitions,
                                           on_delivery=self._report)
                    break
                except BufferError:  # the local queue is full (Kafka away): wait for room
                    self._producer.poll(0.1)
            seqs[key] += 1
            self.sent += 1
            if n % 100 == 0:
                self._producer.poll(0)
                if self.rate:
                    ahead = started + self.sent / self.rate - time.monotonic()
                    if ahead > 0:
                        time.sleep(ahead)
        self._producer.flush(300)

    def join(self, timeout: float = 400.0) -> dict[str, int]:
        """Wait until every record is acknowledged; records per key."""
        self._thread.join(timeout)
        assert not self._thread.is_alive(), f"producer still running after {timeout}s"
        assert not self.errors, f"{len(self.errors)} records failed: {self.errors[:3]}"
        assert sum(self.acked.values()) == self.count, (self.acked, self.count)
        return dict(self.acked)


@dataclass
class KeyTally:
    """What arrived of one key: distinct sequence numbers and repeats."""

    seen: set[int] = field(default_factory=set)
    duplicated: int = 0


def tally(payloads: Iterable[bytes]) -> dict[str, KeyTally]:
    """Per key, the distinct records among ``payloads`` (values ``key:n``) and the repeats."""
    out: dict[str, KeyTally] = {}
    for payload in payloads:
        key, _, seq = payload.decode().partition(":")
        t = out.setdefault(key, KeyTally())
        n = int(seq)
        if n in t.seen:
            t.duplicated += 1
        else:
            t.seen.add(n)
    return out


def missing(counts: dict[str, int], got: dict[str, KeyTally]) -> dict[str, int]:
    """Per key, how many of the ``counts[key]`` records never arrived (only keys missing some)."""
    out = {}
    for key, n in counts.items():
        seen = got.get(key, KeyTally()).seen
        lost = n - len(seen & set(range(n)))
        if lost:
            out[key] = lost
    return out


def summary(counts: dict[str, int], got: dict[str, KeyTally]) -> str:
    """One line per key: produced, distinct delivered, duplicates."""
    lines = [f"{'key':>6} {'produced':>9} {'delivered':>9} {'dup':>6}"]
    for key, n in counts.items():
        t = got.get(key, KeyTally())
        lines.append(f"{key:>6} {n:>9} {len(t.seen):>9} {t.duplicated:>6}")
    total = sum(counts.values())
    lines.append(f"{'all':>6} {total:>9} {sum(len(t.seen) for t in got.values()):>9} "
                 f"{sum(t.duplicated for t in got.values()):>6}")
    return "\n".join(lines)


class KeyedPublisher:
    """Publishes ``count`` QoS 1 messages round-robin over ``keys`` topics at ``rate`` per second.

    Message ``n`` of key ``k`` goes to ``<prefix>/<k>`` with the payload ``k:n`` (the same form as
    :class:`KeyedProducer`, so :func:`tally` reads both). paho-mqtt, sharing no code with
    mqferry; a persistent session of its own, so nothing is dropped while the broker queues.
    """

    def __init__(self, host: str, port: int, prefix: str, *, keys: int = 12,
                 count: int = 20_000, rate: float = 1000.0) -> None:
        import paho.mqtt.client as mqtt
        from paho.mqtt.enums import CallbackAPIVersion

        self.prefix, self.count, self.rate = prefix, count, rate
        self.keys = [f"k{i}" for i in range(keys)]
        self.sent: dict[str, int] = dict.fromkeys(self.keys, 0)
        self._acked = 0
        self._lock = threading.Lock()
        self._client = mqtt.Client(CallbackAPIVersion.VERSION2,
                                   client_id=f"keyed-pub-{prefix.replace('/', '-')}",
                                   protocol=mqtt.MQTTv5)
        self._client.max_inflight_messages_set(1000)
        self._client.max_queued_messages_set(0)
        self._client.on_publish = self._on_publish
        self._client.connect(host, port)
        self._client.loop_start()
        self._thread = threading.Thread(target=self._run, name="keyed-publisher", daemon=True)

    def _on_publish(self, *_args: object) -> None:
        with self._lock:
            self._acked += 1

    @property
    def acked(self) -> int:
        """Messages the broker acknowledged so far."""
        with self._lock:
            return self._acked

    def start(self) -> KeyedPublisher:
        """Start publishing."""
        self._thread.start()
        return self

    def _run(self) -> None:
        started = time.monotonic()
        for n in range(self.count):
            key = self.keys[n % len(self.keys)]
            self._client.publish(f"{self.prefix}/{key}", f"{key}:{self.sent[key]}".encode(),
                                 qos=1)
            self.sent[key] += 1
            ahead = started + (n + 1) / self.rate - time.monotonic()
            if ahead > 0 and n % 20 == 0:
                time.sleep(ahead)

    def join(self, timeout: float = 300.0) -> dict[str, int]:
        """Wait until every message is acknowledged by the broker; messages per key."""
        self._thread.join(timeout)
        deadline = time.monotonic() + timeout
        while self.acked < self.count and time.monotonic() < deadline:
            time.sleep(0.1)
        self._client.disconnect()
        self._client.loop_stop()
        assert self.acked == self.count, f"{self.acked} of {self.count} acknowledged"
        return dict(self.sent)
