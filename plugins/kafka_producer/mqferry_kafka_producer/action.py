"""The ``kafka_producer`` action: batches rule outputs per partition and writes them to Kafka.

Rule outputs are rendered at once (a render error fails only that output) and queued. One flush
task drains the queue into aiokafka batches (``create_batch``/``send_batch``), one per partition,
and each output's delivery is called back when Kafka acknowledged its batch. Retriable errors put
the batch back at the head of the queue; nothing is dropped silently.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import random
import time
from collections import defaultdict, deque
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError, MessageSizeTooLargeError
from aiokafka.partitioner import murmur2

from mqferry import Delivery, DeliveryError, HealthStatus, Status
from mqferry.kafka import KafkaConnector
from mqferry.metrics import action_metrics
from mqferry_kafka_producer.config import KafkaProducerActionConfig
from mqferry_kafka_producer.render import Header, RecordRenderer

log = logging.getLogger(__name__)

_ACKS: dict[str, int | str] = {"all_isr": "all", "leader_only": 1, "none": 0}
_UNKNOWN_TOPIC_TTL = 5.0


@dataclass(slots=True)
class _Record:
    topic: str
    key: bytes | None
    value: bytes | None
    timestamp: int
    headers: list[Header]
    delivery: Delivery
    #: sent in a batch of its own (after its batch was too large for the broker)
    alone: bool = False


class KafkaProducerAction:
    """Writes rule outputs to a Kafka topic.

    Args:
        name: the action name.
        config: its validated settings.
        connector: the ``kafka_producer`` connector it uses.
    """

    def __init__(
        self, *, name: str, config: KafkaProducerActionConfig, connector: KafkaConnector
    ) -> None:
        self.name = name
        self.id = f"kafka_producer:{name}"
        self.params = config.parameters
        self.connector = connector
        self.renderer = RecordRenderer(self.params)
        self.metrics = action_metrics(self.id)
        self.metrics.gauge("queuing", lambda: len(self._queue))
        self.metrics.gauge("inflight", lambda: self._inflight)
        self._queue: deque[_Record] = deque()
        self._wake = asyncio.Event()
        self._idle = asyncio.Event()
        self._idle.set()
        self._inflight = 0
        self._producer: AIOKafkaProducer | None = None
        self._task: asyncio.Task[None] | None = None
        self._partitions: dict[str, int] = {}
        self._unknown: dict[str, float] = {}
        self._rr = itertools.count()
        self._status = HealthStatus(Status.STOPPED)
        self._retry_delay = 0.0

    # -- data path ---------------------------------------------------------------------------

    def submit(self, output: Mapping[str, Any], delivery: Delivery) -> None:
        """Render ``output`` into a record and queue it; never blocks."""
        self.metrics.inc("matched")
        r = self.renderer
        try:
            record = _Record(r.render_topic(output), r.render_key(output), r.render_value(output),
                             r.render_timestamp(output), r.render_headers(output), delivery)
        except DeliveryError as exc:
            self._fail_one(delivery, exc.reason, exc.detail)
            return
        self._queue.append(record)
        self._idle.clear()
        self._wake.set()

    def _fail_one(self, delivery: Delivery, reason: str, detail: str) -> None:
        self.metrics.inc("failed")
        self.metrics.inc(reason)
        log.warning("action %s: %s: %s", self.id, reason, detail)
        delivery.failed(reason)

    # -- lifecycle ---------------------------------------------------------------------------

    async def start(self) -> None:
        """Start the producer (retrying in the background) and the flush task."""
        if self._task is None:
            self._status = HealthStatus(Status.CONNECTING)
            self._task = asyncio.create_task(self._run(), name=f"mqferry[{self.id}].flush")

    async def stop(self, timeout: float = 30.0) -> None:
        """Flush what is queued and in flight (up to ``timeout`` seconds), then close."""
        if self._task is None:
            return
        if self._producer is not None:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._idle.wait(), timeout)
        task, self._task = self._task, None
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        if self._producer is not None:
            await self._producer.stop()
            self._producer = None
        if self._queue:
            log.warning("action %s stopped with %d outputs unsent; their MQTT messages were not "
                        "acknowledged and will be redelivered", self.id, len(self._queue))
        self._status = HealthStatus(Status.STOPPED)

    async def health(self) -> HealthStatus:
        """``connected`` once the producer is up; else ``connecting`` with the reason."""
        return self._status

    # -- internals ---------------------------------------------------------------------------

    def _make_producer(self) -> AIOKafkaProducer:
        p = self.params
        acks = _ACKS[p.required_acks]
        compression = None if p.compression in ("no_compression", "none") else p.compression
        return AIOKafkaProducer(
            **self.connector.client_options("producer"),
            acks=acks,
            enable_idempotence=acks == "all",
            compression_type=compression,
            max_batch_size=p.max_batch_bytes,
            max_request_size=max(p.max_batch_bytes * 2, 1024 * 1024),
            linger_ms=0,
        )

    async def _connect(self) -> AIOKafkaProducer:
        delay = 0.5
        while True:
            producer = self._make_producer()
            try:
                await producer.start()
            except (KafkaError, OSError) as exc:
                with contextlib.suppress(Exception):
                    await producer.stop()
                reason = f"{self.connector.config.bootstrap_hosts}: {exc}"
                self._status = HealthStatus(Status.CONNECTING, reason)
                log.warning("action %s: cannot reach Kafka (%s); retrying in %.1fs", self.id,
                            reason, delay)
                await asyncio.sleep(delay * (0.5 + random.random() / 2))
                delay = min(delay * 2, 30.0)
                continue
            self._status = HealthStatus(Status.CONNECTED)
            log.info("action %s: producer connected", self.id)
            return producer

    async def _run(self) -> None:
        self._producer = await self._connect()
        linger = self.params.max_linger_time
        while True:
            if not self._queue:
                if self._inflight == 0:
                    self._idle.set()
                await self._wake.wait()
            self._wake.clear()
            if self._retry_delay:
                await asyncio.sleep(self._retry_delay)
            if linger > 0:
                await asyncio.sleep(linger)
            records, self._queue = self._queue, deque()
            await self._send(records)

    async def _partition_count(self, topic: str) -> int | None:
        if topic in self._partitions:
            return self._partitions[topic]
        if self._unknown.get(topic, 0.0) > time.monotonic():
            return None
        assert self._producer is not None
        timeout = self.connector.config.metadata_request_timeout
        try:
            parts = await asyncio.wait_for(self._producer.partitions_for(topic), timeout)
        except (KafkaError, TimeoutError):
            parts = None
        if not parts:
            self._unknown[topic] = time.monotonic() + _UNKNOWN_TOPIC_TTL
            return None
        self._partitions[topic] = len(parts)
        return len(parts)

    def _pick(self, key: bytes | None, count: int) -> int:
        strategy = self.params.partition_strategy
        if strategy == "key_dispatch" and key is not None:
            # Kafka's Java client: toPositive(murmur2(key)) % partitions.
            return int(murmur2(key) & 0x7FFFFFFF) % count
        if strategy == "round_robin":
            return next(self._rr) % count
        return random.randrange(count)

    async def _send(self, records: deque[_Record]) -> None:
        producer = self._producer
        assert producer is not None
        by_tp: defaultdict[tuple[str, int], list[_Record]] = defaultdict(list)
        for rec in records:
            count = await self._partition_count(rec.topic)
            if count is None:
                self._fail_one(rec.delivery, "failed.unknown_topic",
                               f"Kafka topic {rec.topic!r} does not exist")
                continue
            by_tp[(rec.topic, self._pick(rec.key, count))].append(rec)
        for (topic, partition), recs in by_tp.items():
            batch = producer.create_batch()
            members: list[_Record] = []
            for rec in recs:
                if rec.alone:
                    single = producer.create_batch()
                    single.append(key=rec.key, value=rec.value, timestamp=rec.timestamp,
                                  headers=rec.headers)
                    await self._submit(single, topic, partition, [rec])
                    continue
                if batch.append(key=rec.key, value=rec.value, timestamp=rec.timestamp,
                                headers=rec.headers) is None:
                    await self._submit(batch, topic, partition, members)
                    batch, members = producer.create_batch(), []
                    batch.append(key=rec.key, value=rec.value, timestamp=rec.timestamp,
                                 headers=rec.headers)
                members.append(rec)
            if members:
                await self._submit(batch, topic, partition, members)

    async def _submit(self, batch: Any, topic: str, partition: int,
                      members: list[_Record]) -> None:
        assert self._producer is not None
        batch.close()
        try:
            fut = await self._producer.send_batch(batch, topic, partition=partition)
        except KafkaError as exc:
            self._retry(members, exc)
            return
        self._inflight += len(members)
        fut.add_done_callback(lambda f: self._settled(f, members))

    def _settled(self, fut: asyncio.Future[Any], members: list[_Record]) -> None:
        self._inflight -= len(members)
        exc = fut.exception() if not fut.cancelled() else asyncio.CancelledError()
        if exc is None:
            self._retry_delay = 0.0
            self.metrics.inc("success", len(members))
            for rec in members:
                rec.delivery.secured()
        elif isinstance(exc, MessageSizeTooLargeError) and len(members) == 1:
            self._fail_one(members[0].delivery, "failed.too_large",
                           f"a record of {len(members[0].value or b'')} bytes is larger than "
                           f"the broker accepts")
        elif isinstance(exc, MessageSizeTooLargeError):
            # Split and try each record on its own, so one oversized record fails alone.
            for rec in members:
                rec.alone = True
            self._queue.extendleft(reversed(members))
            self._wake.set()
        else:
            self._retry(members, exc)
        if not self._queue and self._inflight == 0:
            self._idle.set()

    def _retry(self, members: list[_Record], exc: BaseException) -> None:
        self.metrics.inc("retried", len(members))
        self._retry_delay = min(max(0.1, self._retry_delay * 2), 5.0)
        log.warning("action %s: %d records not acknowledged (%s); retrying", self.id,
                    len(members), exc)
        self._queue.extendleft(reversed(members))
        self._wake.set()
