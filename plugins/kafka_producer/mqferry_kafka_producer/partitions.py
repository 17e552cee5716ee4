"""Partition counts (cached, refreshed, limited), their lookups, and the partition strategies.

The flush loop never waits for a lookup: it reads the cache (:meth:`Partitioner.known_count`,
:meth:`Partitioner.is_missing`) and asks :class:`TopicLookups` for the topics it does not know.
Lookups run in a task of their own, one metadata request for every topic asked for meanwhile, so
records of known topics are sent while an unknown topic is looked up, and each topic has at most
one lookup in flight.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import random
import time
from collections.abc import Callable
from typing import Any

from aiokafka.errors import KafkaError
from aiokafka.partitioner import murmur2
from aiokafka.protocol.admin import DescribeConfigsRequest

from mqferry import MqferryError, cancel_task
from mqferry_kafka_producer.config import KafkaProducerParameters

log = logging.getLogger(__name__)

#: a topic found missing is not asked for again during this many seconds (as EMQX's 30 s cache,
#: shorter so that a topic created by an operator is picked up quickly)
UNKNOWN_TOPIC_TTL = 5.0
#: the longest pause between two lookups while no broker answers
_MAX_BACKOFF = 5.0


class KafkaUnreachable(MqferryError):
    """No broker answered a metadata request: the topic's existence is unknown."""


def java_partition(key: bytes, count: int) -> int:
    """The partition Kafka's Java client (and kcat's ``murmur2_random``) picks for ``key``."""
    return int(murmur2(key) & 0x7FFFFFFF) % count


class Partitioner:
    """Picks a partition for each record with the action's strategy; caches partition counts.

    Args:
        params: the action's parameters (strategy, ``partitions_limit``, refresh interval).
    """

    def __init__(self, params: KafkaProducerParameters) -> None:
        self.strategy = params.partition_strategy
        limit = params.partitions_limit
        self.limit = None if limit == "all_partitions" else int(limit)
        self.refresh = params.partition_count_refresh_interval
        self._counts: dict[str, tuple[int, float]] = {}
        self._unknown: dict[str, float] = {}
        self._rr = itertools.count()
        self._sticky: dict[str, int] = {}
        #: each looked-up topic's ``max.message.bytes`` (see :func:`fetch_limits`)
        self.limits: dict[str, int] = {}

    def known_count(self, topic: str) -> int | None:
        """The cached partition count of ``topic`` (``None`` when not looked up yet)."""
        cached = self._counts.get(topic)
        return cached[0] if cached else None

    def is_stale(self, topic: str) -> bool:
        """Whether the cached count of ``topic`` is older than the refresh interval."""
        cached = self._counts.get(topic)
        return cached is not None and time.monotonic() - cached[1] >= self.refresh

    def is_missing(self, topic: str) -> bool:
        """Whether ``topic`` was found missing less than :data:`UNKNOWN_TOPIC_TTL` ago."""
        until = self._unknown.get(topic)
        if until is None:
            return False
        if until > time.monotonic():
            return True
        del self._unknown[topic]
        return False

    def found(self, topic: str, partitions: int | None) -> None:
        """Record a lookup's answer: the partition count, or ``None`` for a missing topic.

        A topic that was known keeps its count when an answer misses it (a metadata hiccup
        while it is being recreated is not a reason to fail its records).
        """
        now = time.monotonic()
        if partitions:
            n = partitions if self.limit is None else min(partitions, self.limit)
            self._counts[topic] = (n, now)
            self._unknown.pop(topic, None)
        elif topic in self._counts:
            n = self._counts[topic][0]
            self._counts[topic] = (n, now)
        else:
            self._unknown[topic] = now + UNKNOWN_TOPIC_TTL

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


#: DescribeConfigs' resource type for a topic
_TOPIC_RESOURCE = 2


