"""A cluster log on Kafka: one compacted single-partition topic, appended and tailed."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.errors import KafkaError

from mqferry import LogRecord, MqferryError, RetryLog
from mqferry_cluster.topics import Topics
from mqferry_kafka import close_client

log = logging.getLogger(__name__)

__all__ = ["KafkaLog"]


class KafkaLog:
    """The cluster log ``name``, on topic ``mqferry-<cluster>-<name>``.

    Args:
        name: which log.
        topics: makes the topic on first use.
        producer: the transport's producer (``None`` until it has started).
        options: aiokafka client keyword arguments for the readers.
        timeout: how long an append or an end lookup waits for Kafka, in seconds.
    """

    def __init__(self, name: str, topics: Topics, producer: Callable[[], AIOKafkaProducer | None],
                 options: dict[str, Any], *, timeout: float = 10.0) -> None:
        self._name = name
        self._topics = topics
        self.topic = topics.name(name)
        self._producer = producer
        self._options = options
        self._timeout = timeout
        self._tp = TopicPartition(self.topic, 0)

    @property
    def name(self) -> str:
        """Which log."""
        return self._name

    async def append(self, key: str, value: bytes | None) -> int:
        """Append a record; return its offset once every in-sync replica has it."""
        producer = self._producer()
        if producer is None:
            raise MqferryError(f"cluster log {self._name}: Kafka is not reachable yet")
        try:
            await self._topics.ensure(self._name)
            async with asyncio.timeout(self._timeout):
                meta = await producer.send_and_wait(self.topic, value, key=key.encode(),
                                                    partition=0)
        except (KafkaError, OSError, TimeoutError) as exc:
            raise MqferryError(f"cluster log {self._name}: append failed: "
                               f"{type(exc).__name__}: {exc}") from exc
        return int(meta.offset)

    async def end(self) -> int:
        """The offset the next record will get."""
        consumer = AIOKafkaConsumer(**self._options, enable_auto_commit=False)
        try:
            await self._topics.ensure(self._name)
            async with asyncio.timeout(self._timeout):
                await consumer.start()
            consumer.assign([self._tp])
            async with asyncio.timeout(self._timeout):
                ends = await consumer.end_offsets([self._tp])
        except (KafkaError, OSError, TimeoutError) as exc:
            raise MqferryError(f"cluster log {self._name}: cannot read its end: "
                               f"{type(exc).__name__}: {exc}") from exc
        finally:
            await close_client(consumer.stop(), f"cluster log {self._name}",
                               timeout=self._timeout)
        return int(ends[self._tp])

    async def read(self, start: int = 0) -> AsyncIterator[LogRecord]:
        """The records from ``start`` on, for ever; outages are waited out and resumed."""
        position = start
        retries = RetryLog(log, f"cluster log {self._name}: Kafka")
        delay = 0.5
        while True:
            consumer = AIOKafkaConsumer(**self._options, enable_auto_commit=False,
                                        auto_offset_reset="earliest")
            try:
                await self._topics.ensure(self._name)
                await consumer.start()
                consumer.assign([self._tp])
                consumer.seek(self._tp, position)
                retries.reset()
                delay = 0.5
                while True:
                    batch = await consumer.getmany(self._tp, timeout_ms=1000)
                    for msg in batch.get(self._tp, ()):
                        position = msg.offset + 1
                        key = msg.key.decode(errors="replace") if msg.key is not None else ""
                        yield LogRecord(msg.offset, key, msg.value)
            except (KafkaError, OSError, MqferryError) as exc:
                retries.failed(f"{type(exc).__name__}: {exc}", delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 10.0)
            finally:
                await close_client(consumer.stop(), f"cluster log {self._name}",
                                   timeout=self._timeout)

