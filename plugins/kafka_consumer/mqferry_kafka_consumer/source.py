"""The ``kafka_consumer`` source: Kafka records to MQTT (topic mappings) and to rules.

At-least-once, nothing lost on restart:

- Consumption starts only once the MQTT session is up.
- A partition's offset is committed only after every publish made for its records, and for
  every earlier record of the partition, was acknowledged by the MQTT broker, and every rule
  action the records reached settled (:mod:`mqferry_kafka_consumer.offsets`). Commits happen every
  ``offset_commit_interval_seconds``, as soon as half of ``max_inflight`` records settled since
  the last one, on rebalance and on stop.
- ``max_inflight`` bounds the records handed out since the last commit (unsettled, or settled
  and not yet committed): those are what a crash makes mqferry deliver again, so duplicates after
  ``kill -9`` stay within that window whatever the rate.
- A partition the group never committed starts as ``offset_reset_policy`` says, and that start
  is committed on the group's first assignment, so records produced while mqferry is down are
  delivered after a restart. With ``earliest`` it starts at its first record; with ``latest`` at
  its first record produced after the source started, so a topic created while mqferry runs is
  read from its start either way (:mod:`mqferry_kafka_consumer.discovery`). A committed offset
  before the first record kept (retention) or past the end (a re-created topic) starts the
  partition at its first record kept, with a warning, rather than at ``latest``.
- When the window is full, every assigned partition is paused until records settle and are
  committed: a slow MQTT side stops consumption instead of filling memory.
- When the MQTT session drops, every partition is consumed again from its first unsettled record
  once the session is back: order per partition is kept, and duplicates are limited to what was
  in flight.
- A record that cannot be processed (decoding, rendering, publishing or the rules raise, the
  broker refuses the publish, a rule fails on its event, an action fails its output for good)
  fails alone: counted under its reason (``failed.render``, ``failed.publish``, ``failed.rules``,
  ``failed.refused``, ``failed.rule``, ``failed.action``), logged (rate-limited), sent to
  ``dead_letter_topic`` when one is set, and settled, so the partition's offset moves past it
  (:mod:`mqferry_kafka_consumer.handler`). A publish interrupted by a lost MQTT session is not
  a failure: the record is consumed, or its output republished, again.
- The consume loop runs under a :class:`~mqferry.Supervisor`: if it dies all the same, the source
  reports ``disconnected`` with the reason, closes its consumer and starts again with back-off
  from the committed offsets.
- While Kafka answers no fetch of the assigned partitions (Kafka stopped or unreachable; aiokafka
  retries by itself), the source reports ``connecting`` with how long Kafka has been silent,
  so ``/status`` says so within :attr:`KafkaConsumerSource.fetch_stall_after` seconds.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from functools import partial
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.errors import KafkaError
from aiokafka.structs import OffsetAndMetadata

from mqferry import HealthStatus, RuntimeContext, Status, Supervisor, source_metrics
from mqferry_kafka import KafkaConnector, close_client
from mqferry_kafka_consumer.config import KafkaConsumerSourceConfig
from mqferry_kafka_consumer.consuming import FINAL_COMMIT_TIMEOUT, ConsumeLoop
from mqferry_kafka_consumer.deadletter import DeadLetter
from mqferry_kafka_consumer.discovery import TopicWatch, out_of_range, start_offsets
from mqferry_kafka_consumer.handler import RecordHandler

log = logging.getLogger(__name__)

#: How long stop() and a rebalance wait for records in flight before committing what settled.
DRAIN_TIMEOUT = 5.0

#: Seconds without a fetch response for any assigned partition after which the source says Kafka
#: is silent (at least three ``max_wait_time``: an idle fetch returns after that long).
FETCH_STALL_AFTER = 6.0

def _partition_labels(tp: TopicPartition) -> dict[str, str]:
    return {"topic": tp.topic, "partition": str(tp.partition)}


class KafkaConsumerSource(ConsumeLoop):
    """Consumes Kafka topics into MQTT publishes and rule events.

    The consume loop itself is :class:`~mqferry_kafka_consumer.consuming.ConsumeLoop`.

    Args:
        name: the source name.
        config: its validated settings.
        connector: the ``kafka_consumer`` connector it uses.
        context: the runtime (MQTT publisher, rule dispatch).
        consumer_factory: makes the aiokafka consumer from its options (a twin in tests,
            such as :class:`mqferry_kafka.testing.KafkaTwin`'s ``consumer``).
    """

    def __init__(self, *, name: str, config: KafkaConsumerSourceConfig,
                 connector: KafkaConnector, context: RuntimeContext,
                 consumer_factory: Callable[..., Any] = AIOKafkaConsumer) -> None:
        self.name = name
        self.id = f"kafka_consumer:{name}"
        self.params = p = config.parameters
        self.connector = connector
        self.context = context
        self.metrics = source_metrics(self.id)
        self.dead_letter = (DeadLetter(connector=connector, topic=p.dead_letter_topic,
                                       source_id=self.id) if p.dead_letter_topic else None)
        self.handler = RecordHandler(source_id=self.id, params=p, context=context,
                                     metrics=self.metrics, dead_letter=self.dead_letter)
        self.tracker = self.handler.tracker
        self.consumer: AIOKafkaConsumer | None = None
        self._consumer_factory = consumer_factory
        self._consume = Supervisor(f"mqferry[{self.id}].consume", self._run,
                                   on_failure=self._consume_failed)
        self._failure: str | None = None
        self._last_commit = time.monotonic()
        self._commit_every = max(1, p.max_inflight // 2)
        self._status = HealthStatus(Status.STOPPED)
        self._stopping = False
        self._paused = False
        #: why the records in flight are consumed again (``None``: the MQTT session was lost)
        self._rewind_reason: str | None = None
        #: Seconds without a fetch response (assigned, not paused) that make the source
        #: ``connecting``.
        self.fetch_stall_after = max(FETCH_STALL_AFTER, 3 * p.max_wait_time)
        # Wall-clock time (as aiokafka's fetch timestamps) from which fetch silence counts: the
        # start, a new assignment or the end of a pause.
        self._fetching_since = time.time()
        #: Wall-clock ms of the first start: records from then on are never skipped.
        self.since_ms: int | None = None
        self.topic_watch = TopicWatch(self.id, p.kafka_topics(), p.topic_pattern_refresh_interval,
                                      policy=p.offset_reset_policy)
        self.metrics.gauge("inflight", lambda: self.tracker.inflight)
        self.metrics.gauge("paused", lambda: 1.0 if self._paused else 0.0)
        self.metrics.series("lag", ("topic", "partition"))

    @property
    def group_id(self) -> str:
        """The consumer group: configured, or derived from the source name."""
        return self.params.group_id or f"mqferry-kafka-consumer-{self.name}"

    # -- lifecycle ---------------------------------------------------------------------------

    async def start(self) -> None:
        """Start consuming in the background, once the MQTT session is up."""
        if self.since_ms is None:
            self.since_ms = int(time.time() * 1000)
        if not self._consume.running:
            self._stopping = False
            self._failure = None
            self._status = HealthStatus(Status.CONNECTING, "waiting for the MQTT session")
            self._consume.start()

    async def stop(self) -> None:
        """Stop fetching, wait briefly for records in flight, commit, leave the group.

        Idempotent.
        """
        self._stopping = True
        await self._consume.stop()
        if self.consumer is not None:
            await self._drain(DRAIN_TIMEOUT)
            try:
                # bounded: a commit for a deleted topic is retried by aiokafka for ever
                async with asyncio.timeout(FINAL_COMMIT_TIMEOUT):
                    await self.commit_pending()
            except (KafkaError, TimeoutError) as exc:
                log.warning("source %s: final offset commit failed (%s); records since the "
                            "last commit will be consumed again", self.id,
                            str(exc) or type(exc).__name__)
            unsettled = self.tracker.inflight
            if unsettled:
                # Not MQTT messages: no broker holds them for us. The committed offsets are
                # what brings them back.
                log.warning("source %s: stopped with %d records unsettled (MQTT or the rules' "
                            "actions did not settle them within %gs); their offsets are not "
                            "committed, so the consumer group reads them again", self.id,
                            unsettled, DRAIN_TIMEOUT)
            await close_client(self.consumer.stop(), f"source {self.id}",
                               timeout=FINAL_COMMIT_TIMEOUT)
            self.consumer = None
        if self.dead_letter is not None:
            await self.dead_letter.stop()
        self._status = HealthStatus(Status.STOPPED)

    def redeliver(self, reason: str) -> None:
        """Consume again every record in flight: something that held them will never settle
        them (``reason`` says what, for the log); nothing is committed past them.

        Each partition goes back to its first unsettled record; what settles late of the
        records handed out before is ignored (at least once: some are delivered twice).
        """
        if self.tracker.inflight:
            self._rewind_reason = reason
            self.handler.rewind = True

    async def health(self) -> HealthStatus:
        """The source's status and, unless it is ``connected`` (consuming), why.

        ``connecting`` while it waits for MQTT or Kafka (or restarts after a failure), and while
        Kafka answers no fetch of its partitions; ``disconnected`` while its consume loop is dead
        and waits to be restarted.
        """
        status = self._status
        if status.status is Status.CONNECTED:
            silent = self._fetch_silence()
            if silent is not None:
                return HealthStatus(Status.CONNECTING,
                                    f"Kafka answered no fetch for {silent:.0f}s "
                                    f"({', '.join(self.connector.config.servers())})")
        return status

    def _fetch_silence(self) -> float | None:
        """Seconds since Kafka last answered a fetch of an assigned partition, when too long.

        ``None`` while it answers, while the partitions are paused (nothing is fetched) and
        while nothing is assigned (nothing to fetch: a node beyond the partition count).
        """
        consumer = self.consumer
        if consumer is None or self._paused:
            return None
        assigned = consumer.assignment()
        if not assigned:
            return None
        polled = [consumer.last_poll_timestamp(tp) for tp in assigned]
        last = max([self._fetching_since] + [ms / 1000 for ms in polled if ms is not None])
        silent = time.time() - last
        return silent if silent >= self.fetch_stall_after else None

    # -- offsets -----------------------------------------------------------------------------

    async def commit_pending(self) -> None:
        """Commit every partition whose settled offset moved."""
        consumer = self.consumer
        offsets = self.tracker.committable()
        self._last_commit = time.monotonic()
        if consumer is None or not offsets:
            return
        assigned = consumer.assignment()
        offsets = {tp: off for tp, off in offsets.items() if tp in assigned}
        if offsets:
            await consumer.commit({tp: OffsetAndMetadata(off, "") for tp, off in offsets.items()})
            self.tracker.mark_committed(offsets)

    async def take_partitions(self, assigned: list[TopicPartition]) -> None:
        """Newly assigned partitions: pin the start of never-committed ones and of those whose
        committed offset lies outside their records, track their lag."""
        consumer = self.consumer
        assert consumer is not None
        committed = {tp: await consumer.committed(tp) for tp in assigned}
        fresh = [tp for tp, off in committed.items() if off is None]
        starts = await start_offsets(consumer, fresh, policy=self.params.offset_reset_policy,
                                     since_ms=self.since_ms or 0, source_id=self.id)
        starts.update(await out_of_range(
            consumer, {tp: off for tp, off in committed.items() if off is not None},
            source_id=self.id))
        for tp, start in starts.items():
            if start != await consumer.position(tp):
                consumer.seek(tp, start)
            await consumer.commit({tp: OffsetAndMetadata(start, "")})
            committed[tp] = start
        for tp, off in committed.items():
            self.tracker.window(tp).committed = off
            self.metrics.gauge("lag", partial(self._lag_of, tp), _partition_labels(tp))
        self._fetching_since = time.time()
        # Logged once the start positions are pinned: from here on nothing produced is skipped.
        log.info("source %s: partitions assigned: %s", self.id,
                 ", ".join(f"{tp.topic}/{tp.partition}" for tp in sorted(assigned)) or "none")

    async def release_partitions(self, revoked: list[TopicPartition]) -> None:
        """Partitions about to go: let their records settle (briefly), commit, forget them."""
        mine = [tp for tp in revoked if tp in self.tracker.windows]
        if mine:
            await self._drain(DRAIN_TIMEOUT, mine)
            try:
                await self.commit_pending()
            except KafkaError as exc:
                log.warning("source %s: commit before rebalance failed: %s", self.id, exc)
            self.tracker.discard(mine)
        for tp in revoked:
            self.metrics.drop_gauge("lag", _partition_labels(tp))

    def lag(self) -> dict[str, int]:
        """Records not yet settled per partition (``<topic>:<partition>``)."""
        consumer = self.consumer
        if consumer is None:
            return {}
        lags = self.tracker.lag(consumer.highwater)
        return {f"{tp.topic}:{tp.partition}": n for tp, n in lags.items()}

    def _lag_of(self, tp: TopicPartition) -> float:
        consumer = self.consumer
        if consumer is None:
            return 0.0
        return float(self.tracker.lag(consumer.highwater).get(tp, 0))

    async def _drain(self, timeout: float, tps: list[TopicPartition] | None = None) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            windows = self.tracker.windows
            busy = [w for tp, w in windows.items() if (tps is None or tp in tps) and w.slots]
            if not busy:
                return
            await asyncio.sleep(0.02)
