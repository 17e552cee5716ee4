"""The Kafka verifier: a confluent-kafka consumer reading a topic from its beginning."""

from __future__ import annotations

import threading
import time
import uuid
from typing import Any

from mqferry_bench.payload import decode
from mqferry_bench.stats import Tallied, Tally


class KafkaVerifier(Tallied):
    """Reads every partition of ``topic`` from the beginning and tallies every record.

    The records are assigned, not subscribed in a group, so nothing is committed and nothing
    else is disturbed.

    Args:
        bootstrap: Kafka bootstrap servers.
        topic: the topic to read.
    """

    def __init__(self, *, bootstrap: str, topic: str) -> None:
        try:
            from confluent_kafka import Consumer
        except ImportError as exc:  # pragma: no cover - depends on the environment
            raise RuntimeError("the Kafka verifier needs confluent-kafka: "
                               "pip install confluent-kafka") from exc
        self.tally = Tally()
        self.topic = topic
        self._consumer: Any = Consumer({
            "bootstrap.servers": bootstrap, "group.id": f"mqferry-bench-{uuid.uuid4().hex[:8]}",
            "enable.auto.commit": False, "auto.offset.reset": "earliest",
            "fetch.wait.max.ms": 10, "fetch.max.bytes": 16 * 1024 * 1024,
            # Broker outages are what the fault scenarios make: the tally shows their effect,
            # a connection error a second would only bury it.
            "log_level": 2,
            # Reconnect no faster than twice a second while a broker is down (see faults.py
            # in benchmarks/ on ports in the ephemeral range).
            "reconnect.backoff.ms": 500, "reconnect.backoff.max.ms": 2000,
        })
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="mqferry-bench-kafka-verify",
                                        daemon=True)
        self.error: BaseException | None = None

    def start(self, timeout: float = 30.0) -> None:
        """Assign every partition at the beginning and start reading in a thread."""
        from confluent_kafka import OFFSET_BEGINNING, TopicPartition

        meta = self._consumer.list_topics(self.topic, timeout=timeout)
        parts = meta.topics[self.topic].partitions
        if not parts:
            raise ValueError(f"Kafka topic {self.topic!r} does not exist")
        self._consumer.assign([TopicPartition(self.topic, p, OFFSET_BEGINNING) for p in parts])
        self._thread.start()

    def _run(self) -> None:
        consume, tally = self._consumer.consume, self.tally
        try:
            while not self._stop.is_set():
                # consume() waits for a full batch or the timeout, whichever comes first: a
                # short timeout keeps that wait out of the latency figures.
                batch = consume(num_messages=1000, timeout=0.005)
                now = time.time()
                for msg in batch:
                    if msg.error() is not None:
                        continue
                    stamp = decode(msg.value() or b"")
                    if stamp is None:
                        tally.add_foreign()
                    else:
                        tally.add(stamp.key, stamp.seq, stamp.sent_us, now)
        except BaseException as exc:  # reported by stop()
            self.error = exc

    def stop(self) -> None:
        """Stop reading and close the consumer."""
        self._stop.set()
        self._thread.join(10)
        self._consumer.close()
        if self.error is not None:
            raise RuntimeError(f"the Kafka verifier failed: {self.error}") from self.error

