"""A background loop stops even when its stop arrives as the step it awaits completes.

On Python 3.11 ``asyncio.wait_for`` returns the awaited result, and drops the cancellation,
when both are ready in the same turn of the event loop. A loop written with it went on after
``stop()`` cancelled it, and ``stop()`` waited for it for ever (a unit run hung in a node
directory's teardown). Each test here makes the awaited step complete in the turn of the
cancellation, deterministically: the step is woken, then the loop is stopped before the
event loop runs again.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

from mqferry import ClusterConfig, Metrics
from mqferry._cluster.nodes import STATUS_LOG, NodeDirectory
from mqferry._cluster.transport import ClusterLog, LogRecord
from mqferry._runtime.ackwait import AckWaits
from mqferry._runtime.delivery import Ticket
from mqferry.testing import ClusterBus, ClusterTwin, build_app
from tests.api.conftest import BASE_CONFIG
from tests.api.fakes import fake_plugins

CLUSTER = ClusterConfig.model_validate({"name": "plant-7", "heartbeat_interval": "20ms",
                                        "node_timeout": "400ms"})


class GatedLog:
    """The status log, whose appends wait at a gate while it is closed."""

    def __init__(self, inner: ClusterLog) -> None:
        self.inner = inner
        self.name = inner.name
        self.gate = asyncio.Event()
        self.gate.set()
        self.waiting = asyncio.Event()

    async def append(self, key: str, value: bytes | None) -> int:
        if not self.gate.is_set():
            self.waiting.set()
            await self.gate.wait()
        return await self.inner.append(key, value)

    async def end(self) -> int:
        return await self.inner.end()

    def read(self, start: int = 0) -> AsyncIterator[LogRecord]:
        return self.inner.read(start)


class GatedTwin(ClusterTwin):
    """A node's in-memory transport whose status log is gated."""

    def __init__(self, bus: ClusterBus, node: str) -> None:
        super().__init__(bus, node)
        self.status: GatedLog | None = None

    def log(self, name: str) -> ClusterLog:
        inner = super().log(name)
        if name != STATUS_LOG:
            return inner
        self.status = GatedLog(inner)
        return self.status


async def test_a_node_stops_while_its_heartbeat_is_being_written():
    bus = ClusterBus()
    transport = GatedTwin(bus, "a@h")
    app = build_app({**BASE_CONFIG, "node": "a@h"}, plugins=fake_plugins()).app
    directory = NodeDirectory(app, transport, CLUSTER)
    await directory.start()
    status = transport.status
    assert status is not None
    for _ in range(5):
        status.waiting.clear()
        status.gate.clear()
        async with asyncio.timeout(2):
            await status.waiting.wait()  # the next heartbeat waits at the gate
        status.gate.set()  # its write completes in the next turn of the loop...
        if _ < 4:
            await asyncio.sleep(0)
    async with asyncio.timeout(2):  # ...and the stop, in this turn, still ends the heartbeats
        await directory.stop()
    beats = [r for r in bus.log(STATUS_LOG).records if r.key == "a@h"]
    assert b'"status":"stopped"' in beats[-1].value
    n = len(bus.log(STATUS_LOG).records)
    await asyncio.sleep(CLUSTER.heartbeat_interval * 5)
    assert len(bus.log(STATUS_LOG).records) == n  # no heartbeat after the stop


async def test_the_ack_waits_stop_while_a_wait_is_being_added():
    waits = AckWaits()
    waits.start()
    metrics = Metrics("test:a")
    waits.delivery(Ticket(None, 1, 1, 0), metrics, 5.0)
    await asyncio.sleep(0.02)  # the task sleeps until that wait's deadline, or a new wait
    waits.delivery(Ticket(None, 2, 1, 0), metrics, 3.0)  # wakes the task in the next turn
    async with asyncio.timeout(2):  # the stop, in this turn, still ends it
        await waits.stop()
    assert waits.task.problem() is None and not waits.task.running
