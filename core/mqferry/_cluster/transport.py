"""What a cluster needs from its transport: ordered shared logs and a slot membership.

Kafka gives both without a server of ours: a compacted single-partition topic is a log every node
reads in the same order, and a consumer group divides a topic's partitions among its live members
(the session slots) and moves a dead member's share when its session times out.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Protocol

from mqferry._types import HealthStatus

__all__ = ["ClusterLog", "ClusterTransport", "LogRecord", "SlotListener"]


@dataclass(frozen=True, slots=True)
class LogRecord:
    """One record of a cluster log."""

    #: Its position in the log; every node sees the same records at the same offsets.
    offset: int
    key: str
    #: ``None``: a tombstone (compaction removes the key).
    value: bytes | None


class ClusterLog(Protocol):
    """A compacted, single-partition log of the cluster, read in the same order by every node."""

    @property
    def name(self) -> str:
        """Which log (``config``, ``status``, ...)."""
        ...

    async def append(self, key: str, value: bytes | None) -> int:
        """Append a record; return its offset once the log has it durably.

        Raises:
            MqferryError: the log could not be written (the transport is unreachable); nothing
                was appended.
        """
        ...

    async def end(self) -> int:
        """The offset the next record will get (all records before it are readable).

        Raises:
            MqferryError: the log cannot be reached.
        """
        ...

    def read(self, start: int = 0) -> AsyncIterator[LogRecord]:
        """The records from ``start`` on, in order, waiting for new ones for ever.

        The iterator survives outages: it waits and resumes where it was.
        """
        ...


class SlotListener(Protocol):
    """Told which session slots this node holds; called one at a time, in order."""

    async def assigned(self, slots: frozenset[int]) -> None:
        """These slots are now this node's (open their sessions)."""
        ...

    async def revoked(self, slots: frozenset[int]) -> None:
        """These slots are no longer this node's: close their sessions before returning."""
        ...


class ClusterTransport(Protocol):
    """The cluster's shared logs and its slot membership."""

    async def start(self) -> None:
        """Connect; never fails because the transport is unreachable (it retries, see health)."""
        ...

    async def stop(self) -> None:
        """Leave the membership (slots are revoked first) and close. Idempotent."""
        ...

    async def health(self) -> HealthStatus:
        """``connected``, or ``connecting`` with the reason the transport cannot be reached."""
        ...

    def log(self, name: str) -> ClusterLog:
        """The cluster's log ``name`` (made on first use)."""
        ...

    async def join_slots(self, slots: int, listener: SlotListener) -> None:
        """Become a member sharing ``slots`` session slots; ``listener`` hears the changes.

        Returns at once; the first assignment comes when the membership has formed.
        """
        ...
