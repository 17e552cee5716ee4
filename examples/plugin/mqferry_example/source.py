"""The ``ticker`` source: a numbered event for the rules every ``interval``.

Rules read it with ``SELECT n FROM "$bridges/ticker:<name>"``; what they do with it (republish it
to MQTT, write it to Kafka) is up to their actions.
"""

from __future__ import annotations

import asyncio
import logging
import time

from pydantic import Field

from mqferry import (
    Duration,
    HealthStatus,
    RuntimeContext,
    SourceConfigBase,
    Status,
    Strict,
    Supervisor,
    describe,
    source_metrics,
)

log = logging.getLogger(__name__)


class TickerParameters(Strict):
    """``sources.ticker.<name>.parameters``."""

    #: the time between two events (``500ms``, ``2s``)
    interval: Duration = 1.0
    #: stop after this many events (0: never)
    count: int = Field(0, ge=0)


class TickerConfig(SourceConfigBase):
    """One ``ticker`` source."""

    parameters: TickerParameters = Field(default_factory=TickerParameters)


class TickerSource:
    """Feeds the rules that select ``$bridges/ticker:<name>`` a numbered event per interval.

    Args:
        name: the source's name; its id is ``ticker:<name>``.
        config: its validated config.
        context: the runtime's context; ``context.dispatch`` runs the rules.
    """

    def __init__(self, *, name: str, config: TickerConfig, context: RuntimeContext) -> None:
        self.id = f"ticker:{name}"
        self.event = f"$bridges/{self.id}"
        self.metrics = source_metrics(self.id)
        self._params = config.parameters
        self._context = context
        self._sent = 0
        self._status = HealthStatus(Status.STOPPED)
        self._loop = Supervisor(f"mqferry[{self.id}].tick", self._tick_loop,
                                on_failure=self._loop_died)

    async def start(self) -> None:
        """Start ticking."""
        self._status = HealthStatus(Status.CONNECTED)
        self._loop.start()

    async def stop(self) -> None:
        """Stop ticking. Idempotent."""
        await self._loop.stop()
        self._status = HealthStatus(Status.STOPPED)

    async def health(self) -> HealthStatus:
        """``connected`` while ticking."""
        return self._status

    def _loop_died(self, exc: BaseException, delay: float) -> None:
        self._status = HealthStatus(Status.DISCONNECTED, f"ticker failed: {describe(exc)}")

    async def _tick_loop(self) -> None:
        limit = self._params.count
        while not limit or self._sent < limit:
            await asyncio.sleep(self._params.interval)
            self._sent += 1
            self.metrics.inc("received")
            event = {"n": self._sent, "event": self.event,
                     "timestamp": int(time.time() * 1000), "node": self._context.node}
            try:
                # returns once every action the event reached has secured or failed it
                await self._context.dispatch(event)
            except Exception as exc:  # one event's failure never stops the source
                self.metrics.inc("failed")
                log.warning("source %s: event %d failed: %s", self.id, self._sent, describe(exc))
            else:
                self.metrics.inc("success")
