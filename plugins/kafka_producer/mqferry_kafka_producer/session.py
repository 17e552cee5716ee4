"""The aiokafka producer of one action: settings, connecting with back-off, renewal, status.

Also keeps the *connected-time clock*: ``max_batch_age`` counts only time spent connected to
Kafka, so an outage never expires a buffer.
"""

from __future__ import annotations

import contextlib
import logging
import time

from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError

from mqferry import HealthStatus, Status
from mqferry.kafka import KafkaConnector, start_with_backoff
from mqferry.kafka.sockets import apply_socket_options
from mqferry_kafka_producer.config import KafkaProducerParameters

log = logging.getLogger(__name__)

_ACKS: dict[str, int | str] = {"all_isr": "all", "leader_only": 1, "none": 0}


class ConnectedClock:
    """Seconds spent connected to Kafka."""

    def __init__(self) -> None:
        self._total = 0.0
        self._since: float | None = None

    def connected(self, up: bool) -> None:
        """Record a change of connection state."""
        now = time.monotonic()
        if up and self._since is None:
            self._since = now
        elif not up and self._since is not None:
            self._total += now - self._since
            self._since = None

    def now(self) -> float:
        """The connected time so far."""
        extra = time.monotonic() - self._since if self._since is not None else 0.0
        return self._total + extra


class ProducerSession:
    """Owns the action's ``AIOKafkaProducer`` and reports its status.

    Args:
        action_id: ``kafka_producer:<name>``, for logs and client ids.
        params: the action's parameters.
        connector: the connector whose connection settings are used.
    """

    def __init__(self, action_id: str, params: KafkaProducerParameters,
                 connector: KafkaConnector) -> None:
        self.action_id = action_id
        self.params = params
        self.connector = connector
        self.producer: AIOKafkaProducer | None = None
        self.status = HealthStatus(Status.STOPPED)
        self.clock = ConnectedClock()
        self._seen_sockets: set[int] = set()

    def _make(self) -> AIOKafkaProducer:
        p = self.params
        acks = _ACKS[p.required_acks]
        compression = None if p.compression in ("no_compression", "none") else p.compression
        opts = self.connector.client_options("producer")
        opts["metadata_max_age_ms"] = int(p.partition_count_refresh_interval * 1000)
        return AIOKafkaProducer(
            **opts,
            acks=acks,
            enable_idempotence=acks == "all",
            compression_type=compression,
            max_batch_size=p.max_batch_bytes,
            max_request_size=max(p.max_batch_bytes * 2, 1024 * 1024),
            linger_ms=0,
        )

    async def connect(self) -> AIOKafkaProducer:
        """Start a producer, retrying with jittered back-off until Kafka answers."""

        async def attempt() -> AIOKafkaProducer:
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

    async def renew(self) -> AIOKafkaProducer:
        """Replace the producer with a new session (a new idempotent producer id)."""
        old, self.producer = self.producer, None
        log.warning("action %s: starting a new producer session (sequence numbers out of step)",
                    self.action_id)
        if old is not None:
            # pending batches fail and their callbacks put them back in the queue
            with contextlib.suppress(KafkaError):
                await old.stop()
        self._seen_sockets.clear()
        return await self.connect()

    def set_connected(self, up: bool, reason: str = "") -> None:
        """Record whether Kafka answers (status and the connected-time clock)."""
        self.clock.connected(up)
        self.status = HealthStatus(Status.CONNECTED if up else Status.CONNECTING, reason)

    def apply_socket_options(self) -> None:
        """Set the connector's TCP options on connections opened since the last call."""
        if self.producer is not None:
            apply_socket_options(self.producer.client, self.connector.config.socket_opts,
                                 self._seen_sockets)

    async def close(self) -> None:
        """Stop the producer (flushing what aiokafka holds)."""
        if self.producer is not None:
            await self.producer.stop()
            self.producer = None
        self.status = HealthStatus(Status.STOPPED)
