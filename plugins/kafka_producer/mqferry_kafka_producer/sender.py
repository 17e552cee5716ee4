"""The send half of the ``kafka_producer`` action: buffered records into Kafka batches, and back.

:class:`BatchSender` places the records whose topic's partition count is known, drains each
partition's queue into aiokafka batches (``create_batch``/``send_batch``), refusing first the
records larger than their topic's ``max.message.bytes``, and settles each record when Kafka
answers for its batch: acknowledged records are secured; retriable errors put them back at the
head of the queue; a record too large for the broker fails alone; Kafka's error responses count
towards ``max_retries``.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import defaultdict
from collections.abc import Callable
from typing import Any

from aiokafka.errors import (
    CorruptRecordException,
    InvalidTimestampError,
    KafkaConnectionError,
    KafkaError,
    MessageSizeTooLargeError,
)
from aiokafka.record.default_records import DefaultRecordBatchBuilder

from mqferry import Delivery, Metrics
from mqferry_kafka_producer.config import KafkaProducerParameters
from mqferry_kafka_producer.partitions import Partitioner, TopicLookups
from mqferry_kafka_producer.record import RECORD_OVERHEAD, Record
from mqferry_kafka_producer.records import RecordBuffer
from mqferry_kafka_producer.session import ProducerSession

log = logging.getLogger(__name__)

#: errors after which an idempotent producer's sequence numbers are out of step with the broker
#: (for example once a batch was refused as too large): start a new producer session
_RESET_ERRORS = ("OutOfOrderSequenceNumber", "UnknownProducerId", "InvalidProducerEpoch",
                 "ProducerFenced")
#: Kafka refused a batch for what one of its records is (too large, a timestamp outside the
#: topic's window, reported corrupt): retrying the batch would be refused again, so its records
#: are tried one per batch. One refused alone fails (``failed.too_large``, ``failed.refused``);
#: one refused alone as corrupt is retried up to ``max_retries`` (the wire's fault, maybe).
_RECORD_REFUSALS = (MessageSizeTooLargeError, InvalidTimestampError, CorruptRecordException)
#: the longest pause before the next round after Kafka refused or lost a batch
_MAX_RETRY_DELAY = 5.0

#: How a record that cannot be delivered is failed: ``(delivery, reason, detail)``.
FailFn = Callable[[Delivery | None, str, str], None]


class BatchSender:
    """Sends an action's buffered records in batches and settles them when Kafka answers.

    Args:
        action_id: ``kafka_producer:<name>``, for logs.
        params: the action's parameters.
        buffer: the action's record buffer.
        partitioner: picks partitions and knows each topic's partition count and size limit.
        lookups: looks unknown topics up in the background.
        session: the producer session (its status follows Kafka's answers).
        metrics: the action's metrics.
        fail: fails one record's delivery with a reason (counted and logged by the action).
        wake: set whenever a batch settles, so the flush loop takes its next round.
    """

    def __init__(self, *, action_id: str, params: KafkaProducerParameters,
                 buffer: RecordBuffer, partitioner: Partitioner, lookups: TopicLookups,
                 session: ProducerSession, metrics: Metrics, fail: FailFn,
                 wake: asyncio.Event) -> None:
        self.id = action_id
        self.params = params
        self.buffer = buffer
        self.partitioner = partitioner
        self.lookups = lookups
        self.session = session
        self.metrics = metrics
        self.fail = fail
        self.wake = wake
        #: records handed to Kafka and not answered yet
        self.inflight = 0
        self._inflight_batches: defaultdict[tuple[str, int], int] = defaultdict(int)
        #: each batch in flight: when it was handed to Kafka (monotonic), and its records
        self._batches: dict[int, tuple[float, list[Record]]] = {}
        #: the pause before the next round, grown while Kafka refuses or loses batches
        self.retry_delay = 0.0
        #: the producer session must be renewed before the next send
        self.reset = False
        #: why the session is renewed, when it is expected (logged as info, not a warning)
        self.reset_why: str | None = None
        #: topics whose unplaced records wait for a lookup (of the topic or its fallback)
        self.blocked: set[str] = set()
        #: set by the action's stop(): batches settled later touch neither buffer nor deliveries
        self.stopped = False
        self._fallback = params.fallback_topic
        # aiokafka sends one batch per partition at a time, so batches queued behind it only add
        # latency. Allowing one in flight and one waiting keeps the partition busy, and records
        # arriving meanwhile wait here and leave together as one large batch.
        self._outstanding_limit = min(params.max_inflight, 2)
        #: when the last batch was handed to Kafka (monotonic), and how many records it held,
        #: for the adaptive linger
        self.last_send = 0.0
        self.last_batch = 0

    def oldest_inflight(self) -> list[float]:
        """The creation times (monotonic) of the oldest record of each batch in flight."""
        return [members[0].created for _, members in self._batches.values()]

    def stalled_for(self) -> float:
        """How long the oldest batch in flight has waited for Kafka's answer (0: none)."""
        if not self._batches:
            return 0.0
        return time.monotonic() - min(sent for sent, _ in self._batches.values())

    def inflight_unsaved(self) -> int:
        """Records in flight that are not in the disk buffer."""
        return sum(1 for _, members in self._batches.values() for r in members if r.seq is None)

    def take_reset(self) -> tuple[bool, str | None]:
        """Whether the session must be renewed, and why; clears the request."""
        reset, why = self.reset, self.reset_why
        self.reset, self.reset_why = False, None
        return reset, why

    async def send(self) -> bool:
        """Send what partitions can take; True when records were held for busy partitions."""
        producer = self.session.producer
        assert producer is not None
        self._place_ready(producer)
        held = False
        buffer = self.buffer
        for key, queue in list(buffer.ready.items()):
            topic, partition = key
            if not queue or partition is None:
                continue
            busy = self._inflight_batches[(topic, partition)]
            if busy >= self._outstanding_limit or (busy and queue[0].alone):
                held = True  # batched together (or the next alone) when one settles
                continue
            await self._batch_and_send(producer, (topic, partition), buffer.take(key))
        return held

    def _place_ready(self, producer: Any) -> None:
        """Place the records whose topic's partition count is known; look the others up.

        Never waits: unplaced records of a topic not known yet stay in their queue while the
        topic is looked up in the background; records of a topic that does not exist go to
        ``fallback_topic`` or fail; records for a partition beyond the count (the topic was
        recreated with fewer) are placed again.
        """
        buffer, parts = self.buffer, self.partitioner
        self.blocked.clear()
        for key in [k for k, q in buffer.ready.items() if q]:
            topic, partition = key
            count = parts.known_count(topic)
            if count is not None and parts.is_stale(topic):
                self.lookups.request(producer, topic)  # meanwhile, the count we know
            if count is not None and partition is not None and partition < count:
                continue
            target = topic
            if count is None:
                if not parts.is_missing(topic):
                    self.lookups.request(producer, topic)
                    self.blocked.add(topic)
                    continue
                if self._fallback is not None:
                    target = self._fallback
                    count = parts.known_count(target)
                    if count is None and not parts.is_missing(target):
                        self.lookups.request(producer, target)
                        self.blocked.add(topic)
                        continue
            records = buffer.take(key)
            if count is None:
                for rec in records:
                    buffer.done(rec)
                    self.fail(rec.delivery, "failed.unknown_topic",
                              f"Kafka topic {target!r} does not exist")
                continue
            for rec in records:
                buffer.move(rec, target, parts.pick(target, rec.key, count))

    def _refuse_oversized(self, topic: str, recs: list[Record]) -> list[Record]:
        """``recs`` without the records larger than ``topic`` accepts, which fail alone.

        Refused here, before they enter a batch: a batch Kafka refuses as too large spends its
        sequence number, and the next batch of the (idempotent) producer would be refused too.
        Only without compression, where the batch's size is known before it is sent.
        """
        limit = self.partitioner.limits.get(topic)
        if limit is None or self.session.compression is not None:
            return recs
        kept = []
        for rec in recs:
            # rec.size is the record's bytes plus 64; the estimate adds at most 97 and 10 per
            # header (aiokafka's upper bound), so most records need no estimate.
            if rec.size + 33 + 10 * len(rec.headers) > limit:
                size = DefaultRecordBatchBuilder.estimate_size_in_bytes(
                    rec.key, rec.value, rec.headers)
                if size > limit:
                    self.buffer.done(rec)
                    data = rec.size - len(rec.topic) - RECORD_OVERHEAD
                    self.fail(rec.delivery, "failed.too_large",
                              f"a record of {data} bytes ({size} as a Kafka batch) for {topic} "
                              f"is larger than the topic accepts (max.message.bytes = {limit})")
                    continue
            kept.append(rec)
        return kept

    async def _batch_and_send(self, producer: Any, tp: tuple[str, int],
                              recs: list[Record]) -> None:
        """Batch and send ``recs``; on an unexpected error, put back what was not sent."""
        recs = self._refuse_oversized(tp[0], recs)
        sent = 0  # recs[:sent] are handed to Kafka (or failed, or put back) already
        try:
            batch = producer.create_batch()
            members: list[Record] = []
            for i, rec in enumerate(recs):
                if rec.alone:
                    await self._submit_built(producer, batch, tp, members)
                    sent = i
                    await self._submit(producer, tp, [rec])
                    sent = len(recs)
                    # One at a time: the rest waits until it settled. Were it refused, the
                    # batches sent behind it would meet "out of order" (its sequence numbers
                    # are spent), and the producer session is renewed before the next.
                    self.buffer.requeue(recs[i + 1:])
                    return
                if batch.append(key=rec.key, value=rec.value, timestamp=rec.timestamp,
                                headers=rec.headers) is None:
                    await self._submit_built(producer, batch, tp, members)
                    sent = i
                    batch, members = producer.create_batch(), []
                    batch.append(key=rec.key, value=rec.value, timestamp=rec.timestamp,
                                 headers=rec.headers)
                members.append(rec)
            await self._submit_built(producer, batch, tp, members)
        except Exception:
            self._put_back(recs[sent:])
            raise

    def _put_back(self, recs: list[Record]) -> None:
        """Requeue records of a round that failed unexpectedly; fail those that failed too often."""
        back: list[Record] = []
        for rec in recs:
            rec.retries += 1
            if rec.retries > self.params.max_retries:
                self.buffer.done(rec)
                self.fail(rec.delivery, "failed.max_retries",
                          f"sending the record failed {rec.retries} times")
            else:
                back.append(rec)
        self.buffer.requeue(back)

    async def _submit(self, producer: Any, tp: tuple[str, int],
                      members: list[Record]) -> None:
        batch = producer.create_batch()
        for rec in members:
            batch.append(key=rec.key, value=rec.value, timestamp=rec.timestamp,
                         headers=rec.headers)
        await self._submit_built(producer, batch, tp, members)

    async def _submit_built(self, producer: Any, batch: Any, tp: tuple[str, int],
                            members: list[Record]) -> None:
        if not members:
            return
        batch.close()
        try:
            fut = await producer.send_batch(batch, tp[0], partition=tp[1])
        except KafkaError as exc:
            self._retry(members, exc)
            return
        self.last_send = now = time.monotonic()
        self.last_batch = len(members)
        self.inflight += len(members)
        self._inflight_batches[tp] += 1
        self._batches[id(fut)] = (now, members)
        fut.add_done_callback(lambda f: self._settled(f, tp, members))

    def _settled(self, fut: asyncio.Future[Any], tp: tuple[str, int],
                 members: list[Record]) -> None:
        if self.stopped:
            return
        self.inflight -= len(members)
        self._inflight_batches[tp] -= 1
        self._batches.pop(id(fut), None)
        exc = fut.exception() if not fut.cancelled() else asyncio.CancelledError()
        if exc is None:
            self._acknowledged(members)
        elif isinstance(exc, _RECORD_REFUSALS) and len(members) > 1:
            self._spent_sequence(exc)
            # Each on its own, so that the record Kafka refuses fails alone.
            for rec in members:
                rec.alone = True
            self.buffer.requeue(members)
        elif isinstance(exc, MessageSizeTooLargeError):
            self._spent_sequence(exc)
            rec = members[0]
            self.buffer.done(rec)
            self.fail(rec.delivery, "failed.too_large",
                      f"a record of {len(rec.value or b'')} bytes for {tp[0]} is larger than "
                      f"the broker accepts")
        elif isinstance(exc, InvalidTimestampError):
            self._spent_sequence(exc)
            rec = members[0]
            self.buffer.done(rec)
            self.fail(rec.delivery, "failed.refused",
                      f"Kafka refused a record for {tp[0]} (timestamp {rec.timestamp}): "
                      f"{exc.message}, {exc.description}")
        else:
            self._retry(members, exc)
        self.wake.set()

    def _spent_sequence(self, exc: KafkaError) -> None:
        # Kafka refused a batch (too large: its limit was not known, or compression hid the
        # size; or for one record's timestamp): aiokafka spent its sequence numbers when it
        # sent it, so an idempotent producer's next batch would be refused as out of order. A
        # new session now is the expected consequence, not a fault: it is logged quietly.
        if self.session.idempotent:
            self.reset = True
            self.reset_why = ("Kafka refused a batch as too large"
                              if isinstance(exc, MessageSizeTooLargeError)
                              else f"Kafka refused a batch: {exc.message}")

    def _acknowledged(self, members: list[Record]) -> None:
        self.retry_delay = 0.0
        self.session.set_connected(True)
        m = self.metrics
        m.inc("success", len(members))
        late = time.monotonic() - self.params.sync_query_timeout
        sync = self.params.query_mode == "sync"
        for rec in members:
            if rec.retries:
                m.inc("retried.success")
            if sync and rec.created < late:
                m.inc("late_reply")
            self.buffer.done(rec)
            if rec.delivery is not None:
                rec.delivery.secured()
                rec.delivery = None

    def _retry(self, members: list[Record], exc: BaseException) -> None:
        name = type(exc).__name__
        if any(name.startswith(e) for e in _RESET_ERRORS):
            self.reset = True
        connection = self.reset or isinstance(
            exc, KafkaConnectionError | asyncio.TimeoutError | asyncio.CancelledError) or (
            name in ("KafkaTimeoutError", "RequestTimedOutError", "NodeNotReadyError",
                     "NotLeaderForPartitionError", "LeaderNotAvailableError"))
        if connection:
            self.session.set_connected(False, str(exc) or type(exc).__name__)
        retry: list[Record] = []
        for rec in members:
            if not connection:
                rec.retries += 1
            if rec.retries > self.params.max_retries:
                self.metrics.inc("retried.failed")
                self.buffer.done(rec)
                self.fail(rec.delivery, "failed.max_retries",
                          f"Kafka refused a record {rec.retries} times: {exc}")
            else:
                retry.append(rec)
        if retry:
            self.metrics.inc("retried", len(retry))
            log.warning("action %s: %d records not acknowledged (%s); retrying", self.id,
                        len(retry), exc or type(exc).__name__)
            self.buffer.requeue(retry)
        self.retry_delay = min(max(0.1, self.retry_delay * 2), _MAX_RETRY_DELAY)
