"""Topics and partitions that appear while the source runs: found, said, and read from their start.

Two things go wrong with a topic created after mqferry started, and this module prevents both:

- It is seen late. aiokafka refreshes its metadata every ``metadata_max_age_ms`` (5 minutes by
  default), so the source sets that from ``topic_pattern_refresh_interval`` for named topics too,
  and :class:`TopicWatch` says which configured topics Kafka does not know (yet), and when they
  appear, so a typo in a topic name does not pass unnoticed.
- Its first records are skipped. With ``latest``, a partition the group never committed starts
  at its end, which for a partition created after the source started means "after whatever was
  produced before it was assigned". :func:`start_offsets` starts such a partition at its first
  record timestamped at or after the source's start instead: "latest as of the group's first
  start", as documented, approximated by this process's first start (Kafka keeps no commit
  times). With ``earliest`` it starts at its first record anyway.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Iterable
from typing import Any

from aiokafka import TopicPartition
from aiokafka.errors import KafkaError

log = logging.getLogger(__name__)

#: How long the consume loop waits for Kafka's list of topics before it judges a topic missing;
#: past it the topic is judged again one refresh interval later.
CONFIRM_TIMEOUT = 5.0


class TopicWatch:
    """Logs once when a configured topic is missing from Kafka, and when it appears.

    It reads the consumer's cached metadata (``partitions_for_topic``), refreshed by aiokafka
    every ``metadata_max_age_ms``. That cache is empty until the first metadata answer after
    ``start()`` and ``subscribe()``, so a topic absent from it is only said missing once Kafka's
    own list of topics (``topics()``, one request) confirms it: one request per topic that goes
    missing, bounded by :data:`CONFIRM_TIMEOUT`, so a slow Kafka stalls the loop briefly at most.

    Args:
        source_id: the source, for the log lines.
        topics: the configured (named) topics.
        refresh: seconds between metadata refreshes (``topic_pattern_refresh_interval``).
        policy: the source's ``offset_reset_policy``: where a topic that appears is read from.
    """

    def __init__(self, source_id: str, topics: Iterable[str], refresh: float, *,
                 policy: str) -> None:
        self.source_id = source_id
        self.topics = list(topics)
        self.refresh = refresh
        self.policy = policy
        #: Configured topics Kafka did not know at the last check.
        self.missing: set[str] = set()
        self._warned: set[str] = set()
        # Topics Kafka listed while the consumer's metadata lacked them, and until when they are
        # not asked about again (a refresh interval), should the consumer's metadata stay behind.
        self._listed: dict[str, float] = {}
        self._next = -1.0

    async def check(self, consumer: Any) -> None:
        """Compare the configured topics with the consumer's metadata (at most once a second,
        as it is called on every turn of the consume loop); log what changed."""
        now = time.monotonic()
        if now < self._next:
            return
        self._next = now + 1.0
        uncached = [t for t in self.topics if consumer.partitions_for_topic(t) is None]
        for topic in self.missing.difference(uncached):
            self.missing.discard(topic)
            log.info("source %s: Kafka topic %r now exists; its partitions are assigned at the "
                     "next rebalance and read from %s", self.source_id, topic, self._read_from())
        gone = [t for t in uncached if t not in self.missing and self._listed.get(t, 0.0) <= now]
        if not gone:
            return
        try:
            async with asyncio.timeout(CONFIRM_TIMEOUT):
                existing = await consumer.topics()
        except (KafkaError, TimeoutError) as exc:
            log.debug("source %s: cannot list Kafka's topics (%s); looking again in %gs",
                      self.source_id, str(exc) or type(exc).__name__, self.refresh)
            self._next = now + self.refresh
            return
        for topic in gone:
            if topic in existing:
                self._listed[topic] = now + self.refresh
                continue
            self.missing.add(topic)
            if topic not in self._warned:
                self._warned.add(topic)
                log.warning("source %s: Kafka topic %r does not exist (yet); it is looked for "
                            "every %gs and consumed from its first record once it is created",
                            self.source_id, topic, self.refresh)

    def _read_from(self) -> str:
        if self.policy == "earliest":
            return "their first record (offset_reset_policy: earliest)"
        return ("their first record produced after the source started "
                "(offset_reset_policy: latest)")


async def start_offsets(consumer: Any, fresh: list[TopicPartition], *, policy: str,
                        since_ms: int, source_id: str) -> dict[TopicPartition, int]:
    """Where partitions the group never committed start.

    ``earliest``: their beginning. ``latest``: their end, unless records timestamped at or after
    ``since_ms`` (the source's first start) lie before it; then the first of those, so nothing
    produced while the source was running is skipped (a topic created after the start is read
    from its first record). Partitions that existed before keep ``latest``: their records are
    older. Should the timestamp lookup fail, ``latest`` is used and a warning says so.
    """
    # The consumer's position is its auto_offset_reset (the policy) for a never-committed one.
    ends = {tp: await consumer.position(tp) for tp in fresh}
    if policy != "latest" or not fresh:
        return ends
    try:
        found = await consumer.offsets_for_times(dict.fromkeys(fresh, since_ms))
    except (KafkaError, ValueError) as exc:
        log.warning("source %s: cannot look up the first records produced after the source "
                    "started (%s); %s start at the latest offset", source_id,
                    str(exc) or type(exc).__name__,
                    ", ".join(f"{tp.topic}/{tp.partition}" for tp in sorted(fresh)))
        return ends
    starts = dict(ends)
    for tp in fresh:
        hit = found.get(tp)
        if hit is not None and hit.offset < ends[tp]:
            starts[tp] = hit.offset
            log.info("source %s: %s/%d has no committed offset; starting at offset %d, its "
                     "first record produced after the source started (%d records)", source_id,
                     tp.topic, tp.partition, hit.offset, ends[tp] - hit.offset)
    return starts


async def out_of_range(consumer: Any, committed: dict[TopicPartition, int], *,
                       source_id: str) -> dict[TopicPartition, int]:
    """Where partitions whose committed offset lies outside their records start instead.

    Kafka answers a fetch from such an offset with "out of range", and the consumer then jumps
    to ``offset_reset_policy``: with ``latest``, past every record still there, without a word.
    Two cases, both started at the partition's first record kept, and both logged:

    - The offset is before the first record kept: the records in between were deleted
      (retention, ``DeleteRecords``) before the group read them. They are gone; the ones kept
      are still delivered.
    - The offset is past the end: the topic was deleted and created again (or the partition
      truncated). Every record it holds was produced after the group's last commit.

    Should the lookup fail, nothing changes and a warning says so.
    """
    if not committed:
        return {}
    tps = list(committed)
    try:
        first = await consumer.beginning_offsets(tps)
        end = await consumer.end_offsets(tps)
    except (KafkaError, ValueError) as exc:
        log.warning("source %s: cannot look up the first and last offsets of %s (%s); their "
                    "committed offsets are used as they are", source_id,
                    ", ".join(f"{tp.topic}/{tp.partition}" for tp in sorted(tps)),
                    str(exc) or type(exc).__name__)
        return {}
    starts: dict[TopicPartition, int] = {}
    for tp in sorted(tps):
        offset, lo, hi = committed[tp], first.get(tp), end.get(tp)
        if lo is not None and offset < lo:
            starts[tp] = lo
            log.warning("source %s: %s/%d: records %d to %d were deleted from Kafka (retention) "
                        "before the group read them; starting at offset %d, the first kept",
                        source_id, tp.topic, tp.partition, offset, lo - 1, lo)
        elif hi is not None and offset > hi:
            starts[tp] = lo if lo is not None else 0
            log.warning("source %s: %s/%d: the committed offset %d is past the partition's end "
                        "(%d): the topic was deleted and created again; reading its %d records "
                        "from offset %d", source_id, tp.topic, tp.partition, offset, hi,
                        hi - starts[tp], starts[tp])
    return starts
