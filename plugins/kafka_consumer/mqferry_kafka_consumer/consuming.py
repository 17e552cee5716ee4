"""The source's consume loop: connect, fetch within the in-flight window, pause when it is full.

Also what the loop does between fetches: pace the offset commits, consume again from the first
unsettled records after a lost MQTT session (:meth:`ConsumeLoop._do_rewind`), and close the
consumer a failed run left behind. :class:`~mqferry_kafka_consumer.source.KafkaConsumerSource`
holds the state (it inherits this loop) and its lifecycle, offsets and partitions.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from aiokafka import AIOKafkaConsumer, ConsumerRebalanceListener, TopicPartition
from aiokafka.errors import KafkaError

from mqferry import HealthStatus, Metrics, RuntimeContext, Status, describe
from mqferry_kafka import KafkaConnector, close_client, start_with_backoff
from mqferry_kafka_consumer.config import KafkaConsumerParameters
from mqferry_kafka_consumer.deadletter import DeadLetter
from mqferry_kafka_consumer.discovery import TopicWatch
from mqferry_kafka_consumer.handler import RecordHandler
from mqferry_kafka_consumer.offsets import OffsetTracker
from mqferry_kafka_consumer.undecodable import UNDECODABLE, skip_undecodable

log = logging.getLogger(__name__)

#: How long stopping waits for the last offset commit.
FINAL_COMMIT_TIMEOUT = 10.0


class _Rebalance(ConsumerRebalanceListener):  # type: ignore[misc]
    """Commits before partitions go, and pins the start of partitions the group never committed.

    With ``latest`` this pins "latest" to the first assignment, so records produced while
    mqferry is down later are still delivered after a restart.
    """

    def __init__(self, source: ConsumeLoop) -> None:
        self._source = source

    async def on_partitions_revoked(self, revoked: list[TopicPartition]) -> None:
        await self._source.release_partitions(revoked)

    async def on_partitions_assigned(self, assigned: list[TopicPartition]) -> None:
        await self._source.take_partitions(assigned)


class ConsumeLoop:
    """The consume loop of :class:`~mqferry_kafka_consumer.source.KafkaConsumerSource`.

    A mixin rather than an object of its own: the loop reads and sets the source's state (status,
    pause, fetch silence) on every round, and tests reach :meth:`_room` and :meth:`_commit_due`
    on the source.
    """

    # Set by the source's constructor.
    id: str
    params: KafkaConsumerParameters
    connector: KafkaConnector
    context: RuntimeContext
    metrics: Metrics
    dead_letter: DeadLetter | None
    handler: RecordHandler
    tracker: OffsetTracker
    consumer: AIOKafkaConsumer | None
    topic_watch: TopicWatch
    _consumer_factory: Callable[..., Any]
    _failure: str | None
    _last_commit: float
    _commit_every: int
    _status: HealthStatus
    _stopping: bool
    _paused: bool
    _rewind_reason: str | None
    _fetching_since: float

    if TYPE_CHECKING:
        # The source's offsets and partitions, which the loop commits and the listener calls.
        @property
        def group_id(self) -> str: ...
        async def commit_pending(self) -> None: ...
        async def take_partitions(self, assigned: list[TopicPartition]) -> None: ...
        async def release_partitions(self, revoked: list[TopicPartition]) -> None: ...

    def _make_consumer(self) -> AIOKafkaConsumer:
        p = self.params
        options = self.connector.client_options("consumer")
        # aiokafka's 5 minutes would leave a topic created after the start unread that long.
        options["metadata_max_age_ms"] = int(p.topic_pattern_refresh_interval * 1000)
        consumer: AIOKafkaConsumer = self._consumer_factory(
            **options,
            group_id=self.group_id,
            enable_auto_commit=False,
            auto_offset_reset=p.offset_reset_policy,
            fetch_max_bytes=max(p.max_batch_bytes, 1),
            max_partition_fetch_bytes=max(p.max_batch_bytes, 1),
            fetch_max_wait_ms=int(p.max_wait_time * 1000),
            session_timeout_ms=int(p.session_timeout * 1000),
            heartbeat_interval_ms=int(p.heartbeat_interval * 1000),
        )
        return consumer

    async def _connect(self) -> AIOKafkaConsumer:
        async def attempt() -> AIOKafkaConsumer:
            consumer = self._make_consumer()
            try:
                await consumer.start()
                self.consumer = consumer
                if self.dead_letter is not None:
                    await self.dead_letter.start()
                pattern = self.params.subscription_pattern()
                if pattern is not None:
                    consumer.subscribe(pattern=pattern, listener=_Rebalance(self))
                else:
                    consumer.subscribe(self.params.kafka_topics(), listener=_Rebalance(self))
            except BaseException:
                self.consumer = None
                await close_client(consumer.stop(), f"source {self.id}",
                                   timeout=FINAL_COMMIT_TIMEOUT)
                raise
            return consumer

        def waiting(reason: str) -> None:
            self._status = HealthStatus(Status.CONNECTING, reason)

        return await start_with_backoff(attempt, what=f"source {self.id}",
                                        hosts=self.connector.config.bootstrap_hosts,
                                        on_waiting=waiting)

    def _consume_failed(self, exc: BaseException, delay: float) -> None:
        self.metrics.inc("consume.restarted")
        self._failure = f"consume task failed: {describe(exc)}"
        self._status = HealthStatus(Status.DISCONNECTED,
                                    f"{self._failure}; restarting in {delay:.1f}s")

    async def _close_failed_consumer(self) -> None:
        """After a failed run: commit what settled, leave the group, forget what was in flight.

        The new consumer starts from the committed offsets, so nothing unsettled is skipped.
        """
        consumer = self.consumer
        if consumer is None:
            return
        try:
            async with asyncio.timeout(FINAL_COMMIT_TIMEOUT):
                await self.commit_pending()
        except Exception as exc:  # consumed again from the last commit: duplicates, no loss
            log.warning("source %s: commit after the failure failed: %s", self.id, describe(exc))
        self.consumer = None
        lost = self.tracker.inflight
        self.tracker.discard(list(self.tracker.windows))
        if lost:
            self.metrics.inc("redelivered", lost)
        await close_client(consumer.stop(), f"source {self.id}: the failed consumer",
                           timeout=FINAL_COMMIT_TIMEOUT)

    async def _run(self) -> None:
        await self._close_failed_consumer()
        if self._failure is not None:
            self._status = HealthStatus(Status.CONNECTING,
                                        f"restarting after: {self._failure}")
        await self.context.mqtt.wait_connected()
        consumer = await self._connect()
        self._fetching_since = time.time()
        self._status = HealthStatus(Status.CONNECTED)
        self._failure = None
        what = ", ".join(self.params.kafka_topics())
        if self.params.topic_pattern:
            what = " and ".join(x for x in (what, f"topics matching {self.params.topic_pattern!r}")
                                if x)
        log.info("source %s: consuming %s as group %s", self.id, what, self.group_id)
        interval = self.params.offset_commit_interval_seconds
        while not self._stopping:
            await self.topic_watch.check(consumer)
            if self.handler.rewind:
                await self._do_rewind(consumer)
            if self._commit_due(interval):
                await self._try_commit()
            room = self._room()
            if room <= 0:
                await self._pause_until_room(consumer)
                continue
            try:
                batches = await consumer.getmany(timeout_ms=1000, max_records=room)
            except UNDECODABLE as exc:
                await skip_undecodable(consumer, self.handler, room, exc)
                continue
            if batches:
                self.handler.handle_batches(batches)

    def _commit_due(self, interval: float) -> bool:
        return (time.monotonic() - self._last_commit >= interval
                or self.tracker.uncommitted() >= self._commit_every)
    def _room(self) -> int:
        """Records that may still be handed out before the window is full."""
        tracker = self.tracker
        return self.params.max_inflight - tracker.inflight - tracker.uncommitted()

    async def _try_commit(self) -> bool:
        try:
            await self.commit_pending()
        except KafkaError as exc:  # rebalancing: the revoke hook commits instead
            log.warning("source %s: commit failed: %s", self.id, exc)
            return False
        return True

    async def _pause_until_room(self, consumer: AIOKafkaConsumer) -> None:
        tracker = self.tracker
        interval = self.params.offset_commit_interval_seconds
        consumer.pause(*consumer.assignment())
        self._paused = True
        self.metrics.inc("pauses")
        log.debug("source %s: %d records in flight, %d not committed; partitions paused",
                  self.id, tracker.inflight, tracker.uncommitted())
        try:
            while not (self._stopping or self.handler.rewind) and self._room() <= 0:
                if self._commit_due(interval):
                    if not await self._try_commit():
                        await asyncio.sleep(0.5)
                    continue
                # Full with more than half the window unsettled: wait until half settled (a
                # commit is then due).
                try:
                    async with asyncio.timeout(1.0):
                        await tracker.space.wait()
                except TimeoutError:
                    # Paused partitions return nothing; polling keeps the group membership.
                    await consumer.getmany(timeout_ms=0)
        finally:
            consumer.resume(*consumer.assignment())
            self._paused = False
            self._fetching_since = time.time()

    async def _do_rewind(self, consumer: AIOKafkaConsumer) -> None:
        self._status = HealthStatus(Status.CONNECTING, "waiting for the MQTT session")
        await self.context.mqtt.wait_connected()
        self.handler.rewind = False
        lost = self.tracker.inflight
        points = self.tracker.rewind()
        assigned = consumer.assignment()
        for tp, offset in points.items():
            if tp in assigned:
                consumer.seek(tp, offset)
        self.metrics.inc("redelivered", lost)
        self._status = HealthStatus(Status.CONNECTED)
        why, self._rewind_reason = self._rewind_reason or "MQTT session lost", None
        log.warning("source %s: %s with %d records in flight; consuming again "
                    "from %s", self.id, why, lost,
                    ", ".join(f"{tp.topic}/{tp.partition}@{o}" for tp, o in sorted(points.items()))
                    or "the committed offsets")
