"""Which offsets may be committed: records settle in any order, offsets advance in order.

Every record handed to MQTT and rules gets a :class:`Slot` in its partition's :class:`Window`.
The slot holds one count per publish or rule event made for the record; when all are settled the
slot is done. A partition's committable offset is the offset after the longest run of done slots
at the head of its window, so an offset is committed only after its record *and every earlier
record of the partition* settled. Publishes and events complete futures; a slot is itself the
done-callback of those futures, so tracking costs no task.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable, Iterable
from typing import Any

from aiokafka import TopicPartition

from mqferry import Countdown, Metrics

#: Called with a slot and the exception its future failed with. Returns ``True`` when the slot
#: should count the future as settled (the failure is accounted for), ``False`` to leave the slot
#: open (the record will be delivered again).
ErrorHandler = Callable[["Slot", BaseException], bool]


class Slot(Countdown):
    """One record handed out, waiting for its publishes and events (each a held part)."""

    __slots__ = ("failed", "offset", "record", "window")

    def __init__(self, window: Window, offset: int, record: Any = None) -> None:
        super().__init__()
        self.window = window
        self.offset = offset
        #: The record, for its dead letter should a publish or an event of it fail later.
        self.record = record
        #: Some part of the record failed for good (counted once as ``failed``).
        self.failed = False

    def watch(self, future: asyncio.Future[Any]) -> None:
        """Hold until ``future`` completes (settled at once if it already has)."""
        self.hold()
        if future.done():
            self(future)
        else:
            future.add_done_callback(self)

    def __call__(self, future: asyncio.Future[Any]) -> None:
        self.settled(asyncio.CancelledError() if future.cancelled() else future.exception())

    def settled(self, exc: BaseException | None) -> None:
        """One held part ended (a publish's ``settled`` callback, held with :meth:`hold`)."""
        window = self.window
        if window.closed:
            return  # rewound or revoked: the record is consumed again
        if exc is not None and not window.tracker.on_error(self, exc):
            return
        self.release()

    def _finish(self) -> None:
        if not self.done:
            self.done = True
            self.window.advance()


class Window:
    """The records of one partition handed out and not yet committable, in offset order."""

    __slots__ = ("closed", "committed", "next_offset", "settled_to", "slots", "tp", "tracker")

    def __init__(self, tracker: OffsetTracker, tp: TopicPartition) -> None:
        self.tracker = tracker
        self.tp = tp
        self.slots: deque[Slot] = deque()
        #: The offset after the last record handed out (``None`` before the first).
        self.next_offset: int | None = None
        #: The offset after the last record of the leading run of settled records.
        self.settled_to: int | None = None
        self.committed: int | None = None
        self.closed = False

    def open(self, offset: int, record: Any = None) -> Slot:
        """A slot for ``record``, at ``offset``, the next one of the partition."""
        slot = Slot(self, offset, record)
        self.slots.append(slot)
        self.next_offset = offset + 1
        self.tracker.inflight += 1
        return slot

    def advance(self) -> None:
        """Drop the leading run of done slots and move the committable offset past them."""
        slots = self.slots
        n = ok = 0
        while slots and slots[0].done:
            slot = slots.popleft()
            self.settled_to = slot.offset + 1
            n += 1
            ok += not slot.failed
        if n:
            self.tracker.settled(n)
            self.tracker.metrics.inc("success", ok)

    def resume_offset(self) -> int | None:
        """Where consumption must restart so that nothing unsettled is skipped."""
        return self.slots[0].offset if self.slots else self.next_offset


class OffsetTracker:
    """The windows of every assigned partition and the count of records in flight.

    Args:
        on_error: decides about a failed publish or event; see :data:`ErrorHandler`.
        low_water: :attr:`space` is set when at most this many records are in flight.
        metrics: the source's metrics; records that settle without failure count as ``success``.
    """

    def __init__(self, *, on_error: ErrorHandler, low_water: int, metrics: Metrics) -> None:
        self.on_error = on_error
        self.metrics = metrics
        self.low_water = low_water
        self.windows: dict[TopicPartition, Window] = {}
        self.inflight = 0
        self.space = asyncio.Event()
        self.space.set()
        self.drained = asyncio.Event()
        self.drained.set()

    def window(self, tp: TopicPartition) -> Window:
        """The window of ``tp``, created on first use."""
        w = self.windows.get(tp)
        if w is None:
            w = self.windows[tp] = Window(self, tp)
        return w

    def settled(self, n: int) -> None:
        """``n`` records left the windows."""
        self.inflight -= n
        if self.inflight <= self.low_water:
            self.space.set()
            if self.inflight <= 0:
                self.drained.set()

    def opened(self) -> None:
        """Update the events after records were handed out."""
        if self.inflight > self.low_water:
            self.space.clear()
        if self.inflight > 0:
            self.drained.clear()

    def committable(self) -> dict[TopicPartition, int]:
        """The offsets that moved since the last commit."""
        return {tp: w.settled_to for tp, w in self.windows.items()
                if w.settled_to is not None and w.settled_to != w.committed}

    def uncommitted(self) -> int:
        """Records settled since the last commit, over every partition."""
        return sum(w.settled_to - w.committed for w in self.windows.values()
                   if w.settled_to is not None and w.committed is not None
                   and w.settled_to > w.committed)

    def mark_committed(self, offsets: dict[TopicPartition, int]) -> None:
        """Record a successful commit."""
        for tp, offset in offsets.items():
            w = self.windows.get(tp)
            if w is not None:
                w.committed = offset

    def rewind(self) -> dict[TopicPartition, int]:
        """Start every partition afresh (the MQTT session was lost with records in flight).

        The settled and committed offsets are kept; records in flight are forgotten.

        Returns:
            where each partition must be consumed from again.
        """
        old = dict(self.windows)
        points = self.discard(old)
        for tp, w in old.items():
            fresh = self.window(tp)
            fresh.settled_to, fresh.committed = w.settled_to, w.committed
            fresh.next_offset = points.get(tp)
        return points

    def discard(self, tps: Iterable[TopicPartition]) -> dict[TopicPartition, int]:
        """Forget the windows of ``tps``; late completions of their records are ignored.

        Returns:
            where each partition must be consumed from again (partitions with nothing handed
            out are left out).
        """
        out: dict[TopicPartition, int] = {}
        gone = 0
        for tp in list(tps):
            w = self.windows.pop(tp, None)
            if w is None:
                continue
            w.closed = True
            gone += len(w.slots)
            resume = w.resume_offset()
            if resume is not None:
                out[tp] = resume
        if gone:
            self.settled(gone)
        return out

    def lag(self, highwater: Callable[[TopicPartition], int | None]) -> dict[TopicPartition, int]:
        """Records not yet settled per partition: the log end offset minus the settled offset."""
        out: dict[TopicPartition, int] = {}
        for tp, w in self.windows.items():
            end = highwater(tp)
            base = w.settled_to if w.settled_to is not None else w.committed
            if end is not None and base is not None:
                out[tp] = max(end - base, 0)
        return out
