"""The Kafka twin with what the source needs for topics that appear while it runs.

:class:`mqferry_kafka.testing.KafkaTwin`'s consumer assigns every subscribed topic once, even one
that does not exist, and has no timestamp lookup. This one, like Kafka: assigns existing
partitions only, rebalances (revoke all, assign all) when partitions appear, answers
``partitions_for_topic``, ``topics`` and ``offsets_for_times``, and stamps records with a chosen
time. With ``cold_metadata``, a consumer's ``partitions_for_topic`` knows no topic until its first
fetch, as aiokafka's until the first metadata answer after ``subscribe()``.
"""

from __future__ import annotations

import dataclasses
import time
from typing import Any

from aiokafka import TopicPartition
from aiokafka.structs import OffsetAndTimestamp

from mqferry_kafka.testing import KafkaTwin, TwinConsumer


def now_ms() -> int:
    return int(time.time() * 1000)


class TimedKafkaTwin(KafkaTwin):
    """A :class:`KafkaTwin` whose consumers see topics created while they run."""

    #: ``offsets_for_times`` raises these, one per call, first.
    fail_lookups: list[BaseException]
    #: ``topics`` raises these, one per call, first.
    fail_listings: list[BaseException]
    #: A consumer's cached metadata is empty until its first fetch.
    cold_metadata: bool
    #: How many times a consumer asked for the list of topics.
    listings: int

    def __init__(self, *, cold_metadata: bool = False, **kw: Any) -> None:
        super().__init__(**kw)
        self.fail_lookups = []
        self.fail_listings = []
        self.cold_metadata = cold_metadata
        self.listings = 0

    def consumer(self, **options: Any) -> TimedTwinConsumer:
        consumer = TimedTwinConsumer(self, options)
        self.consumers.append(consumer)
        return consumer

    def produce(self, topic: str, value: bytes | None, *, timestamp: int | None = None,
                **kw: Any) -> int:
        """As :meth:`KafkaTwin.produce`; ``timestamp`` (ms) replaces the twin's fixed 2023 one."""
        offset = super().produce(topic, value, **kw)
        if timestamp is not None:
            log = self.log(TopicPartition(topic, kw.get("partition", 0)))
            log[offset] = dataclasses.replace(log[offset], timestamp=timestamp)
        return offset


class TimedTwinConsumer(TwinConsumer):
    kafka: TimedKafkaTwin
    #: The first rebalance happened (it may assign nothing).
    joined = False
    #: A fetch was made: the metadata is loaded.
    fetched = False

    def partitions_for_topic(self, topic: str) -> set[int] | None:
        if self.kafka.cold_metadata and not self.fetched:
            return None
        n = self.kafka.topics.get(topic)
        return set(range(n)) if n else None

    async def topics(self) -> set[str]:
        self.kafka.listings += 1
        if self.kafka.fail_listings:
            raise self.kafka.fail_listings.pop(0)
        return {t for t, n in self.kafka.topics.items() if n}

    async def offsets_for_times(self, timestamps: dict[TopicPartition, int]
                                ) -> dict[TopicPartition, OffsetAndTimestamp | None]:
        if self.kafka.fail_lookups:
            raise self.kafka.fail_lookups.pop(0)
        out: dict[TopicPartition, OffsetAndTimestamp | None] = {}
        for tp, ts in timestamps.items():
            hit = next((r for r in self.kafka.log(tp) if r.timestamp >= ts), None)
            out[tp] = None if hit is None else OffsetAndTimestamp(hit.offset, hit.timestamp)
        return out

    async def getmany(self, *, timeout_ms: int = 0,
                      max_records: int | None = None) -> dict[TopicPartition, list[Any]]:
        self.fetched = True
        existing = {TopicPartition(t, p) for t in self.subscribed
                    for p in range(self.kafka.topics.get(t, 0))}
        if self.listener is not None and (existing != self.assigned or not self.joined):
            self.joined = True
            await self.listener.on_partitions_revoked(sorted(self.assigned))
            self.assigned = existing
            await self.listener.on_partitions_assigned(sorted(existing))
        # The base assigns every subscribed topic, existing or not, when nothing is assigned.
        topics, self.subscribed = self.subscribed, []
        try:
            return await super().getmany(timeout_ms=timeout_ms, max_records=max_records)
        finally:
            self.subscribed = topics