async def fetch_limits(producer: Any, topics: set[str], timeout: float) -> dict[str, int]:
    """Each topic's ``max.message.bytes``: the largest record batch Kafka accepts for it.

    A batch larger than that is refused, and with an idempotent producer its sequence number
    is spent, so the next batch is refused too ("out of order"); knowing the limit lets the
    action refuse such a record alone before it enters a batch. Best effort: a broker that does
    not answer, or an ACL that forbids DescribeConfigs, leaves the topic without a known limit
    (Kafka's refusal then fails the record as before).
    """
    if not topics:
        return {}
    request = DescribeConfigsRequest(
        [(_TOPIC_RESOURCE, t, ["max.message.bytes"]) for t in sorted(topics)])
    try:
        node = producer.client.get_random_node()
        async with asyncio.timeout(timeout):
            response = await producer.client.send(node, request)
    except Exception as exc:  # best effort: without the limit, Kafka's refusal decides
        log.info("cannot read max.message.bytes of %s (%r); records too large for them are "
                 "refused by Kafka instead", ", ".join(sorted(topics)), exc)
        return {}
    limits: dict[str, int] = {}
    for error_code, _msg, _type, name, entries in response.resources:
        if error_code:
            continue
        for entry in entries:
            if entry[0] == "max.message.bytes":
                with contextlib.suppress(TypeError, ValueError):
                    limits[name] = int(entry[1])
    return limits


async def fetch_counts(producer: Any, topics: set[str], timeout: float) -> dict[str, int | None]:
    """Partition counts of ``topics`` from one full metadata request (``None``: missing).

    One answer about the whole cluster tells a missing topic from a cluster that does not
    answer (``partitions_for`` waits its whole timeout in both cases), and it does not make the
    producer track a topic that does not exist. Found topics are then tracked by the producer
    (``partitions_for``), so that their first batch does not wait for metadata.

    Raises:
        KafkaUnreachable: no broker answered.
    """
    try:
        async with asyncio.timeout(timeout):
            md = await producer.client.fetch_all_metadata()
    except (KafkaError, TimeoutError, OSError) as exc:
        raise KafkaUnreachable(str(exc) or type(exc).__name__) from None
    counts: dict[str, int | None] = {}
    for topic in topics:
        parts = md.partitions_for_topic(topic)
        counts[topic] = len(parts) if parts else None
    for topic, n in counts.items():
        if n:
            # On a timeout send_batch waits for it instead; the count is known either way.
            with contextlib.suppress(KafkaError, TimeoutError):
                async with asyncio.timeout(timeout):
                    await producer.partitions_for(topic)
    return counts


class TopicLookups:
    """Looks up partition counts in the background, one request for all topics asked for.

    Args:
        partitioner: where answers are recorded.
        timeout: how long one metadata request may take.
        on_result: called after each answer (or failure), to wake the flush loop.
        on_unreachable: called with the reason when no broker answers (the lookup is retried
            with back-off; records stay queued in order).
        name: the task's name.
    """

    def __init__(self, partitioner: Partitioner, timeout: float, *,
                 on_result: Callable[[], None], on_unreachable: Callable[[str], None],
                 name: str) -> None:
        self.partitioner = partitioner
        self.timeout = timeout
        self._on_result = on_result
        self._on_unreachable = on_unreachable
        self._name = name
        self._wanted: set[str] = set()
        #: topics asked for and not answered yet (queued or in the current request)
        self.pending: set[str] = set()
        self._task: asyncio.Task[None] | None = None

    def request(self, producer: Any, topic: str) -> None:
        """Look ``topic`` up unless it already is being looked up."""
        if topic in self.pending:
            return
        self.pending.add(topic)
        self._wanted.add(topic)
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._run(producer), name=self._name)

    async def _run(self, producer: Any) -> None:
        backoff = 0.0
        while self._wanted:
            topics, self._wanted = self._wanted, set()
            try:
                counts = await fetch_counts(producer, topics, self.timeout)
            except KafkaUnreachable as exc:
                self._wanted |= topics
                backoff = min(max(0.5, backoff * 2), _MAX_BACKOFF)
                self._on_unreachable(str(exc))
                await asyncio.sleep(backoff)
                continue
            except Exception:  # never leave topics pending for ever
                log.exception("%s: looking up topics failed; trying again", self._name)
                self._wanted |= topics
                backoff = min(max(0.5, backoff * 2), _MAX_BACKOFF)
                await asyncio.sleep(backoff)
                continue
            backoff = 0.0
            found = {t for t, n in counts.items() if n}
            self.partitioner.limits.update(await fetch_limits(producer, found, self.timeout))
            for topic, n in counts.items():
                self.partitioner.found(topic, n)
                self.pending.discard(topic)
            self._on_result()

    async def close(self) -> None:
        """Cancel a lookup in progress."""
        task, self._task = self._task, None
        await cancel_task(task)
        self.pending.clear()
        self._wanted.clear()
