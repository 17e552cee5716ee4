"""The deliveries of rule outputs, and at-most-once acks that wait a bounded time for them.

Each output a rule hands to an action gets a :class:`RuleDelivery`, which counts its outcome
and releases the message's ticket once.

With ``mqtt.delivery: at_most_once`` a message's PUBACK does not wait for its actions, except
for an action that sets ``ack_wait`` (seconds; the ``kafka_producer`` action does with
``query_mode: sync``, as EMQX's synchronous queries make the publisher wait up to
``sync_query_timeout``). The PUBACK then waits for that action's outcome or until ``ack_wait``
passed, whichever comes first; the output itself stays with the action and may still be
delivered after that.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import deque

from mqferry.metrics import Metrics
from mqferry.mqtt.acks import Ticket
from mqferry.tasks import Supervisor


class RuleDelivery:
    """Ties one action output to its rule's counters and, while it holds one, its message's ticket.

    Args:
        ticket: the ticket this output holds (already held), or ``None`` when the message's ack
            does not wait for it.
        metrics: the rule's metrics.
        deadline: for a bounded wait, when :class:`AckWaits` releases the ticket regardless.
    """

    __slots__ = ("_metrics", "_ticket", "deadline")

    def __init__(self, ticket: Ticket | None, metrics: Metrics, deadline: float = 0.0) -> None:
        self._ticket = ticket
        self._metrics = metrics
        self.deadline = deadline

    @property
    def holding(self) -> bool:
        """Whether the ticket is still held."""
        return self._ticket is not None

    def secured(self) -> None:
        self._metrics.inc("actions.success")
        self.release()

    def failed(self, reason: str) -> None:
        self._metrics.inc("actions.failed")
        self.release()

    def release(self) -> None:
        """Stop holding the message's ticket (once)."""
        ticket, self._ticket = self._ticket, None
        if ticket is not None:
            ticket.release()


class AckWaits:
    """The bounded waits of at-most-once messages, released at their deadlines by one task."""

    def __init__(self) -> None:
        # one queue per wait length, so each queue is in deadline order
        self._queues: dict[float, deque[RuleDelivery]] = {}
        self._added = asyncio.Event()
        # restarted if it ever dies: at-most-once acks must never wait beyond their deadline
        self._task = Supervisor("mqferry[acks].wait", self._run)

    def delivery(self, ticket: Ticket, metrics: Metrics, wait: float | None) -> RuleDelivery:
        """The delivery for one output of an action whose ``ack_wait`` is ``wait``."""
        if wait is None:
            return RuleDelivery(None, metrics)
        ticket.hold()
        d = RuleDelivery(ticket, metrics, time.monotonic() + wait)
        q = self._queues.get(wait)
        if q is None:
            q = self._queues[wait] = deque()
        if not q:
            self._added.set()  # its deadline may come before the one the task sleeps for
        q.append(d)
        return d

    def expire(self, now: float) -> float | None:
        """Release every wait past its deadline; the next deadline, if any."""
        nxt: float | None = None
        for q in self._queues.values():
            while q and (not q[0].holding or q[0].deadline <= now):
                q.popleft().release()
            if q and (nxt is None or q[0].deadline < nxt):
                nxt = q[0].deadline
        return nxt

    def start(self) -> None:
        """Start the task that releases waits at their deadlines."""
        self._task.start()

    async def stop(self) -> None:
        """Stop the task (waits still pending stay held until their outputs settle)."""
        await self._task.stop()

    async def _run(self) -> None:
        while True:
            nxt = self.expire(time.monotonic())
            self._added.clear()
            # Outputs that settle early leave their queue at a later pass; at least 10 ms
            # between passes keeps this off the hot path.
            timeout = None if nxt is None else max(nxt - time.monotonic(), 0.01)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._added.wait(), timeout)
