"""The dead-letter topic: records that cannot be processed, kept in Kafka with the reason.

The dead-letter record has the original key, value and headers, plus these headers:
``mqferry-error`` (the reason), ``mqferry-source`` (the source id) and ``mqferry-topic`` /
``mqferry-partition`` / ``mqferry-offset`` (where the record came from).
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError

from mqferry import DeliveryError
from mqferry_kafka import KafkaConnector

log = logging.getLogger(__name__)

#: Attempts before a dead-letter record is given up (counted as ``dead_letter.failed``).
ATTEMPTS = 5

#: The reason of a dead letter given up: counted, never dead-lettered again.
DEAD_LETTER_FAILED = "dead_letter.failed"


class DeadLetter:
    """Sends records that cannot be processed to a Kafka topic of the source's cluster.

    Args:
        connector: the source's connector (its connection settings are reused).
        topic: the dead-letter topic.
        source_id: ``kafka_consumer:<name>``, written into each record.
    """

    def __init__(self, *, connector: KafkaConnector, topic: str, source_id: str) -> None:
        self.topic = topic
        self.source_id = source_id
        self._connector = connector
        self._producer: AIOKafkaProducer | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    async def start(self) -> None:
        """Connect the producer.

        Raises:
            KafkaError: the cluster cannot be reached (the caller retries).
        """
        if self._producer is None:
            producer = AIOKafkaProducer(**self._connector.client_options("dead-letter"),
                                        acks="all")
            try:
                await producer.start()
            except BaseException:
                await producer.stop()
                raise
            self._producer = producer

    async def stop(self) -> None:
        """Wait briefly for sends in flight, then close. Idempotent."""
        if self._tasks:
            await asyncio.wait(set(self._tasks), timeout=5)
        producer, self._producer = self._producer, None
        if producer is not None:
            await producer.stop()

    def send(self, record: Any, reason: str) -> asyncio.Task[None]:
        """Start sending ``record`` with ``reason``; the task fails with
        :class:`~mqferry._errors.DeliveryError` (``dead_letter.failed``) after :data:`ATTEMPTS`."""
        headers = list(record.headers or ())
        headers += [
            ("mqferry-error", reason.encode()),
            ("mqferry-source", self.source_id.encode()),
            ("mqferry-topic", record.topic.encode()),
            ("mqferry-partition", str(record.partition).encode()),
            ("mqferry-offset", str(record.offset).encode()),
        ]
        task = asyncio.get_running_loop().create_task(
            self._send(record.key, record.value, headers),
            name=f"mqferry[{self.source_id}].dead_letter")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    async def _send(self, key: bytes | None, value: bytes | None,
                    headers: list[tuple[str, bytes]]) -> None:
        delay = 0.2
        last: Exception | None = None
        for _ in range(ATTEMPTS):
            producer = self._producer
            if producer is None:
                raise DeliveryError(DEAD_LETTER_FAILED, "the dead-letter producer is stopped")
            try:
                sent = await producer.send(self.topic, value=value, key=key, headers=headers)
                await sent
                return
            except KafkaError as exc:
                last = exc
                log.warning("dead-letter topic %s: %s; retrying in %.1fs", self.topic, exc, delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 5.0)
        raise DeliveryError(DEAD_LETTER_FAILED,
                            f"dead-letter topic {self.topic}: gave up after {ATTEMPTS} "
                            f"attempts: {last}")
