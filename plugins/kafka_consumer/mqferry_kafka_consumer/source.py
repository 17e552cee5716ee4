"""The ``kafka_consumer`` source: Kafka records to MQTT (topic mappings) and to rules.

At-least-once: records are consumed only once the MQTT session is up; a partition's offset is
committed only after every publish made for its records (and for every earlier record) was
acknowledged by the MQTT broker and every rule action settled. The next batch is not fetched
before the current one settled, so a slow MQTT side pauses consumption instead of filling memory.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections.abc import Awaitable
from typing import Any

import aiomqtt
from aiokafka import AIOKafkaConsumer, ConsumerRebalanceListener, TopicPartition
from aiokafka.errors import KafkaError
from aiokafka.structs import OffsetAndMetadata

from mqferry import HealthStatus, RuntimeContext, Status
from mqferry.errors import TemplateError
from mqferry.kafka import KafkaConnector
from mqferry.metrics import source_metrics
from mqferry.templates import Template
from mqferry_kafka_consumer.config import KafkaConsumerSourceConfig
from mqferry_kafka_consumer.message import record_message

log = logging.getLogger(__name__)


class _Mapping:
    __slots__ = ("payload", "qos", "topic")

    def __init__(self, topic: str, qos: int, payload: str) -> None:
        self.topic = Template(topic)
        self.qos = qos
        self.payload = Template(payload)


class _StartPosition(ConsumerRebalanceListener):  # type: ignore[misc]
    """Commits the start position of partitions the group never committed.

    With ``latest`` this pins "latest" to the first assignment, so records produced while
    mqferry is down later are still delivered after a restart.
    """

    def __init__(self, source: KafkaConsumerSource) -> None:
        self._source = source

    async def on_partitions_revoked(self, revoked: list[TopicPartition]) -> None:
        await self._source.commit_pending()

    async def on_partitions_assigned(self, assigned: list[TopicPartition]) -> None:
        consumer = self._source.consumer
        assert consumer is not None
        log.info("source %s: partitions assigned: %s", self._source.id,
                 ", ".join(f"{tp.topic}/{tp.partition}" for tp in sorted(assigned)) or "none")
        for tp in assigned:
            if await consumer.committed(tp) is None:
                pos = await consumer.position(tp)
                await consumer.commit({tp: OffsetAndMetadata(pos, "")})


class KafkaConsumerSource:
    """Consumes Kafka topics into MQTT publishes and rule events.

    Args:
        name: the source name.
        config: its validated settings.
        connector: the ``kafka_consumer`` connector it uses.
        context: the runtime (MQTT publisher, rule dispatch).
    """

    def __init__(self, *, name: str, config: KafkaConsumerSourceConfig,
                 connector: KafkaConnector, context: RuntimeContext) -> None:
        self.name = name
        self.id = f"kafka_consumer:{name}"
        self.params = config.parameters
        self.connector = connector
        self.context = context
        self.event_topic = f"$bridges/kafka_consumer:{name}"
        self.metrics = source_metrics(self.id)
        self.mappings = {
            m.kafka_topic: _Mapping(m.mqtt_topic, m.qos, m.payload_template)
            for m in self.params.topic_mapping
        }
        self.consumer: AIOKafkaConsumer | None = None
        self._task: asyncio.Task[None] | None = None
        self._pending: dict[TopicPartition, int] = {}
        self._last_commit = time.monotonic()
        self._status = HealthStatus(Status.STOPPED)
        self._stopping = False

    @property
    def group_id(self) -> str:
        """The consumer group: configured, or derived from the source name."""
        return self.params.group_id or f"mqferry-kafka-consumer-{self.name}"

    async def start(self) -> None:
        """Start consuming in the background, once the MQTT session is up."""
        if self._task is None:
            self._stopping = False
            self._status = HealthStatus(Status.CONNECTING, "waiting for the MQTT session")
            self._task = asyncio.create_task(self._run(), name=f"mqferry[{self.id}].consume")

    async def stop(self) -> None:
        """Finish the batch in hand, commit, leave the group. Idempotent."""
        self._stopping = True
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        if self.consumer is not None:
            with contextlib.suppress(KafkaError):
                await self.commit_pending()
            await self.consumer.stop()
            self.consumer = None
        self._status = HealthStatus(Status.STOPPED)

    async def health(self) -> HealthStatus:
        """``connected`` while consuming; else ``connecting`` with the reason."""
        return self._status

    async def commit_pending(self) -> None:
        """Commit every settled offset not yet committed."""
        if self.consumer is None or not self._pending:
            return
        offsets = {tp: OffsetAndMetadata(off, "") for tp, off in self._pending.items()}
        await self.consumer.commit(offsets)
        self._pending.clear()
        self._last_commit = time.monotonic()

    # -- internals ---------------------------------------------------------------------------

    def _make_consumer(self) -> AIOKafkaConsumer:
        p = self.params
        return AIOKafkaConsumer(
            **self.connector.client_options("consumer"),
            group_id=self.group_id,
            enable_auto_commit=False,
            auto_offset_reset=p.offset_reset_policy,
            fetch_max_bytes=max(p.max_batch_bytes, 1),
            max_partition_fetch_bytes=max(p.max_batch_bytes, 1),
            fetch_max_wait_ms=int(p.max_wait_time * 1000),
        )

    async def _connect(self) -> AIOKafkaConsumer:
        delay = 0.5
        while True:
            consumer = self._make_consumer()
            try:
                await consumer.start()
                consumer.subscribe(self.params.kafka_topics(), listener=_StartPosition(self))
            except (KafkaError, OSError) as exc:
                with contextlib.suppress(Exception):
                    await consumer.stop()
                reason = f"{self.connector.config.bootstrap_hosts}: {exc}"
                self._status = HealthStatus(Status.CONNECTING, reason)
                log.warning("source %s: cannot reach Kafka (%s); retrying in %.1fs",
                            self.id, reason, delay)
                await asyncio.sleep(delay * (0.5 + random.random() / 2))
                delay = min(delay * 2, 30.0)
                continue
            return consumer

    async def _run(self) -> None:
        await self.context.mqtt.wait_connected()
        self.consumer = consumer = await self._connect()
        self._status = HealthStatus(Status.CONNECTED)
        log.info("source %s: consuming %s as group %s", self.id,
                 ", ".join(self.params.kafka_topics()), self.group_id)
        interval = self.params.offset_commit_interval_seconds
        while not self._stopping:
            batches = await consumer.getmany(timeout_ms=1000)
            for tp, records in batches.items():
                await asyncio.gather(*(self._handle(r) for r in records))
                self._pending[tp] = records[-1].offset + 1
            if self._pending and time.monotonic() - self._last_commit >= interval:
                try:
                    await self.commit_pending()
                except KafkaError as exc:  # rebalancing: the revoke hook commits instead
                    log.warning("source %s: commit failed: %s", self.id, exc)

    async def _handle(self, record: Any) -> None:
        self.metrics.inc("received")
        msg = record_message(record, self.params.key_encoding_mode, self.params.value_encoding_mode)
        work: list[Awaitable[None]] = []
        mapping = self.mappings.get(record.topic)
        if mapping is not None:
            try:
                topic = mapping.topic.render_strict(msg)
            except TemplateError as exc:
                self.metrics.inc("failed")
                log.warning("source %s: record %s/%d@%d: mqtt_topic: %s", self.id, record.topic,
                            record.partition, record.offset, exc)
            else:
                payload = mapping.payload.render_bytes(msg)
                work.append(self._publish(topic, payload, mapping.qos))
        event = dict(msg)
        event["event"] = self.event_topic
        event["timestamp"] = int(time.time() * 1000)
        work.append(self.context.dispatch(event))
        await asyncio.gather(*work)
        self.metrics.inc("success")

    async def _publish(self, topic: str, payload: bytes, qos: int) -> None:
        while True:
            try:
                await self.context.mqtt.publish(topic, payload, qos=qos)
                return
            except aiomqtt.MqttError as exc:
                # The session dropped before the broker acknowledged: publish again once it is
                # back (at-least-once; the subscriber may see a duplicate).
                log.warning("source %s: publish to %s interrupted (%s); retrying", self.id,
                            topic, exc)
                await asyncio.sleep(0.5)
