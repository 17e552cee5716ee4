"""Partition counts (cached, refreshed, limited) and the partition strategies."""

from __future__ import annotations

import asyncio
import itertools
import random
import time
from typing import Any

from aiokafka.errors import KafkaError
from aiokafka.partitioner import murmur2

from mqferry_kafka_producer.config import KafkaProducerParameters

#: a topic found missing is not asked for again during this many seconds (as EMQX's 30 s cache,
#: shorter so that a topic created by an operator is picked up quickly)
UNKNOWN_TOPIC_TTL = 5.0


class KafkaUnreachable(Exception):
    """No broker answered a metadata request: the topic's existence is unknown."""


def java_partition(key: bytes, count: int) -> int:
    """The partition Kafka's Java client (and kcat's ``murmur2_random``) picks for ``key``."""
    return int(murmur2(key) & 0x7FFFFFFF) % count


class Partitioner:
    """Picks a partition for each record with the action's strategy.

    Args:
        params: the action's parameters (strategy, ``partitions_limit``, refresh interval).
        metadata_timeout: how long to wait for a topic's metadata.
    """

    def __init__(self, params: KafkaProducerParameters, metadata_timeout: float) -> None:
        self.strategy = params.partition_strategy
        limit = params.partitions_limit
        self.limit = None if limit == "all_partitions" else int(limit)
        self.refresh = params.partition_count_refresh_interval
        self.timeout = metadata_timeout
        self._counts: dict[str, tuple[int, float]] = {}
        self._unknown: dict[str, float] = {}
        self._rr = itertools.count()
        self._sticky: dict[str, int] = {}

    async def count(self, producer: Any, topic: str) -> int | None:
        """Usable partitions of ``topic`` (``None``: the topic does not exist).

        Raises:
            KafkaUnreachable: no broker answered, so whether the topic exists is unknown.
        """
        now = time.monotonic()
        cached = self._counts.get(topic)
        if cached is not None and now - cached[1] < self.refresh:
            return cached[0]
        if self._unknown.get(topic, 0.0) > now:
            return None
        try:
            parts = await asyncio.wait_for(producer.partitions_for(topic), self.timeout)
        except (KafkaError, TimeoutError):
            parts = None
        if not parts:
            if cached is not None:
                return cached[0]  # keep using what we knew through a metadata hiccup
            parts = await self._from_cluster(producer, topic)
        if not parts:
            self._unknown[topic] = now + UNKNOWN_TOPIC_TTL
            return None
        n = len(parts) if self.limit is None else min(len(parts), self.limit)
        self._counts[topic] = (n, now)
        return n

    async def _from_cluster(self, producer: Any, topic: str) -> set[int] | None:
        # A topic that does not exist and a cluster that does not answer look the same to
        # partitions_for (a timeout); only a full metadata answer tells them apart.
        try:
            md = await asyncio.wait_for(producer.client.fetch_all_metadata(), self.timeout)
        except (KafkaError, TimeoutError, OSError) as exc:
            raise KafkaUnreachable(str(exc) or type(exc).__name__) from None
        parts: set[int] | None = md.partitions_for_topic(topic)
        return parts

    def known_count(self, topic: str) -> int | None:
        """The cached partition count of ``topic`` (``None`` when not looked up yet)."""
        cached = self._counts.get(topic)
        return cached[0] if cached else None

    def new_round(self) -> None:
        """A new batch round begins: ``sticky`` moves to another partition."""
        self._sticky.clear()

    def pick(self, topic: str, key: bytes | None, count: int) -> int:
        """The partition for one record."""
        if count == 1:
            return 0
        strategy = self.strategy
        if strategy == "key_dispatch" and key is not None:
            return java_partition(key, count)
        if strategy == "round_robin":
            return next(self._rr) % count
        if strategy == "sticky":
            p = self._sticky.get(topic)
            if p is None or p >= count:
                p = self._sticky[topic] = random.randrange(count)
            return p
        return int(random.random() * count)  # randrange costs several times more
