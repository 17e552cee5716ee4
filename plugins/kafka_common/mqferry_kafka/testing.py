"""In-memory twins of Kafka for tests, injected (never patched in) through factory arguments.

:class:`KafkaTwin` is the cluster, the producer factory the ``kafka_producer`` action takes
(``producer_factory=``) and, through :meth:`KafkaTwin.consumer`, the consumer factory of the
``kafka_consumer`` source (``consumer_factory=``). Shipped with the Kafka library, beside the
plugins that use it, so that the core's :mod:`mqferry.testing` imports no Kafka client.

It keeps what a test needs to see (records per topic, metadata requests) and can be told to
misbehave: metadata requests that hang or fail, sends that raise, a ``stop()`` that hangs.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any

from aiokafka import TopicPartition
from aiokafka.errors import InvalidTimestampError, KafkaConnectionError, MessageSizeTooLargeError
from aiokafka.protocol.admin import DescribeConfigsRequest_v0
from aiokafka.structs import ConsumerRecord


@dataclass
class Sent:
    """One record the twin accepted."""

    topic: str
    partition: int
    key: bytes | None
    value: bytes | None


class TwinBatch:
    def __init__(self, max_size: int) -> None:
        self.max_size = max_size
        self.records: list[tuple[bytes | None, bytes | None]] = []
        self.timestamps: list[int | None] = []
        self.size = 0

    def append(self, *, key: bytes | None, value: bytes | None, timestamp: int | None,
               headers: Any) -> object | None:
        size = len(key or b"") + len(value or b"") + 20
        if self.records and self.size + size > self.max_size:
            return None  # as aiokafka: full, except for a first record
        self.records.append((key, value))
        self.timestamps.append(timestamp)
        self.size += size
        return object()

    def close(self) -> None:
        pass


class TwinMetadata:
    def __init__(self, topics: dict[str, int]) -> None:
        self.topics = topics

    def partitions_for_topic(self, topic: str) -> set[int] | None:
        n = self.topics.get(topic)
        return set(range(n)) if n else None


class TwinClient:
    def __init__(self, kafka: KafkaTwin) -> None:
        self.kafka = kafka

    def get_random_node(self) -> int:
        return 0

    async def send(self, node_id: int, request: Any) -> Any:
        """A DescribeConfigs answer: every topic's ``max.message.bytes`` (the only request)."""
        struct = request.build(DescribeConfigsRequest_v0)
        k = self.kafka
        k.describe_requests += 1
        return SimpleNamespace(resources=[
            (0, None, rtype, name, [("max.message.bytes", str(k.max_message_bytes), False,
                                     True, False)])
            for rtype, name, _ in struct.resources])

    async def fetch_all_metadata(self) -> TwinMetadata:
        k = self.kafka
        k.metadata_requests += 1
        if k.metadata_delay:
            await asyncio.sleep(k.metadata_delay)
        if k.unreachable:
            raise KafkaConnectionError("no broker answers (twin)")
        return TwinMetadata(dict(k.topics))


class TwinProducer:
    def __init__(self, kafka: KafkaTwin, options: dict[str, Any]) -> None:
        self.kafka = kafka
        self.options = options
        self.client = TwinClient(kafka)
        self.pending: list[tuple[asyncio.Future[None], list[Sent]]] = []

    async def start(self) -> None:
        pass

    async def stop(self) -> None:
        if self.kafka.hang_stop:
            await asyncio.Event().wait()

    async def partitions_for(self, topic: str) -> set[int]:
        return set(range(self.kafka.topics[topic]))

    def create_batch(self) -> TwinBatch:
        return TwinBatch(self.options["max_batch_size"])

    async def send_batch(self, batch: TwinBatch, topic: str, *,
                         partition: int) -> asyncio.Future[None]:
        k = self.kafka
        if k.raise_on_send:
            raise k.raise_on_send.pop(0)
        for bad in k.poison_values:
            if any(v == bad for _, v in batch.records):
                raise RuntimeError(f"cannot send {bad!r} (twin)")
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        recs = [Sent(topic, partition, key, value) for key, value in batch.records]
        if batch.size > k.max_message_bytes:
            # as the broker: the batch is refused and its sequence number is spent
            k.refused_batches += 1
            fut.set_exception(MessageSizeTooLargeError())
            return fut
        if k.max_timestamp is not None and any(
                ts is not None and ts > k.max_timestamp for ts in batch.timestamps):
            # as the broker's log.message.timestamp.after.max.ms: the whole batch is refused
            k.refused_batches += 1
            fut.set_exception(InvalidTimestampError())
            return fut
        if k.hold:
            self.pending.append((fut, recs))
        else:
            k.sent.extend(recs)
            k.batches.append(len(recs))
            fut.set_result(None)
        return fut


