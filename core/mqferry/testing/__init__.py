"""Test helpers for mqferry and for plugin authors: an app on twins, twins of MQTT and actions.

The twins implement the same interfaces as the real parts and are injected, never patched in:

- :func:`build_app`: an app built from a config dict, its MQTT connector a :class:`MqttTwin`
  (deliver incoming messages, see what was published and acknowledged);
- :class:`InMemoryMqtt` and :func:`runtime_context`: the MQTT publisher and runtime a source or
  an action is built with;
- :func:`load_plugins`: the installed plugins, or a module of yours as an extra plugin;
- :class:`ClusterBus` and :class:`ClusterTwin`: an in-memory cluster transport (shared logs,
  slot membership) for several nodes in one process;
- :class:`RecordingAction` and :class:`RecordingDelivery`: an action and a delivery that
  remember what happened to them.

Kafka twins ship with the Kafka plugins (``mqferry_kafka.testing``): the core imports no Kafka
client. ``mqferry.testing.pytest_plugin`` (a pytest11 entry point) exposes these as fixtures.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from mqferry._metrics import Metrics, action_metrics
from mqferry._plugins import PluginSet, load_plugins
from mqferry._types import Delivery, HealthStatus, RuntimeContext, Status
from mqferry.testing._app import AppHarness, build_app
from mqferry.testing._cluster import ClusterBus, ClusterTwin
from mqferry.testing._mqtt import IncomingMessage, InMemoryMqtt, MqttTwin, Published


class RecordingDelivery:
    """A :class:`~mqferry._types.Delivery` that remembers how it ended."""

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
    "AppHarness",
    "ClusterBus",
    "ClusterTwin",
    "InMemoryMqtt",
    "IncomingMessage",
    "MqttTwin",
    "PluginSet",
    "Published",
    "RecordingAction",
    "RecordingDelivery",
    "build_app",
    "load_plugins",
    "runtime_context",
    "wait_until",
]
