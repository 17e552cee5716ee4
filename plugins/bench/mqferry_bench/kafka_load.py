"""The Kafka load generator: confluent-kafka (librdkafka) producing benchmark payloads.

Each stream key is a record key, so that every stream stays in one partition and its order can be
checked. ``acks=all`` with idempotence: a record counts as published once Kafka acknowledged it.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from typing import Any

from mqferry_bench.payload import encode


@dataclass(frozen=True, slots=True)
class ProducerPlan:
    """What the Kafka generator sends.

    Attributes:
        bootstrap: Kafka bootstrap servers.
        topic: the topic it produces to.
        keys: the stream keys; messages go round-robin over them.
        count: messages to send in all, or ``None`` to send for ``duration`` seconds.
        duration: seconds to send when ``count`` is ``None``.
        rate: messages per second in all; 0 for as fast as possible.
        size: payload size in bytes.
        text_seqs: sequence numbers ``[start, stop)`` (per stream) sent as non-JSON text.
        oversize: payload sizes for particular sequence numbers (per stream).
        ack_timeout: seconds to wait for the last acknowledgements.
    """

    bootstrap: str
    topic: str
    keys: tuple[str, ...]
    count: int | None = None
    duration: float | None = None
    rate: float = 0.0
    size: int = 200
    text_seqs: tuple[int, int] = (0, 0)
    oversize: tuple[tuple[int, int], ...] = ()
    ack_timeout: float = 300.0


class _Acks:
    """Delivery reports, counted (served by ``poll``/``flush`` in the producing thread)."""

    def __init__(self) -> None:
        self.acked = 0
        self.errors = 0
        self.last_error = ""

    def __call__(self, err: Any, msg: Any) -> None:
        if err is None:
            self.acked += 1
        else:
            self.errors += 1
            self.last_error = str(err)


class _Ready:
    """librdkafka's statistics, read for one thing: is the producer ready to send to a topic?"""

    def __init__(self, topic: str) -> None:
        self.topic = topic
        self.stats: dict[str, Any] = {}

    def __call__(self, stats: str) -> None:
        self.stats = json.loads(stats)

    def ready(self) -> bool:
        """The idempotent producer has its producer id and the topic's partitions a leader."""
        if self.stats.get("eos", {}).get("idemp_state") != "Assigned":
            return False
        parts = self.stats.get("topics", {}).get(self.topic, {}).get("partitions", {})
        return any(int(n) >= 0 and p.get("leader", -1) >= 0 for n, p in parts.items())


def _producer(plan: ProducerPlan, ready: _Ready | None = None) -> Any:
    try:
        from confluent_kafka import Producer
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise RuntimeError("the Kafka load generator needs confluent-kafka: "
                           "pip install confluent-kafka") from exc
    stats: dict[str, Any] = ({} if ready is None else
                             {"statistics.interval.ms": 50, "stats_cb": ready})
    return Producer({
        **stats, "bootstrap.servers": plan.bootstrap, "acks": "all", "enable.idempotence": True,
        "log_level": 2,  # connection errors during a broker outage are expected
        "reconnect.backoff.ms": 500, "reconnect.backoff.max.ms": 2000,
        "linger.ms": 5, "queue.buffering.max.messages": 200_000,
        "message.max.bytes": 4 * 1024 * 1024, "message.timeout.ms": int(plan.ack_timeout * 1000),
    })


def produce(plan: ProducerPlan, shared: Any = None, go: Any = None) -> dict[str, Any]:
    """Send the plan's records; return per-key ``published`` counts, ``acked`` and ``errors``.

    Args:
        plan: what to send.
        shared: optional ``multiprocessing`` array of three signed 64-bit ints: sent, acked,
            and 1 once the producer exists.
        go: optional event to wait for before the first record.
    """
    ready = _Ready(plan.topic)
    producer = _producer(plan, ready)
    # Ready before the clock starts: an idempotent producer holds its first records until it
    # has a producer id and the topic's leader (150-450 ms here), and the first quarter second
    # of a run's records carried that wait as latency (the p99 of a 16,000-message run).
    producer.list_topics(plan.topic, timeout=30)
    deadline = time.monotonic() + 30
    while not ready.ready() and time.monotonic() < deadline:
        producer.poll(0.02)
    acks = _Acks()
    if shared is not None:
        shared[2] = 1
    if go is not None:
        go.wait()
    started = time.time()
    per_key = _send(plan, producer, acks, shared)
    finished = time.time()
    producer.flush(plan.ack_timeout)
    if shared is not None:
        shared[0], shared[1] = sum(per_key.values()), acks.acked
    return {"published": per_key, "acked": acks.acked, "errors": acks.errors,
            "last_error": acks.last_error, "started": started, "finished": finished}


def _send(plan: ProducerPlan, producer: Any, acks: _Acks, shared: Any) -> dict[str, int]:
    oversize = dict(plan.oversize)
    text_lo, text_hi = plan.text_seqs
    t0 = time.monotonic()
    stop_at = t0 + plan.duration if plan.count is None and plan.duration else None
    interval = 1.0 / plan.rate if plan.rate > 0 else 0.0
    per_key = dict.fromkeys(plan.keys, 0)
    sent = 0
    # Round-robin over the keys: record i of the run is sequence i // len(keys) of its stream.
    streams = [(k, k.encode()) for k in plan.keys]
    while plan.count is None or sent < plan.count:
        seq, index = divmod(sent, len(streams))
        key, raw_key = streams[index]
        if stop_at is not None and (sent & 63) == 0 and time.monotonic() >= stop_at:
            break
        if interval:
            ahead = t0 + sent * interval - time.monotonic()
            if ahead > 0.001:
                time.sleep(ahead)
        value = encode(key, seq, time.time_ns() // 1000, oversize.get(seq, plan.size),
                       json=not text_lo <= seq < text_hi)
        while True:
            try:
                producer.produce(plan.topic, value, raw_key, on_delivery=acks)
                break
            except BufferError:
                producer.poll(0.05)
        per_key[key] += 1
        sent += 1
        if (sent & 63) == 0:
            producer.poll(0)
            if shared is not None:
                shared[0], shared[1] = sent, acks.acked
    return per_key
