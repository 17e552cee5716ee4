"""Test helpers for mqferry and for plugin authors: in-memory twins of the MQTT side and actions.

The twins implement the same interfaces as the real parts and are injected, never patched in.
``mqferry.testing.pytest_plugin`` (registered as a pytest11 entry point) exposes them as fixtures.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mqferry.metrics import Metrics, action_metrics
from mqferry.types import Delivery, HealthStatus, RuntimeContext, Status


@dataclass(frozen=True, slots=True)
class Published:
    """One message an :class:`InMemoryMqtt` received."""

    topic: str
    payload: bytes
    qos: int
    retain: bool
    properties: Mapping[str, Any] | None


@dataclass
class InMemoryMqtt:
    """An MQTT publisher twin that records every publish.

    Attributes:
        published: what was published, in order.
        fail_next: publishes that raise this exception (then succeed), to test retries.
    """

    published: list[Published] = field(default_factory=list)
    fail_next: list[BaseException] = field(default_factory=list)
    connected: asyncio.Event = field(default_factory=asyncio.Event)
    #: When true, :meth:`publish_nowait` futures stay pending until :meth:`ack` settles them.
    hold_acks: bool = False
    pending: list[asyncio.Future[None]] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.connected.set()

    async def wait_connected(self, timeout: float | None = None) -> None:
        """Return once :attr:`connected` is set."""
        await asyncio.wait_for(self.connected.wait(), timeout)

    async def publish(
        self,
        topic: str,
        payload: bytes,
        *,
        qos: int = 0,
        retain: bool = False,
        properties: Mapping[str, Any] | None = None,
    ) -> None:
        """Record the publish (or raise the next queued failure)."""
        await asyncio.sleep(0)
        if self.fail_next:
            raise self.fail_next.pop(0)
        self.published.append(Published(topic, payload, qos, retain, properties))

    def publish_nowait(
        self,
        topic: str,
        payload: bytes,
        *,
        qos: int = 0,
        retain: bool = False,
        properties: Mapping[str, Any] | None = None,
    ) -> asyncio.Future[None]:
        """Record the publish; the future fails with the next queued failure, if any.

        With :attr:`hold_acks`, the future stays pending until :meth:`ack`.
        """
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        if self.fail_next:
            future.set_exception(self.fail_next.pop(0))
            return future
        self.published.append(Published(topic, payload, qos, retain, properties))
        if self.hold_acks:
            self.pending.append(future)
        else:
            future.set_result(None)
        return future

    def ack(self, count: int | None = None, error: BaseException | None = None) -> int:
        """Settle the oldest ``count`` held publishes (all by default), failing them with
        ``error`` if given; returns how many were settled."""
        n = len(self.pending) if count is None else min(count, len(self.pending))
        settle, self.pending = self.pending[:n], self.pending[n:]
        for future in settle:
            if not future.done():
                if error is None:
                    future.set_result(None)
                else:
                    future.set_exception(error)
        return n


class RecordingDelivery:
    """A :class:`~mqferry.types.Delivery` that remembers how it ended."""

    def __init__(self) -> None:
        self.outcome: str | None = None
        self.done = asyncio.Event()

    def secured(self) -> None:
        """Record success."""
        assert self.outcome is None, "a delivery was settled twice"
        self.outcome = "secured"
        self.done.set()

    def failed(self, reason: str) -> None:
        """Record failure."""
        assert self.outcome is None, "a delivery was settled twice"
        self.outcome = f"failed:{reason}"
        self.done.set()


class RecordingAction:
    """An action twin: keeps outputs; secures them at once, or holds them until told to.

    Args:
        hold: keep deliveries pending until :meth:`release_all` is called.
    """

    def __init__(self, action_id: str = "recording:test", *, hold: bool = False) -> None:
        self.id = action_id
        self.metrics: Metrics = action_metrics(action_id)
        self.outputs: list[dict[str, Any]] = []
        self.pending: list[Delivery] = []
        self.hold = hold

    def submit(self, output: Mapping[str, Any], delivery: Delivery) -> None:
        """Keep the output; secure it now unless holding."""
        self.metrics.inc("matched")
        self.outputs.append(dict(output))
        if self.hold:
            self.pending.append(delivery)
        else:
            self.metrics.inc("success")
            delivery.secured()

    def release_all(self) -> None:
        """Secure every held delivery."""
        pending, self.pending = self.pending, []
        for d in pending:
            self.metrics.inc("success")
            d.secured()

    async def start(self) -> None:
        """Nothing to start."""

    async def stop(self) -> None:
        """Nothing to stop."""

    async def health(self) -> HealthStatus:
        """Always connected."""
        return HealthStatus(Status.CONNECTED)


async def wait_until(predicate: Callable[[], object], timeout: float = 3.0, *,
                     interval: float = 0.01) -> None:
    """Return once ``predicate()`` is true; fail the test if it is not within ``timeout``.

    For what a background task makes true (a commit, a publish), where there is nothing to
    await.

    Raises:
        AssertionError: ``predicate`` stayed false for ``timeout`` seconds.
    """
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        if predicate():
            return
        if loop.time() >= deadline:
            raise AssertionError(f"still false after {timeout}s: {predicate!r}")
        await asyncio.sleep(interval)


async def _no_dispatch(event: Mapping[str, Any]) -> None:
    return None


def runtime_context(mqtt: InMemoryMqtt | None = None, *, data_dir: Path | None = None,
                    dispatch: Any = None) -> RuntimeContext:
    """A runtime context over in-memory twins, for building actions and sources in tests."""
    return RuntimeContext(
        mqtt=mqtt or InMemoryMqtt(),
        dispatch=dispatch or _no_dispatch,
        data_dir=data_dir or Path(),
    )


__all__ = [
    "InMemoryMqtt",
    "Published",
    "RecordingAction",
    "RecordingDelivery",
    "runtime_context",
    "wait_until",
]
