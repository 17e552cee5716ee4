"""Ordered, deferred MQTT acknowledgements.

MQTT requires PUBACKs in the order the PUBLISHes arrived. Each incoming QoS 1 message gets a
:class:`~mqferry._runtime.delivery.Ticket`; actions hold it until they have secured the message.
The :class:`AckWindow` sends the PUBACK of the oldest message as soon as it and everything before
it are done, so a slow message delays later acks (the broker's in-flight window is our
back-pressure) but never reorders them.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable

from mqferry._runtime.delivery import Ticket

__all__ = ["AckWindow"]


class AckWindow:
    """The messages of one MQTT connection whose acks are pending, in arrival order.

    Args:
        send_acks: sends the acks for a run of ``(mid, qos)`` pairs, in order, on the current
            connection.
    """

    def __init__(self, send_acks: Callable[[list[tuple[int, int]]], object]) -> None:
        self._send_acks = send_acks
        self._queue: deque[Ticket] = deque()
        self.generation = 0

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
        """Acknowledge the leading run of done messages."""
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
        self._queue.clear()
        self.generation += 1
        return n