@dataclass
class KafkaTwin:
    """The cluster and the producer factory: ``KafkaTwin(topics={"t": 1})``.

    Attributes:
        topics: existing topics and their partition counts.
        sent: every record acknowledged, in order.
        metadata_requests: how many full metadata requests were made.
        metadata_delay: seconds each metadata request takes.
        unreachable: metadata requests fail as when no broker answers, and a consumer's fetches
            return nothing (aiokafka retries them by itself).
        raise_on_send: ``send_batch`` raises these, one per call, first.
        poison_values: ``send_batch`` raises for a batch holding one of these values.
        hold: batches stay unacknowledged (a hung broker).
        hang_stop: ``stop()`` never returns.
        max_message_bytes: every topic's ``max.message.bytes``; a larger batch is refused.
        describe_requests: how many DescribeConfigs requests were made.
        refused_batches: how many batches were refused (too large, or a timestamp past
            ``max_timestamp``).
        max_timestamp: a batch with a record timestamped later is refused
            (``InvalidTimestampError``), as a broker refuses one too far in the future.
        committed: each group's committed offset per partition.
        commits: every commit, in order: ``(group, partition, offset)``.
        fail_commits: commits raise these, one per call, first.
        seeks: every seek of a consumer: ``(partition, offset)``.
        pauses: how many times a consumer paused its partitions.
        batches: the number of records of each batch acknowledged, in order.
        log_start: each partition's first offset still kept (records before it were deleted,
            as retention or ``DeleteRecords`` delete them); 0 when absent.
    """

    topics: dict[str, int] = field(default_factory=dict)
    sent: list[Sent] = field(default_factory=list)
    metadata_requests: int = 0
    metadata_delay: float = 0.0
    unreachable: bool = False
    raise_on_send: list[BaseException] = field(default_factory=list)
    poison_values: list[bytes] = field(default_factory=list)
    hold: bool = False
    hang_stop: bool = False
    #: every topic's ``max.message.bytes``: larger batches are refused (``MessageSizeTooLarge``)
    max_message_bytes: int = 1048588
    describe_requests: int = 0
    refused_batches: int = 0
    max_timestamp: int | None = None
    producers: list[TwinProducer] = field(default_factory=list)
    committed: dict[tuple[str, TopicPartition], int] = field(default_factory=dict)
    commits: list[tuple[str, TopicPartition, int]] = field(default_factory=list)
    fail_commits: list[BaseException] = field(default_factory=list)
    seeks: list[tuple[TopicPartition, int]] = field(default_factory=list)
    pauses: int = 0
    batches: list[int] = field(default_factory=list)
    consumers: list[TwinConsumer] = field(default_factory=list)
    log_start: dict[TopicPartition, int] = field(default_factory=dict)
    _logs: dict[TopicPartition, list[ConsumerRecord[bytes, bytes]]] = field(
        default_factory=dict)

    def __call__(self, **options: Any) -> TwinProducer:
        producer = TwinProducer(self, options)
        self.producers.append(producer)
        return producer

    def values(self, topic: str) -> list[bytes | None]:
        """The values sent to ``topic``, in order."""
        return [s.value for s in self.sent if s.topic == topic]

    def held(self) -> int:
        """How many batches wait for an answer (with :attr:`hold`)."""
        return sum(len(p.pending) for p in self.producers)

    def answer(self, count: int | None = None, error: BaseException | None = None) -> int:
        """Answer the oldest ``count`` held batches (all by default): acknowledge them, or fail
        them with ``error``; returns how many were answered."""
        n = 0
        for producer in self.producers:
            while producer.pending and (count is None or n < count):
                fut, recs = producer.pending.pop(0)
                n += 1
                if fut.done():
                    continue
                if error is None:
                    self.sent.extend(recs)
                    self.batches.append(len(recs))
                    fut.set_result(None)
                else:
                    fut.set_exception(error)
        return n

    def consumer(self, **options: Any) -> TwinConsumer:
        """The consumer factory: a consumer of this cluster (``group_id`` among ``options``)."""
        consumer = TwinConsumer(self, options)
        self.consumers.append(consumer)
        return consumer

    def produce(self, topic: str, value: bytes | None, *, key: bytes | None = None,
                partition: int = 0, headers: list[tuple[str, bytes]] | None = None) -> int:
        """Append a record to a partition's log (the topic is created); returns its offset."""
        self.topics.setdefault(topic, partition + 1)
        log = self.log(TopicPartition(topic, partition))
        offset = len(log)
        log.append(ConsumerRecord(
            topic=topic, partition=partition, offset=offset, timestamp=1_700_000_000_000 + offset,
            timestamp_type=0, key=key, value=value, checksum=None,
            serialized_key_size=len(key or b""), serialized_value_size=len(value or b""),
            headers=list(headers or [])))
        return offset

    def log(self, tp: TopicPartition) -> list[ConsumerRecord[bytes, bytes]]:
        """The records of a partition, by offset."""
        return self._logs.setdefault(tp, [])

    def committed_offset(self, group: str, topic: str, partition: int = 0) -> int | None:
        """The offset ``group`` committed for a partition."""
        return self.committed.get((group, TopicPartition(topic, partition)))


