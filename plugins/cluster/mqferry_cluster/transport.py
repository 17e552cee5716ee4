"""The Kafka cluster transport: one producer for the logs, readers per log, the slot group."""

from __future__ import annotations

import logging

from aiokafka import AIOKafkaProducer
from pydantic import ValidationError

from mqferry import (
    ClusterConfig,
    ClusterLog,
    ConfigError,
    HealthStatus,
    SlotListener,
    Status,
    Supervisor,
)
from mqferry_cluster.log import KafkaLog
from mqferry_cluster.slots import SlotGroup
from mqferry_cluster.topics import Topics
from mqferry_kafka import KafkaConnectorConfig, client_options, start_with_backoff

log = logging.getLogger(__name__)

__all__ = ["KafkaClusterTransport", "transport_config"]


def transport_config(config: ClusterConfig) -> KafkaConnectorConfig | ConfigError:
    """The Kafka connection of a ``cluster`` section, or the error naming what is wrong."""
    try:
        return KafkaConnectorConfig.model_validate(config.transport_options())
    except ValidationError as exc:
        problems = []
        for err in exc.errors():
            path = ".".join(str(p) for p in ("cluster", *err["loc"]))
            msg = err["msg"]
            if err["type"] == "extra_forbidden":
                msg = "unknown field"
            problems.append((path, msg))
        return ConfigError(problems)


class KafkaClusterTransport:
    """Shared logs and session slots on the Kafka cluster of ``kafka``.

    Args:
        config: the ``cluster`` section.
        kafka: its Kafka connection.
        node: this node's name (in client ids, so the broker's logs name the node).
    """

    def __init__(self, config: ClusterConfig, kafka: KafkaConnectorConfig, *, node: str) -> None:
        self.config = config
        self.kafka = kafka
        self.node = node
        self._options = client_options(kafka, f"mqferry-{config.name}-{node}")
        self.topics = Topics(config.name, self._options)
        self._producer: AIOKafkaProducer | None = None
        self._status = HealthStatus(Status.STOPPED)
        self._logs: dict[str, KafkaLog] = {}
        self._slots: SlotGroup | None = None
        self._starter = Supervisor(f"mqferry[cluster {config.name}].connect", self._connect)

    async def _connect(self) -> None:
        async def attempt() -> AIOKafkaProducer:
            producer = AIOKafkaProducer(**self._options, acks="all")
            try:
                await producer.start()
            except BaseException:
                await producer.stop()
                raise
            return producer

        def waiting(reason: str) -> None:
            self._status = HealthStatus(Status.CONNECTING, f"cluster {self.config.name}: "
                                        f"Kafka unreachable: {reason}")

        self._producer = await start_with_backoff(
            attempt, what=f"cluster {self.config.name}", hosts=self.kafka.bootstrap_hosts,
            on_waiting=waiting)
        self._status = HealthStatus(Status.CONNECTED)

    async def start(self) -> None:
        """Connect in the background; the logs refuse appends until connected."""
        if not self._starter.running:
            self._status = HealthStatus(Status.CONNECTING, "connecting to Kafka")
            self._starter.start()

    async def stop(self) -> None:
        """Leave the slot group (its slots revoked first), close the producer. Idempotent."""
        if self._slots is not None:
            await self._slots.stop()
            self._slots = None
        await self._starter.stop()
        if self._producer is not None:
            await self._producer.stop()
            self._producer = None
        self._status = HealthStatus(Status.STOPPED)

    async def health(self) -> HealthStatus:
        """Whether Kafka is reachable, and the slot group's membership if joined."""
        if self._status.status is Status.CONNECTED and self._slots is not None:
            return self._slots.health()
        return self._status

    def log(self, name: str) -> ClusterLog:
        """The log ``name`` on topic ``mqferry-<cluster>-<name>``."""
        if name not in self._logs:
            self._logs[name] = KafkaLog(name, self.topics, lambda: self._producer,
                                        self._options,
                                        timeout=max(self.kafka.request_timeout, 5.0))
        return self._logs[name]

    async def join_slots(self, slots: int, listener: SlotListener) -> None:
        """Join the slot group (see :mod:`mqferry_cluster.slots`); returns at once."""
        if self._slots is not None:
            await self._slots.stop()
        self._slots = SlotGroup(self.topics, self._options, slots=slots, listener=listener,
                                node_timeout=self.config.node_timeout,
                                heartbeat_interval=self.config.heartbeat_interval)
        self._slots.start()
