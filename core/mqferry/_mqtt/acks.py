"""Ordered, deferred MQTT acknowledgements.

MQTT requires PUBACKs in the order the PUBLISHes arrived. Each incoming QoS 1 message gets a
:class:`~mqferry._runtime.delivery.Ticket`; actions hold it until they have secured the message.
The :class:`AckWindow` sends the PUBACK of the oldest message as soon as it and everything before
it are done, so a slow message delays later acks (the broker's in-flight window is our
back-pressure) but never reorders them.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable

from mqferry._runtime.delivery import Ticket

__all__ = ["AckWindow"]


class AckWindow:
    """The messages of one MQTT connection whose acks are pending, in arrival order.

    Args:
        send_acks: sends the acks for a run of ``(mid, qos)`` pairs, in order, on the current
            connection.
        deferred: :meth:`advance` acknowledges at the end of the event loop's current turn
            rather than at once, so the messages secured together (a Kafka batch of hundreds)
            leave as one run instead of one call per message; :meth:`settle` does it now.
        linger: with ``deferred``, while fewer than ``linger_below`` messages are pending,
            :meth:`advance` acknowledges ``linger`` seconds later instead of at the end of the
            turn, so the acks of a trickle leave in runs too (at-most-once acknowledges each
            message as it arrives: one socket write per message otherwise). 0: never.
        linger_below: see ``linger``; from this many pending messages on, a lingering run
            leaves at the end of the turn.
    """

    def __init__(self, send_acks: Callable[[list[tuple[int, int]]], object], *,
                 deferred: bool = False, linger: float = 0.0, linger_below: int = 64) -> None:
        self._send_acks = send_acks
        self._queue: deque[Ticket] = deque()
        self.generation = 0
        self._deferred = deferred
        self._linger = linger if deferred else 0.0
        self._linger_below = linger_below
        self._scheduled: asyncio.Handle | None = None
        #: whether the scheduled settle is the linger's timer (read only while one is scheduled)
        self._lingering = False

    def __len__(self) -> int:
        return len(self._queue)

    def oldest(self) -> Ticket | None:
        """The oldest message whose ack is pending, if any."""
        return self._queue[0] if self._queue else None

    def open(self, mid: int, qos: int) -> Ticket:
        """A ticket for a message just received."""
        ticket = Ticket(self, mid, qos, self.generation)
        self._queue.append(ticket)
        return ticket

    def advance(self) -> None:
        """Acknowledge the leading run of done messages (now, or at the end of this turn)."""
        if not self._deferred:
            self.settle()
            return
        scheduled = self._scheduled
        few = len(self._queue) < self._linger_below
        if scheduled is not None:
            if not self._lingering or few:
                return  # due at the end of this turn, or lingering with few pending
            scheduled.cancel()  # enough are pending now: the run leaves with this turn
        loop = asyncio.get_running_loop()
        self._lingering = bool(self._linger) and few
        if self._lingering:
            self._scheduled = loop.call_later(self._linger, self.settle)
        else:
            self._scheduled = loop.call_soon(self.settle)

    def settle(self) -> None:
        """Acknowledge the leading run of done messages now."""
        if self._scheduled is not None:
            self._scheduled.cancel()
            self._scheduled = None
        q = self._queue
        if not q or not q[0].done:
            return
        generation = self.generation
        run: list[tuple[int, int]] = []
        while q and q[0].done:
            t = q.popleft()
            if t.generation == generation and t.qos > 0:
                run.append((t.mid, t.qos))
        if run:
            self._send_acks(run)

    def reset(self) -> int:
        """Forget every pending message (the connection is gone; the broker will resend them).

        Returns:
            how many were pending.
        """
        n = len(self._queue)
        if self._scheduled is not None:
            self._scheduled.cancel()
            self._scheduled = None
        self._queue.clear()
        self.generation += 1
        return n