class TwinConsumer:
    """A consumer of a :class:`KafkaTwin`: one member of its group, assigned every partition.

    It offers what the ``kafka_consumer`` source uses of aiokafka's consumer: subscription with a
    rebalance listener (called on the first fetch), fetch, pause, resume, seek, commit.
    """

    def __init__(self, kafka: KafkaTwin, options: dict[str, Any]) -> None:
        self.kafka = kafka
        self.options = options
        self.group: str = options["group_id"]
        #: The subscribed topics.
        self.subscribed: list[str] = []
        self.listener: Any = None
        self.assigned: set[TopicPartition] = set()
        self.paused: set[TopicPartition] = set()
        self.positions: dict[TopicPartition, int] = {}
        #: when each partition last had a fetch answered (ms since the epoch, as aiokafka)
        self.polled: dict[TopicPartition, int] = {}
        self.started = False
        self.stopped = False

    async def start(self) -> None:
        if self.kafka.unreachable:
            raise KafkaConnectionError("no broker answers (twin)")
        self.started = True

    async def stop(self) -> None:
        self.stopped = True

    def subscribe(self, topics: list[str] | None = None, *, pattern: str | None = None,
                  listener: Any = None) -> None:
        if pattern is not None:
            raise NotImplementedError("the twin consumes named topics only")
        self.subscribed = list(topics or [])
        self.listener = listener

    def assignment(self) -> set[TopicPartition]:
        return set(self.assigned)

    async def committed(self, tp: TopicPartition) -> int | None:
        return self.kafka.committed.get((self.group, tp))

    async def position(self, tp: TopicPartition) -> int:
        if tp not in self.positions:
            committed = self.kafka.committed.get((self.group, tp))
            if committed is None:
                committed = (0 if self.options.get("auto_offset_reset") == "earliest"
                             else len(self.kafka.log(tp)))
            self.positions[tp] = committed
        return self.positions[tp]

    async def commit(self, offsets: dict[TopicPartition, Any]) -> None:
        k = self.kafka
        if k.fail_commits:
            raise k.fail_commits.pop(0)
        for tp, meta in offsets.items():
            k.committed[(self.group, tp)] = meta.offset
            k.commits.append((self.group, tp, meta.offset))

    def highwater(self, tp: TopicPartition) -> int | None:
        return len(self.kafka.log(tp))

    async def beginning_offsets(self, tps: list[TopicPartition]) -> dict[TopicPartition, int]:
        return {tp: self.kafka.log_start.get(tp, 0) for tp in tps}

    async def end_offsets(self, tps: list[TopicPartition]) -> dict[TopicPartition, int]:
        return {tp: len(self.kafka.log(tp)) for tp in tps}

    def last_poll_timestamp(self, tp: TopicPartition) -> int | None:
        return self.polled.get(tp)

    def pause(self, *tps: TopicPartition) -> None:
        self.paused.update(tps)
        self.kafka.pauses += 1

    def resume(self, *tps: TopicPartition) -> None:
        self.paused.difference_update(tps)

    def seek(self, tp: TopicPartition, offset: int) -> None:
        self.positions[tp] = offset
        self.kafka.seeks.append((tp, offset))

    async def getmany(self, *, timeout_ms: int = 0,
                      max_records: int | None = None) -> dict[TopicPartition, list[Any]]:
        if not self.assigned and self.subscribed:
            self.assigned = {TopicPartition(t, p) for t in self.subscribed
                             for p in range(self.kafka.topics.get(t, 1))}
            if self.listener is not None:
                await self.listener.on_partitions_assigned(sorted(self.assigned))
        out: dict[TopicPartition, list[Any]] = {}
        if self.kafka.unreachable:
            await asyncio.sleep(min(timeout_ms / 1000, 0.01))
            return out
        now_ms = int(time.time() * 1000)
        room = max_records if max_records is not None else 1 << 30
        for tp in sorted(self.assigned - self.paused):
            self.polled[tp] = now_ms
            start = await self.position(tp)
            if not self.kafka.log_start.get(tp, 0) <= start <= len(self.kafka.log(tp)):
                # out of range, as Kafka answers: the consumer jumps by its reset policy
                start = (self.kafka.log_start.get(tp, 0)
                         if self.options.get("auto_offset_reset") == "earliest"
                         else len(self.kafka.log(tp)))
                self.positions[tp] = start
            records = self.kafka.log(tp)[start:start + room]
            if records:
                out[tp] = records
                self.positions[tp] = start + len(records)
                room -= len(records)
            if room <= 0:
                break
        if not out:
            # as aiokafka: wait for records, briefly (the twin has no fetch to wait on)
            await asyncio.sleep(min(timeout_ms / 1000, 0.01))
        return out

