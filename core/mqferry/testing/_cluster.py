"""An in-memory cluster transport: shared logs and slot membership for nodes in one process."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

from mqferry._cluster.transport import ClusterLog, LogRecord, SlotListener
from mqferry._errors import MqferryError
from mqferry._types import HealthStatus, Status

__all__ = ["ClusterBus", "ClusterTwin"]


class _Log:
    def __init__(self, name: str) -> None:
        self.name = name
        self.records: list[LogRecord] = []
        self.grown = asyncio.Condition()

    async def add(self, key: str, value: bytes | None) -> int:
        async with self.grown:
            record = LogRecord(len(self.records), key, value)
            self.records.append(record)
            self.grown.notify_all()
            return record.offset

    def compact(self) -> None:
        """Keep only each key's last record (offsets are kept, as in Kafka)."""
        last = {r.key: r.offset for r in self.records}
        self.records = [r for r in self.records if last[r.key] == r.offset
                        and r.value is not None]


class _TwinLog:
    """One node's view of a shared log; fails while its node is cut off."""

    def __init__(self, twin: ClusterTwin, log: _Log) -> None:
        self._twin = twin
        self._log = log

    @property
    def name(self) -> str:
        return self._log.name

    async def append(self, key: str, value: bytes | None) -> int:
        self._twin.check_reachable()
        return await self._log.add(key, value)

    async def end(self) -> int:
        self._twin.check_reachable()
        return self._log.records[-1].offset + 1 if self._log.records else 0

    async def read(self, start: int = 0) -> AsyncIterator[LogRecord]:
        position = [start]

        def ready() -> bool:
            records = self._log.records
            return self._twin.reachable and bool(records) and records[-1].offset >= position[0]

        while True:
            async with self._log.grown:
                await self._log.grown.wait_for(ready)
                fresh = [r for r in self._log.records if r.offset >= position[0]]
            for record in fresh:
                position[0] = record.offset + 1
                yield record


class ClusterBus:
    """What the nodes of an in-memory cluster share: the logs and the slot membership.

    ``bus.transport(node)`` makes each node's :class:`ClusterTwin`; slots are divided round-robin
    among the joined, live members on every join, leave and :meth:`ClusterTwin.kill`.
    """

    def __init__(self) -> None:
        self.logs: dict[str, _Log] = {}
        self.members: dict[str, tuple[int, SlotListener]] = {}
        self.owned: dict[str, frozenset[int]] = {}
        self._lock = asyncio.Lock()

    def transport(self, node: str) -> ClusterTwin:
        """A transport for node ``node``."""
        return ClusterTwin(self, node)

    def log(self, name: str) -> _Log:
        """The shared log ``name``."""
        return self.logs.setdefault(name, _Log(name))

    async def rebalance(self) -> None:
        """Divide the slots among the members again, revoking before assigning."""
        async with self._lock:
            names = sorted(self.members)
            if not names:
                return
            slots = max(count for count, _ in self.members.values())
            target = {n: frozenset(s for s in range(slots) if s % len(names) == i)
                      for i, n in enumerate(names)}
            for name in names:
                lost = self.owned.get(name, frozenset()) - target[name]
                if lost:
                    await self.members[name][1].revoked(lost)
            for name in names:
                gained = target[name] - self.owned.get(name, frozenset())
                self.owned[name] = target[name]
                if gained:
                    await self.members[name][1].assigned(gained)

    async def leave(self, node: str, *, tell: bool) -> None:
        """Take ``node`` out of the membership (telling it its slots are revoked when ``tell``)."""
        member = self.members.pop(node, None)
        owned = self.owned.pop(node, frozenset())
        if member is not None and tell and owned:
            await member[1].revoked(owned)
        await self.rebalance()


class ClusterTwin:
    """One node's transport on a :class:`ClusterBus` (a :class:`ClusterTransport`)."""

    def __init__(self, bus: ClusterBus, node: str) -> None:
        self.bus = bus
        self.node = node
        #: Whether the transport reaches the bus (see :meth:`cut` and :meth:`restore`).
        self.reachable = True
        self.started = False

    def check_reachable(self) -> None:
        """Raise as a real transport does when it cannot reach its brokers."""
        if not self.reachable:
            raise MqferryError(f"cluster transport of {self.node}: unreachable (cut)")

    def cut(self) -> None:
        """Make the transport unreachable (appends fail, reads wait)."""
        self.reachable = False

    async def restore(self) -> None:
        """Make it reachable again; readers resume."""
        self.reachable = True
        for log in self.bus.logs.values():
            async with log.grown:
                log.grown.notify_all()

    async def start(self) -> None:
        self.started = True

    async def stop(self) -> None:
        if self.started:
            self.started = False
            await self.bus.leave(self.node, tell=True)

    async def kill(self) -> None:
        """The node dies: it leaves the membership without being told (as ``kill -9``)."""
        self.started = False
        await self.bus.leave(self.node, tell=False)

    async def health(self) -> HealthStatus:
        if not self.reachable:
            return HealthStatus(Status.CONNECTING, "cluster transport unreachable (cut)")
        return HealthStatus(Status.CONNECTED if self.started else Status.STOPPED)

    def log(self, name: str) -> ClusterLog:
        return _TwinLog(self, self.bus.log(name))

    async def join_slots(self, slots: int, listener: SlotListener) -> None:
        self.bus.members[self.node] = (slots, listener)
        await self.bus.rebalance()
