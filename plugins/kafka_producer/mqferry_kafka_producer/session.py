"""The aiokafka producer of one action: settings, connecting with back-off, renewal, status.

Also keeps the *connected-time clock*: ``max_batch_age`` counts only time spent connected to
Kafka, so an outage never expires a buffer.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from typing import Any

from aiokafka import AIOKafkaProducer

from mqferry import HealthStatus, Status
from mqferry_kafka import KafkaConnector, start_with_backoff
from mqferry_kafka_producer.config import KafkaProducerParameters
from mqferry_kafka_producer.record import ConnectedClock

log = logging.getLogger(__name__)

_ACKS: dict[str, int | str] = {"all_isr": "all", "leader_only": 1, "none": 0}
#: how long closing a producer may take: aiokafka's ``stop()`` flushes what it holds and waits
#: for Kafka, for ever when the broker hangs (SIGSTOP, a network partition)
CLOSE_TIMEOUT = 5.0
#: producers whose ``stop()`` outlived :data:`CLOSE_TIMEOUT`: they finish in the background
#: once Kafka answers (the event loop keeps only weak references to tasks)
_CLOSING: set[asyncio.Task[None]] = set()

#: makes a producer from aiokafka's keyword arguments (a twin in tests)
ProducerFactory = Callable[..., Any]


def max_request_size(params: KafkaProducerParameters) -> int:
    """The largest request the action's producer sends, so the largest record it can send."""
    return max(params.max_batch_bytes * 2, 1024 * 1024)


class ProducerSession:
    """Owns the action's ``AIOKafkaProducer`` and reports its status.

    Args:
        action_id: ``kafka_producer:<name>``, for logs and client ids.
        params: the action's parameters.
        connector: the connector whose connection settings are used.
        factory: makes the producer (``AIOKafkaProducer`` unless a twin is injected).
    """

    def __init__(self, action_id: str, params: KafkaProducerParameters,
                 connector: KafkaConnector, factory: ProducerFactory = AIOKafkaProducer) -> None:
        self.action_id = action_id
        self.params = params
        self.connector = connector
        self._factory = factory
        self.producer: Any = None
        self.status = HealthStatus(Status.STOPPED)
        self.clock = ConnectedClock()
        #: the producer's compression codec (``None``: batches are sent as built)
        self.compression: str | None = (
            None if params.compression in ("no_compression", "none") else params.compression)
        #: whether the producer is idempotent (sequence numbers per batch)
        self.idempotent = _ACKS[params.required_acks] == "all"

    def _make(self) -> Any:
        p = self.params
        acks = _ACKS[p.required_acks]
        compression = self.compression
        opts = self.connector.client_options("producer")
        opts["metadata_max_age_ms"] = int(p.partition_count_refresh_interval * 1000)
        return self._factory(
            **opts,
            acks=acks,
            enable_idempotence=acks == "all",
            compression_type=compression,
            max_batch_size=p.max_batch_bytes,
            max_request_size=max_request_size(p),
            linger_ms=0,
        )

    async def connect(self) -> Any:
        """Start a producer, retrying with jittered back-off until Kafka answers."""

        async def attempt() -> Any:
            producer = self._make()
            try:
                await producer.start()
            except BaseException:
                with contextlib.suppress(Exception):
                    await producer.stop()
                raise
            return producer

        def waiting(reason: str) -> None:
            self.status = HealthStatus(Status.CONNECTING, reason)

        self.producer = await start_with_backoff(
            attempt, what=f"action {self.action_id}",
            hosts=self.connector.config.bootstrap_hosts, on_waiting=waiting)
        self.set_connected(True)
        log.info("action %s: producer connected", self.action_id)
        return self.producer

    async def renew(self, expected: str | None = None) -> Any:
        """Replace the producer with a new session (a new idempotent producer id).

        Args:
            expected: why, when the renewal is an expected consequence of something already
                reported (logged as info); ``None`` when Kafka said the sequence numbers are
                out of step (a warning).
        """
        old, self.producer = self.producer, None
        if expected is None:
            log.warning("action %s: starting a new producer session (sequence numbers out of "
                        "step)", self.action_id)
        else:
            log.info("action %s: starting a new producer session (%s)", self.action_id,
                     expected)
        if old is not None:
            # pending batches fail and their callbacks put them back in the queue
            await self._stop(old, CLOSE_TIMEOUT)
        return await self.connect()

    def set_connected(self, up: bool, reason: str = "") -> None:
        """Record whether Kafka answers (status and the connected-time clock)."""
        self.clock.connected(up)
        self.status = HealthStatus(Status.CONNECTED if up else Status.CONNECTING, reason)

    async def close(self, timeout: float = CLOSE_TIMEOUT) -> bool:
        """Stop the producer (flushing what aiokafka holds), waiting at most ``timeout`` s.

        Returns:
            Whether the producer closed in time. When it did not (Kafka does not answer), its
            ``stop()`` goes on in the background and ends once Kafka answers or the process
            exits; what it still held is not reported back to this session.
        """
        producer, self.producer = self.producer, None
        self.status = HealthStatus(Status.STOPPED)
        if producer is None:
            return True
        return await self._stop(producer, timeout)

    async def _stop(self, producer: Any, timeout: float) -> bool:
        task: asyncio.Task[None] = asyncio.create_task(
            producer.stop(), name=f"mqferry[{self.action_id}].close")
        try:
            # shield: a stop() cancelled half-way leaves aiokafka's sender running for ever
            async with asyncio.timeout(timeout):
                await asyncio.shield(task)
        except TimeoutError:
            log.warning("action %s: the producer did not close in %.0fs (Kafka does not "
                        "answer); leaving it to finish in the background", self.action_id,
                        timeout)
            _CLOSING.add(task)
            task.add_done_callback(self._closed_late)
            return False
        except Exception as exc:  # a failed close must not fail the stop of the action
            log.warning("action %s: closing the producer: %r", self.action_id, exc)
        return True

    def _closed_late(self, task: asyncio.Task[None]) -> None:
        _CLOSING.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.warning("action %s: the producer closed late: %r", self.action_id,
                        task.exception())
        else:
            log.info("action %s: the producer closed late", self.action_id)
