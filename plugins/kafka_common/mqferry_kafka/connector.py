"""A Kafka connector: connection settings plus a periodic health check (producer and consumer)."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from mqferry import HealthStatus, RetryLog, Status, Supervisor, describe
from mqferry_kafka.config import KafkaConnectorConfig, SocketOptions, client_options
from mqferry_kafka.probe import probe

log = logging.getLogger(__name__)


class KafkaConnector:
    """A Kafka cluster connection; actions and sources build their clients from it.

    The periodic check never turns a started connector ``disconnected`` (as EMQX), only
    ``connecting`` with a reason, and never discards anything buffered.
    """

    def __init__(self, *, kind: str, name: str, config: KafkaConnectorConfig) -> None:
        self.kind = kind
        self.name = name
        self.config = config
        self._status = HealthStatus(Status.STOPPED)
        if config.socket_opts != SocketOptions():
            # aiokafka opens its broker sockets itself and offers no public way to reach them;
            # asyncio sets TCP_NODELAY on them anyway, the rest keeps the system's defaults.
            log.warning("connector %s: socket_opts are accepted for EMQX compatibility but not "
                        "applied (the Kafka client has no socket options)", self.id)
        self._retries = RetryLog(log, f"connector {self.id}: Kafka")
        self._task = Supervisor(f"mqferry[{self.id}].health", self._check_loop,
                                on_failure=self._check_failed)

    @property
    def id(self) -> str:
        """``<type>:<name>``."""
        return f"{self.kind}:{self.name}"

    def client_options(self, role: str) -> dict[str, Any]:
        """aiokafka client keyword arguments, with a client id naming this component."""
        return client_options(self.config, f"mqferry-{self.id}-{role}")

    async def start(self) -> None:
        """Start the health check loop."""
        if not self._task.running:
            self._status = HealthStatus(Status.CONNECTING)
            self._task.start()

    async def stop(self) -> None:
        """Stop checking. Idempotent."""
        await self._task.stop()
        self._status = HealthStatus(Status.STOPPED)

    async def health(self) -> HealthStatus:
        """The result of the last check."""
        return self._status

    def _check_failed(self, exc: BaseException, delay: float) -> None:
        self._status = HealthStatus(Status.DISCONNECTED, f"health check failed: {describe(exc)}")

    async def _check_loop(self) -> None:
        while True:
            result = await probe(self.config, client_id=f"mqferry-{self.id}-health")
            interval = self.config.resource_opts.health_check_interval
            if result.status is not Status.CONNECTED:
                result = HealthStatus(Status.CONNECTING, result.reason)
                self._retries.failed(result.reason or "no reason given", interval)
            elif self._status.status is not Status.CONNECTED:
                log.info("connector %s: connected", self.id)
                self._retries.reset()
            self._status = result
            await asyncio.sleep(interval)

