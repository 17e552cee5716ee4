"""The ``kafka_producer`` action's flush loop: rounds that move buffered records to Kafka.

Each round persists what the disk needs, renews or connects the producer session, lingers as
configured, runs the periodic checks (a silent Kafka, expired records, low system memory) and
hands the partitions' queues to the :class:`~mqferry_kafka_producer.sender.BatchSender`.
:class:`~mqferry_kafka_producer.action.KafkaProducerAction` owns the loop and its lifecycle.
Compiled with mypyc like the action (scripts/compile.py): it runs once per batch of records.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from pathlib import Path

from mqferry import Metrics
from mqferry_kafka_producer.config import KafkaProducerParameters
from mqferry_kafka_producer.partitions import Partitioner
from mqferry_kafka_producer.persist import Persister
from mqferry_kafka_producer.records import RecordBuffer
from mqferry_kafka_producer.sender import BatchSender
from mqferry_kafka_producer.session import ProducerSession

log = logging.getLogger(__name__)

#: below this fraction of system memory available, a memory buffer sheds what it holds
_MEMORY_LOW = 0.10
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


class FlushLoop:
    """Flushes an action's buffer to Kafka, round after round, until cancelled.

    Args:
        action_id: ``kafka_producer:<name>``, for logs.
        params: the action's parameters.
        buffer: the action's record buffer.
        partitioner: picks partitions; told when a new round starts.
        session: the producer session (connected, renewed and marked silent here).
        sender: sends the partitions' queues in batches.
        persister: writes disk-bound records before each send.
        metrics: the action's metrics (``flush_errors``).
        wake: set when there is something to do (records offered, a batch settled).
        idle: set once nothing is buffered or in flight (what ``stop()`` waits for).
        stall_after: how long a batch may wait for Kafka's answer before the status says
            Kafka is gone.
    """

    def __init__(self, *, action_id: str, params: KafkaProducerParameters,
                 buffer: RecordBuffer, partitioner: Partitioner, session: ProducerSession,
                 sender: BatchSender, persister: Persister, metrics: Metrics,
                 wake: asyncio.Event, idle: asyncio.Event, stall_after: float) -> None:
        self.id = action_id
        self.params = params
        self.buffer = buffer
        self.partitioner = partitioner
        self.session = session
        self.clock = session.clock
        self.sender = sender
        self.persister = persister
        self.metrics = metrics
        self._wake = wake
        self._idle = idle
        self.stall_after = stall_after
        self._error_delay = 0.0

    async def run(self) -> None:
        """Connect, then flush round after round; a failed round is retried after a pause."""
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
