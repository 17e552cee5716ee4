"""The ``kafka_producer`` action: buffers rule outputs and writes them to Kafka in batches.

Rule outputs are rendered at once (any render error, an invalid topic name or a record larger
than a request fails only that output) and offered to the action's
:class:`~mqferry_kafka_producer.records.RecordBuffer`, in the queue of the partition the strategy
picks. One flush task persists what the disk needs, places the records whose topic's partition
count is known by now (unknown topics are looked up in the background, see
:class:`~mqferry_kafka_producer.partitions.TopicLookups`, while the records of known topics go on),
then drains each partition's queue into aiokafka batches (``create_batch``/``send_batch``),
refusing first the records larger than their topic's ``max.message.bytes`` (read with the
partition count), and settles each record when Kafka answers for its batch: acknowledged records
are secured; retriable errors put them back at the head of the queue; a record too large for the
broker fails alone; Kafka's error responses count towards ``max_retries``. Nothing is dropped
silently: every record that is not delivered is counted under its reason.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import logging
import time
from collections import defaultdict
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from aiokafka.errors import KafkaConnectionError, KafkaError, MessageSizeTooLargeError
from aiokafka.record.default_records import DefaultRecordBatchBuilder

from mqferry import (
    Delivery,
    DeliveryError,
    HealthStatus,
    LogLimiter,
    Status,
    Supervisor,
    action_metrics,
    describe,
)
from mqferry_kafka import KafkaConnector
from mqferry_kafka_producer.config import KafkaProducerActionConfig
from mqferry_kafka_producer.partitions import Partitioner, TopicLookups
from mqferry_kafka_producer.records import RECORD_OVERHEAD, Record, RecordBuffer
from mqferry_kafka_producer.render import RecordRenderer
from mqferry_kafka_producer.session import (
    CLOSE_TIMEOUT,
    ProducerFactory,
    ProducerSession,
    max_request_size,
)

log = logging.getLogger(__name__)

#: errors after which an idempotent producer's sequence numbers are out of step with the broker
#: (for example once a batch was refused as too large): start a new producer session
_RESET_ERRORS = ("OutOfOrderSequenceNumber", "UnknownProducerId", "InvalidProducerEpoch",
                 "ProducerFenced")
_MEMORY_LOW = 0.10
#: How long stop() waits for buffered and in-flight records to be acknowledged.
STOP_FLUSH_TIMEOUT = 30.0
#: the longest pause after a flush round that failed unexpectedly
_MAX_ERROR_BACKOFF = 5.0


def _text(value: bytes | None) -> str | None:
    if value is None:
        return None
    try:
        return value.decode()
    except UnicodeDecodeError:
        return "base64:" + base64.b64encode(value).decode()


def memory_available_fraction() -> float:
    """MemAvailable / MemTotal from /proc/meminfo (1.0 where it cannot be read)."""
    try:
        with Path("/proc/meminfo").open() as f:
            info = {line.split(":")[0]: int(line.split()[1]) for line in f if ":" in line}
        return info["MemAvailable"] / info["MemTotal"]
    except (OSError, KeyError, ValueError, ZeroDivisionError):
        return 1.0


class KafkaProducerAction:
    """Writes rule outputs to Kafka.

    Args:
        name: the action name.
        config: its validated settings.
        connector: the ``kafka_producer`` connector it uses.
        data_dir: the runtime's data directory (disk buffers live below it).
        producer_factory: makes the aiokafka producer (a twin in tests).
        close_timeout: how long :meth:`stop` waits for the producer to close.
    """

    def __init__(self, *, name: str, config: KafkaProducerActionConfig,
                 connector: KafkaConnector, data_dir: Path,
                 producer_factory: ProducerFactory | None = None,
                 close_timeout: float = CLOSE_TIMEOUT) -> None:
        self.name = name
        self.id = f"kafka_producer:{name}"
        self.params = p = config.parameters
        self.connector = connector
        self.renderer = RecordRenderer(p)
        self.partitioner = Partitioner(p)
        self.lookups = TopicLookups(
            self.partitioner, connector.config.metadata_request_timeout,
            on_result=self._looked_up, on_unreachable=self._unreachable,
            name=f"mqferry[{self.id}].metadata")
        self.session = (ProducerSession(self.id, p, connector) if producer_factory is None
                        else ProducerSession(self.id, p, connector, producer_factory))
        #: records larger than this cannot be sent in any request
        self.max_record_bytes = max_request_size(p)
        self.close_timeout = close_timeout
        # a stream of bad records must not flood the log
        self._warn = LogLimiter(log, interval=1.0)
        self.clock = self.session.clock
        self.buffer = RecordBuffer(p.buffer, data_dir / "kafka_producer" / name, self._dropped,
                                   self._place)
        #: with ``mqtt.delivery: at_most_once``, how long a PUBACK waits for Kafka (sync mode)
        self.ack_wait = p.sync_query_timeout if p.query_mode == "sync" else None
        self.metrics = m = action_metrics(self.id)
        m.gauge("queuing", lambda: self.buffer.queued)
        m.gauge("queuing_bytes", lambda: self.buffer.bytes)
        m.gauge("inflight", lambda: self._inflight)
        m.gauge("oldest_unacked_age_ms", self._oldest_age_ms)
        #: the latest record that failed, ``{reason, message, at}`` (epoch ms), for the API's
        #: ``last_error``: the log is rate-limited, this always shows the newest
        self.last_error: dict[str, Any] | None = None
        self._inflight = 0
        self._inflight_batches: defaultdict[tuple[str, int], int] = defaultdict(int)
        self._oldest: dict[int, float] = {}
        self._wake = asyncio.Event()
        self._idle = asyncio.Event()
        self._idle.set()
        self._task: Supervisor | None = None
        self._retry_delay = 0.0
        self._reset = False
        #: why the session is renewed, when it is expected (logged as info, not a warning)
        self._reset_why: str | None = None
        self._error_delay = 0.0
        #: topics whose unplaced records wait for a lookup (of the topic or its fallback)
        self._blocked: set[str] = set()
        #: set by stop(): batches settled later no longer touch the buffer or the deliveries
        self._stopped = False
        self._fallback = None if p.fallback_topic is None else p.fallback_topic
        # aiokafka sends one batch per partition at a time, so batches queued behind it only add
        # latency. Allowing one in flight and one waiting keeps the partition busy, and records
        # arriving meanwhile wait here and leave together as one large batch.
        self._outstanding_limit = min(p.max_inflight, 2)

    # -- data path ---------------------------------------------------------------------------

    def submit(self, output: Mapping[str, Any], delivery: Delivery) -> None:
        """Render ``output`` into a record and buffer it; never blocks, never raises.

        An output that cannot become a record (any error while rendering, an invalid topic name
        without ``fallback_topic``, a record larger than a request) fails alone, with its reason.
        """
        self.metrics.inc("matched")
        self.renderer.replaced = 0
        try:
            rec = self._record(output, delivery)
        except DeliveryError as exc:
            self._fail(delivery, exc.reason, exc.detail)
            return
        if self.renderer.replaced:
            self.metrics.inc("rendered.not_utf8")
            self._warn.warning(
                "rendered.not_utf8", "action %s: a value that is not UTF-8 was written into "
                "JSON for %s with U+FFFD replacement characters, as EMQX does; send it with "
                "${payload} to keep its bytes, or base64_encode() it in the rule's SQL",
                self.id, rec.topic)
        self.buffer.offer(rec)
        self._idle.clear()
        self._wake.set()

    def _record(self, output: Mapping[str, Any], delivery: Delivery | None) -> Record:
        """The record for ``output``.

        Raises:
            DeliveryError: the output cannot become a record (the reason says why).
        """
        r = self.renderer
        try:
            topic = self._topic(output)
            rec = Record(topic, r.render_key(output), r.render_value(output),
                         r.render_timestamp(output), r.render_headers(output), delivery,
                         queued_at=self.clock.now())
        except DeliveryError:
            raise
        except Exception as exc:  # hostile output (depth, odd types): this output alone fails
            raise DeliveryError("failed.render", f"cannot render the record: {exc!r}"[:500]
                                ) from None
        data = rec.size - len(rec.topic)
        if data > self.max_record_bytes:
            raise DeliveryError("failed.too_large",
                                f"a record of {data} bytes for {topic} is larger than the "
                                f"largest request ({self.max_record_bytes} bytes)")
        return rec

    def _topic(self, output: Mapping[str, Any]) -> str:
        try:
            return self.renderer.render_topic(output)
        except DeliveryError as exc:
            if exc.reason != "failed.invalid_topic" or self._fallback is None:
                raise
            self.metrics.inc("fallback.invalid_topic")
            self._warn.warning("fallback.invalid_topic", "action %s: %s; sent to %s instead",
                               self.id, exc.detail, self._fallback)
            return self._fallback

    def preview(self, output: Mapping[str, Any]) -> dict[str, Any]:
        """The Kafka record ``output`` would become, without sending it.

        The partition is given when it is determined by the key (``key_dispatch``) and the
        topic's partition count is known; otherwise it is chosen when the record is buffered
        (or, for a topic not looked up yet, before it is sent).

        Raises:
            DeliveryError: the output cannot be rendered (the reason says why).
        """
        rec = self._record(output, None)
        topic, key = rec.topic, rec.key
        count = self.partitioner.known_count(topic)
        partition = None
        if count is not None and (count == 1 or (
                self.params.partition_strategy == "key_dispatch" and key is not None)):
            partition = self.partitioner.pick(topic, key, count)
        return {
            "topic": topic,
            "partition": partition,
            "partition_strategy": self.params.partition_strategy,
            "key": _text(key),
            "value": _text(rec.value),
            "headers": [{"key": k, "value": _text(v)} for k, v in rec.headers],
            "timestamp": rec.timestamp,
        }

    def _fail(self, delivery: Delivery | None, reason: str, detail: str) -> None:
        self.metrics.inc("failed")
        self.metrics.inc(reason)
        self.last_error = {"reason": reason, "message": detail, "at": int(time.time() * 1000)}
        self._warn.warning(reason, "action %s: %s: %s", self.id, reason, detail)
        if delivery is not None:
            delivery.failed(reason)

    def _dropped(self, rec: Record, reason: str) -> None:
        self.metrics.inc("dropped")
        self.metrics.inc(reason)
        if rec.delivery is not None:
            rec.delivery.failed(reason)
            rec.delivery = None

    def _oldest_age_ms(self) -> float:
        times = list(self._oldest.values())
        queued = self.buffer.oldest_created()
        if queued is not None:
            times.append(queued)
        return round((time.monotonic() - min(times)) * 1000) if times else 0

    def _place(self, rec: Record) -> int | None:
        count = self.partitioner.known_count(rec.topic)
        if count is None:
            return None
        return 0 if count == 1 else self.partitioner.pick(rec.topic, rec.key, count)

    def _looked_up(self) -> None:
        self.session.set_connected(True)  # a broker answered
        self._blocked.clear()
        self._wake.set()

    def _unreachable(self, reason: str) -> None:
        # Everything stays queued, in order; the lookup is retried with back-off.
        self.session.set_connected(False, f"no broker answers: {reason}")

    # -- lifecycle ---------------------------------------------------------------------------

    async def start(self) -> None:
        """Replay what a disk buffer kept, start the producer (retrying) and the flush task."""
        if self._task is None:
            self._stopped = False
            replayed = self.buffer.recover(self.clock.now())
            if replayed:
                log.info("action %s: replaying %d records from the disk buffer", self.id,
                         replayed)
                self._idle.clear()
                self._wake.set()
            self.session.status = HealthStatus(Status.CONNECTING)
            self._task = Supervisor(f"mqferry[{self.id}].flush", self._run,
                                    on_failure=self._flush_failed)
            self._task.start()

    def _flush_failed(self, exc: BaseException, delay: float) -> None:
        # The loop survives errors of a round (see _run); this is a failure outside a round
        # (connecting, say). Its records stay buffered and the loop starts again.
        self.session.status = HealthStatus(
            Status.DISCONNECTED, f"flush task failed: {describe(exc)}; restarting in {delay:.1f}s")

    @property
    def stop_timeout(self) -> float:
        """How long :meth:`stop` may take: the flush wait plus the producer's close."""
        return STOP_FLUSH_TIMEOUT + self.close_timeout

    async def stop(self, timeout: float = STOP_FLUSH_TIMEOUT) -> None:
        """Flush what is buffered and in flight (up to ``timeout`` seconds), then close.

        Returns within about ``timeout`` seconds plus the producer's close timeout, even when
        Kafka hangs: what is left is kept by a disk buffer, and not acknowledged to MQTT by a
        memory buffer (the broker redelivers it).
        """
        if self._task is None:
            return
        if self.session.producer is not None:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._idle.wait(), timeout)
        task, self._task = self._task, None
        await task.stop()
        await self.lookups.close()
        closed = await self.session.close(self.close_timeout)
        await asyncio.sleep(0)  # callbacks of the batches settled by the close run first
        # From here, batches that Kafka answers late settle nothing: their records stay in
        # the disk buffer or unacknowledged, and are sent again (at least once).
        self._stopped = True
        left = self.buffer.queued + self._inflight
        if left:
            where = ("kept in the disk buffer" if self.buffer.disk is not None
                     else "not acknowledged to MQTT, so the broker redelivers them")
            log.warning("action %s stopped with %d records unsent%s: %s", self.id, left,
                        "" if closed else " (Kafka does not answer)", where)
        self.buffer.close()

    async def health(self) -> HealthStatus:
        """``connected`` once the producer is up; else ``connecting`` with the reason."""
        return self.session.status

    # -- internals ---------------------------------------------------------------------------

    async def _run(self) -> None:
        await self.session.connect()
        last_checks = 0.0
        while True:
            try:
                last_checks = await self._round(last_checks)
                self._error_delay = 0.0
            except Exception as exc:
                # One bad round must not end the action: its records were put back (or failed
                # once they failed too often); try again after a pause.
                self.metrics.inc("flush_errors")
                self._error_delay = min(max(0.1, self._error_delay * 2), _MAX_ERROR_BACKOFF)
                log.error("action %s: a flush round failed (%r); retrying in %.1fs", self.id,
                          exc, self._error_delay, exc_info=exc)
                await asyncio.sleep(self._error_delay)
                self._wake.set()

    def _has_work(self) -> bool:
        """Whether records can move now (not only records waiting for a topic's lookup)."""
        if self.buffer.to_persist:
            return True
        blocked = self._blocked
        return any(q and not (key[1] is None and key[0] in blocked)
                   for key, q in self.buffer.ready.items())

    async def _round(self, last_checks: float) -> float:
        """One flush round; the time of the last periodic checks."""
        p = self.params
        if not self._has_work():
            if self._inflight == 0 and not self.buffer.queued:
                self._idle.set()
            await self._wake.wait()
        self._wake.clear()
        await self.buffer.persist()
        if self._reset:
            self._reset, why, self._reset_why = False, self._reset_why, None
            await self.session.renew(why)
        if self.session.producer is None:
            await self.session.connect()
        if self._retry_delay:
            await asyncio.sleep(self._retry_delay)
        if p.max_linger_time > 0 and self.buffer.bytes < p.max_linger_bytes:
            await asyncio.sleep(p.max_linger_time)
            await self.buffer.persist()
        now = time.monotonic()
        if now - last_checks >= 1.0:
            last_checks = now
            self._periodic_checks()
        self.partitioner.new_round()
        if await self._send():
            # Some partitions were busy: wait for one of their batches to settle rather
            # than spin over the held records.
            self._wake.clear()
            if self._inflight:
                await self._wake.wait()
                self._wake.set()
        return last_checks

    def _periodic_checks(self) -> None:
        expired = self.buffer.expire(self.clock.now() - self.params.max_batch_age)
        if expired:
            log.warning("action %s: %d records expired (max_batch_age)", self.id, expired)
        opts = self.params.buffer
        if (opts.mode == "memory" and opts.memory_overload_protection
                and memory_available_fraction() < _MEMORY_LOW):
            shed = self.buffer.shed_memory("dropped.queue_full")
            log.warning("action %s: system memory is low; dropped %d buffered records",
                        self.id, shed)

    async def _send(self) -> bool:
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
            if self._inflight_batches[(topic, partition)] >= self._outstanding_limit:
                held = True  # batched together when one of its batches settles
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
        self._blocked.clear()
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
                    self._blocked.add(topic)
                    continue
                if self._fallback is not None:
                    target = self._fallback
                    count = parts.known_count(target)
                    if count is None and not parts.is_missing(target):
                        self.lookups.request(producer, target)
                        self._blocked.add(topic)
                        continue
            records = buffer.take(key)
            if count is None:
                for rec in records:
                    buffer.done(rec)
                    self._fail(rec.delivery, "failed.unknown_topic",
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
                    self._fail(rec.delivery, "failed.too_large",
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
                    sent = i + 1
                    batch, members = producer.create_batch(), []
                    continue
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
                self._fail(rec.delivery, "failed.max_retries",
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
        self._inflight += len(members)
        self._inflight_batches[tp] += 1
        self._oldest[id(fut)] = members[0].created
        fut.add_done_callback(lambda f: self._settled(f, tp, members))

    def _settled(self, fut: asyncio.Future[Any], tp: tuple[str, int],
                 members: list[Record]) -> None:
        if self._stopped:
            return
        self._inflight -= len(members)
        self._inflight_batches[tp] -= 1
        self._oldest.pop(id(fut), None)
        exc = fut.exception() if not fut.cancelled() else asyncio.CancelledError()
        if exc is None:
            self._acknowledged(members)
        elif isinstance(exc, MessageSizeTooLargeError) and len(members) == 1:
            self._spent_sequence()
            rec = members[0]
            self.buffer.done(rec)
            self._fail(rec.delivery, "failed.too_large",
                       f"a record of {len(rec.value or b'')} bytes for {tp[0]} is larger than "
                       f"the broker accepts")
        elif isinstance(exc, MessageSizeTooLargeError):
            self._spent_sequence()
            # Try each record on its own, so that one oversized record fails alone.
            for rec in members:
                rec.alone = True
            self.buffer.requeue(members)
        else:
            self._retry(members, exc)
        self._wake.set()

    def _spent_sequence(self) -> None:
        # Kafka refused a batch as too large (its limit was not known, or compression hid the
        # size): an idempotent producer's next batch would be refused as out of order. A new
        # session now is the expected consequence, not a fault: it is logged quietly.
        if self.session.idempotent:
            self._reset = True
            self._reset_why = "Kafka refused a batch as too large"

    def _acknowledged(self, members: list[Record]) -> None:
        self._retry_delay = 0.0
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
            self._reset = True
        connection = self._reset or isinstance(
            exc, KafkaConnectionError | asyncio.TimeoutError | asyncio.CancelledError) or (
            name in ("KafkaTimeoutError", "RequestTimedOutError",
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
                self._fail(rec.delivery, "failed.max_retries",
                           f"Kafka refused a record {rec.retries} times: {exc}")
            else:
                retry.append(rec)
        if retry:
            self.metrics.inc("retried", len(retry))
            log.warning("action %s: %d records not acknowledged (%s); retrying", self.id,
                        len(retry), exc or type(exc).__name__)
            self.buffer.requeue(retry)
        self._retry_delay = min(max(0.1, self._retry_delay * 2), 5.0)
