"""In-memory twins of Kafka for tests, injected (never patched in) through factory arguments.

:class:`KafkaTwin` is the cluster and the producer factory the ``kafka_producer`` action takes
(``producer_factory=``). Shipped with the Kafka library, beside the plugins that use it, so that
the core's :mod:`mqferry.testing` imports no Kafka client.

It keeps what a test needs to see (records per topic, metadata requests) and can be told to
misbehave: metadata requests that hang or fail, sends that raise, a ``stop()`` that hangs.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any

from aiokafka.errors import KafkaConnectionError, MessageSizeTooLargeError
from aiokafka.protocol.admin import DescribeConfigsRequest_v0


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
        self.size = 0

    def append(self, *, key: bytes | None, value: bytes | None, timestamp: int | None,
               headers: Any) -> object | None:
        size = len(key or b"") + len(value or b"") + 20
        if self.records and self.size + size > self.max_size:
            return None  # as aiokafka: full, except for a first record
        self.records.append((key, value))
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
        if k.hold:
            self.pending.append((fut, recs))
        else:
            k.sent.extend(recs)
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
        unreachable: metadata requests fail as when no broker answers.
        raise_on_send: ``send_batch`` raises these, one per call, first.
        poison_values: ``send_batch`` raises for a batch holding one of these values.
        hold: batches stay unacknowledged (a hung broker).
        hang_stop: ``stop()`` never returns.
        max_message_bytes: every topic's ``max.message.bytes``; a larger batch is refused.
        describe_requests: how many DescribeConfigs requests were made.
        refused_batches: how many batches were refused as too large.
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
    producers: list[TwinProducer] = field(default_factory=list)

    def __call__(self, **options: Any) -> TwinProducer:
        producer = TwinProducer(self, options)
        self.producers.append(producer)
        return producer

    def values(self, topic: str) -> list[bytes | None]:
        """The values sent to ``topic``, in order."""
        return [s.value for s in self.sent if s.topic == topic]
