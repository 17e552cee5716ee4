"""The ``kafka_producer`` action: buffers rule outputs and writes them to Kafka in batches.

Rule outputs are rendered at once (any render error, an invalid topic name or a record larger
than a request fails only that output) and offered to the action's
:class:`~mqferry_kafka_producer.records.RecordBuffer`, in the queue of the partition the strategy
picks. One flush task (:class:`~mqferry_kafka_producer.flush.FlushLoop`) persists what the disk
needs, places the records whose topic's partition count is known by now (unknown topics are
looked up in the background, see :class:`~mqferry_kafka_producer.partitions.TopicLookups`, while
the records of known topics go on), then hands the partitions' queues to its
:class:`~mqferry_kafka_producer.sender.BatchSender`, which batches them and settles each record
when Kafka answers. Nothing is dropped silently: every record that is not delivered is counted
under its reason.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

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
from mqferry_kafka_producer.flush import FlushLoop
from mqferry_kafka_producer.ondisk import FoundOnDisk
from mqferry_kafka_producer.partitions import Partitioner, TopicLookups
from mqferry_kafka_producer.persist import Persister, left_behind
from mqferry_kafka_producer.record import Record
from mqferry_kafka_producer.records import RecordBuffer
from mqferry_kafka_producer.render import RecordRenderer, record_preview
from mqferry_kafka_producer.sender import BatchSender
from mqferry_kafka_producer.session import (
    CLOSE_TIMEOUT,
    ProducerFactory,
    ProducerSession,
    max_request_size,
)

log = logging.getLogger(__name__)

#: How long stop() waits for buffered and in-flight records to be acknowledged.
STOP_FLUSH_TIMEOUT = 30.0

class KafkaProducerAction:
    """Writes rule outputs to Kafka.

    Args:
        name: the action name.
        config: its validated settings.
        connector: the ``kafka_producer`` connector it uses.
        data_dir: the runtime's data directory (disk buffers live below it).
        producer_factory: makes the aiokafka producer (a twin in tests).
        close_timeout: how long :meth:`stop` waits for the producer to close.
        flush_timeout: how long :meth:`stop` waits, by default, for what is buffered and in
            flight to be acknowledged.
    """

    def __init__(self, *, name: str, config: KafkaProducerActionConfig,
                 connector: KafkaConnector, data_dir: Path,
                 producer_factory: ProducerFactory | None = None,
                 close_timeout: float = CLOSE_TIMEOUT,
                 flush_timeout: float = STOP_FLUSH_TIMEOUT) -> None:
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
        self.flush_timeout = flush_timeout
        # a stream of bad records must not flood the log
        self._warn = LogLimiter(log, interval=1.0)
        self.clock = self.session.clock
        self.buffer = RecordBuffer(p.buffer, data_dir / "kafka_producer" / name, self._dropped,
                                   self._place)
        #: a disk buffer has one owner: replacing this action, a reconfiguration starts (opens)
        #: the new one once this one stopped, routing to it meanwhile (see apply.py)
        self.exclusive = p.buffer.mode != "memory"
        #: once stopped, how many records it left in its disk buffer, for the next owner to send
        self.kept = 0
        #: where its disk buffer lives: any action of this name sends what is left there, and
        #: one in memory mode opens it only to do so
        self.disk_directory = self.buffer.directory
        #: with ``mqtt.delivery: at_most_once``, how long a PUBACK waits for Kafka (sync mode)
        self.ack_wait = p.sync_query_timeout if p.query_mode == "sync" else None
        self.metrics = m = action_metrics(self.id)
        m.gauge("queuing", lambda: self.buffer.queued)
        m.gauge("queuing_bytes", lambda: self.buffer.bytes)
        m.gauge("inflight", lambda: self.sender.inflight)
        m.gauge("oldest_unacked_age_ms", self._oldest_age_ms)
        #: the latest record that failed, ``{reason, message, at}`` (epoch ms), for the API's
        #: ``last_error``: the log is rate-limited, this always shows the newest
        self.last_error: dict[str, Any] | None = None
        self._wake = asyncio.Event()
        self._idle = asyncio.Event()
        self._idle.set()
        self._task: Supervisor | None = None
        self._persist_task: Supervisor | None = None
        #: writes disk-bound records whether or not Kafka answers (see persist.py)
        self.persister = Persister(self.id, self.buffer, m, self._wake, replay=self._replay,
                                   replayed=self._replayed)
        self._fallback = None if p.fallback_topic is None else p.fallback_topic
        self.sender = BatchSender(action_id=self.id, params=p, buffer=self.buffer,
                                  partitioner=self.partitioner, lookups=self.lookups,
                                  session=self.session, metrics=m, fail=self._fail,
                                  wake=self._wake)
        self.flush = FlushLoop(action_id=self.id, params=p, buffer=self.buffer,
                               partitioner=self.partitioner, session=self.session,
                               sender=self.sender, persister=self.persister, metrics=m,
                               wake=self._wake, idle=self._idle,
                               stall_after=connector.config.request_timeout)

    @property
    def stall_after(self) -> float:
        """How long a batch may wait for Kafka's answer before the status says Kafka is gone."""
        return self.flush.stall_after

    @stall_after.setter
    def stall_after(self, seconds: float) -> None:
        self.flush.stall_after = seconds

    # -- data path ---------------------------------------------------------------------------

    def submit(self, output: Mapping[str, Any], delivery: Delivery) -> None:
        """Render ``output`` into a record and buffer it; never blocks, never raises.

        An output that cannot become a record (any error while rendering, an invalid topic name
        without ``fallback_topic``, a record larger than a request) fails alone, with its reason.
        """
        self.metrics.inc("matched")
        r = self.renderer
        r.begin()
        try:
            rec = self._record(output, delivery)
        except DeliveryError as exc:
            self._fail(delivery, exc.reason, exc.detail)
            return
        if r.replaced:
            self.metrics.inc("rendered.not_utf8")
            self._warn.warning(
                "rendered.not_utf8", "action %s: a value that is not UTF-8 was written into "
                "JSON for %s with U+FFFD replacement characters, as EMQX does; send it with "
                "${payload} to keep its bytes, or base64_encode() it in the rule's SQL",
                self.id, rec.topic)
        skipped = r.skipped_headers
        if skipped:
            self.metrics.inc("rendered.header_skipped")
            self._warn.warning(
                "rendered.header_skipped", "action %s: %s left out of a record for %s: "
                "value cannot be JSON-encoded (%s)", self.id,
                ", ".join(f"header {k!r}" for k, _ in skipped), rec.topic,
                "; ".join(why for _, why in skipped))
        buffer = self.buffer
        buffer.offer(rec)
        if buffer.to_persist:
            self.persister.wake.set()
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
        return record_preview(topic, partition, strategy=self.params.partition_strategy, key=key,
                              value=rec.value, headers=rec.headers, timestamp=rec.timestamp)

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
        times = self.sender.oldest_inflight()
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
        self.sender.blocked.clear()
        self._wake.set()

    def _unreachable(self, reason: str) -> None:
        # Everything stays queued, in order; the lookup is retried with back-off.
        self.session.set_connected(False, f"no broker answers: {reason}")

    # -- lifecycle ---------------------------------------------------------------------------

    async def start(self) -> None:
        """Open the disk buffer and replay what it kept, start the producer (retrying) and the
        flush task.

        A disk buffer that cannot be opened (an unusable directory, one the action being
        replaced still holds) does not fail the start: the persist task tries again with
        back-off, and the health says why (see persist.py).

        Raises:
            DiskBufferInUseError: another process holds the disk buffer's directory (two
                instances given one ``data_dir``).
        """
        if self._task is None:
            self.sender.stopped = False
            await self.persister.open(refuse_foreign=True)
            self.session.status = HealthStatus(Status.CONNECTING)
            self._task = Supervisor(f"mqferry[{self.id}].flush", self.flush.run,
                                    on_failure=self._flush_failed)
            self._task.start()
            self._persist_task = Supervisor(f"mqferry[{self.id}].persist", self.persister.run)
            self._persist_task.start()
            self.persister.wake.set()

    async def _replay(self) -> int:
        # Reading a large disk buffer takes seconds: a worker thread reads it. Cancelled
        # meanwhile (the action stops), the queue it opens is closed once read, so that its
        # directory's lock does not outlive the attempt.
        if self.buffer.disk is not None and not self.buffer.disk.closed:
            return self.buffer.recover(self.clock.now())
        reading = asyncio.ensure_future(
            asyncio.to_thread(self.buffer.read_disk, self.clock.now()))
        try:
            found = await asyncio.shield(reading)
        except asyncio.CancelledError:
            reading.add_done_callback(_close_unused)
            raise
        return 0 if found is None else self.buffer.install(found)

    def _replayed(self, replayed: int) -> None:
        lost = self.buffer.take_lost()
        if lost:  # each logged with its file and reason by the disk buffer
            self.metrics.inc("dropped", lost)
            self.metrics.inc("dropped.disk_damaged", lost)
        if replayed:
            log.info("action %s: replaying %d records from the disk buffer", self.id, replayed)
            self._idle.clear()
            self._wake.set()

    def _flush_failed(self, exc: BaseException, delay: float) -> None:
        # The loop survives errors of a round (see FlushLoop.run); this is a failure outside a round
        # (connecting, say). Its records stay buffered and the loop starts again.
        self.session.status = HealthStatus(
            Status.DISCONNECTED, f"flush task failed: {describe(exc)}; restarting in {delay:.1f}s")

    @property
    def stop_timeout(self) -> float:
        """How long :meth:`stop` may take: the flush wait plus the producer's close."""
        return self.flush_timeout + self.close_timeout

    async def stop(self, timeout: float | None = None) -> None:
        """Flush what is buffered and in flight (up to ``timeout`` seconds, by default
        ``flush_timeout``), then close.

        Returns within about ``timeout`` seconds plus the producer's close timeout, even when
        Kafka hangs: what is left is kept by a disk buffer (what was still in memory is
        written first), and not settled with its origin by a memory buffer (the MQTT broker
        redelivers a message; a Kafka source's consumer group reads a record again, its offset
        not committed).
        """
        if self._task is None:
            return
        try:
            await self._stop(self.flush_timeout if timeout is None else timeout)
        finally:  # even cancelled: the disk buffer's directory is free for the next owner
            self.sender.stopped = True
            self.buffer.close()

    async def _stop(self, timeout: float) -> None:
        assert self._task is not None
        deadline = time.monotonic() + timeout
        if self.session.producer is not None:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(timeout):
                    await self._idle.wait()
        task, self._task = self._task, None
        await task.stop()
        if self._persist_task is not None:
            persist_task, self._persist_task = self._persist_task, None
            await persist_task.stop()
            # whatever Kafka did, what is still in memory goes to the disk (one attempt at least)
            await self.persister.final(max(deadline - time.monotonic(), 0.5))
        await self.lookups.close()
        closed = await self.session.close(self.close_timeout)
        await asyncio.sleep(0)  # callbacks of the batches settled by the close run first
        # From here, batches that Kafka answers late settle nothing: their records stay in
        # the disk buffer or unacknowledged, and are sent again (at least once).
        self.sender.stopped = True
        left = self.buffer.queued + self.sender.inflight
        unsaved = self.sender.inflight_unsaved()
        if left:
            log.warning("action %s stopped with %d records unsent%s: %s", self.id, left,
                        "" if closed else " (Kafka does not answer)",
                        left_behind(self.buffer, left, unsaved, self.persister.error))
        if self.buffer.disk is not None:
            self.kept = left - self.buffer.unsaved() - unsaved

    async def health(self) -> HealthStatus:
        """``connected`` once the producer is up; else ``connecting`` with the reason;
        ``disconnected`` with the reason while the disk buffer cannot be opened."""
        why = self.persister.open_error
        if why is not None:
            return HealthStatus(Status.DISCONNECTED, f"{why}; trying again with back-off")
        return self.session.status


def _close_unused(reading: asyncio.Future[FoundOnDisk | None]) -> None:
    """Close the disk queue a cancelled :meth:`KafkaProducerAction._replay` opened."""
    if not reading.cancelled() and reading.exception() is None:
        found = reading.result()
        if found is not None:
            found.disk.close()
