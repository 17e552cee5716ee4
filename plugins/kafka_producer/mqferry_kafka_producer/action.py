"""The ``kafka_producer`` action: buffers rule outputs and writes them to Kafka in batches.

Rule outputs are rendered at once (any render error, an invalid topic name or a record larger
than a request fails only that output) and offered to the action's
:class:`~mqferry_kafka_producer.records.RecordBuffer`, in the queue of the partition the strategy
picks. One flush task persists what the disk needs, places the records whose topic's partition
count is known by now (unknown topics are looked up in the background, see
:class:`~mqferry_kafka_producer.partitions.TopicLookups`, while the records of known topics go on),
then hands the partitions' queues to its
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

_MEMORY_LOW = 0.10
#: How long stop() waits for buffered and in-flight records to be acknowledged.
STOP_FLUSH_TIMEOUT = 30.0
#: the longest pause after a flush round that failed unexpectedly
_MAX_ERROR_BACKOFF = 5.0
#: the adaptive linger paces requests only while the last batch held fewer records than this:
#: under full load batches are large on their own and a pause would only add latency
ADAPTIVE_LINGER_BELOW = 32


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
        self.persister = Persister(self.id, self.buffer, m, self._wake)
        #: how long a batch may wait for Kafka's answer before the status says Kafka is gone
        self.stall_after = connector.config.request_timeout
        self._error_delay = 0.0
        self._fallback = None if p.fallback_topic is None else p.fallback_topic
        self.sender = BatchSender(action_id=self.id, params=p, buffer=self.buffer,
                                  partitioner=self.partitioner, lookups=self.lookups,
                                  session=self.session, metrics=m, fail=self._fail,
                                  wake=self._wake)

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
        """Replay what a disk buffer kept, start the producer (retrying) and the flush task."""
        if self._task is None:
            self.sender.stopped = False
            replayed = self.buffer.recover(self.clock.now())
            lost = self.buffer.take_lost()
            if lost:  # each logged with its file and reason by the disk buffer
                self.metrics.inc("dropped", lost)
                self.metrics.inc("dropped.disk_damaged", lost)
            if replayed:
                log.info("action %s: replaying %d records from the disk buffer", self.id,
                         replayed)
                self._idle.clear()
                self._wake.set()
            self.session.status = HealthStatus(Status.CONNECTING)
            self._task = Supervisor(f"mqferry[{self.id}].flush", self._run,
                                    on_failure=self._flush_failed)
            self._task.start()
            if self.buffer.disk is not None:
                self._persist_task = Supervisor(f"mqferry[{self.id}].persist",
                                                self.persister.run)
                self._persist_task.start()
                self.persister.wake.set()

    def _flush_failed(self, exc: BaseException, delay: float) -> None:
        # The loop survives errors of a round (see _run); this is a failure outside a round
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
        blocked = self.sender.blocked
        return any(q and not (key[1] is None and key[0] in blocked)
                   for key, q in self.buffer.ready.items())

    async def _round(self, last_checks: float) -> float:
        """One flush round; the time of the last periodic checks."""
        p = self.params
        if not self._has_work():
            if self.sender.inflight == 0 and not self.buffer.queued:
                self._idle.set()
            await self._wait()
        self._wake.clear()
        await self.persister.persist()
        reset, why = self.sender.take_reset()
        if reset:
            await self.session.renew(why)
        if self.session.producer is None:
            await self.session.connect()
        if self.sender.retry_delay:
            await asyncio.sleep(self.sender.retry_delay)
        if p.max_linger_time > 0 and self.buffer.bytes < p.max_linger_bytes:
            await asyncio.sleep(p.max_linger_time)
            await self.persister.persist()
        elif (p.max_linger_time == 0 and p.adaptive_linger_time > 0
              and self.sender.last_batch < ADAPTIVE_LINGER_BELOW):
            # A steady trickle would cost one produce request (and its CPU) per record: wait
            # out the interval since the last request, gathering what arrives meanwhile. Not
            # once batches are large: the requests are few already, and a pause only delays.
            wait = self.sender.last_send + p.adaptive_linger_time - time.monotonic()
            if wait > 0 and self.buffer.bytes < p.max_linger_bytes:
                await asyncio.sleep(wait)
                await self.persister.persist()
        now = time.monotonic()
        if now - last_checks >= 1.0:
            last_checks = now
            self._periodic_checks()
        self.partitioner.new_round()
        if await self.sender.send():
            # Some partitions were busy: wait for one of their batches to settle rather
            # than spin over the held records.
            self._wake.clear()
            if self.sender.inflight:
                await self._wait()
                self._wake.set()
        return last_checks

    async def _wait(self) -> None:
        """Wait to be woken; with batches in flight, at most a second (to see a stall)."""
        if not self.sender.inflight:
            await self._wake.wait()
            return
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(1.0):
                await self._wake.wait()

    def _periodic_checks(self) -> None:
        # aiokafka retries a produce request by itself while the broker is unreachable (an
        # idempotent producer for ever): no error reaches the sender, only the silence does.
        stalled = self.sender.stalled_for()
        if stalled > self.stall_after:
            self.session.set_connected(
                False, f"Kafka has not answered a produce request for {stalled:.0f}s")
        expired = self.buffer.expire(self.clock.now() - self.params.max_batch_age)
        if expired:
            log.warning("action %s: %d records expired (max_batch_age)", self.id, expired)
        opts = self.params.buffer
        if (opts.mode == "memory" and opts.memory_overload_protection
                and memory_available_fraction() < _MEMORY_LOW):
            shed = self.buffer.shed_memory("dropped.queue_full")
            log.warning("action %s: system memory is low; dropped %d buffered records",
                        self.id, shed)
