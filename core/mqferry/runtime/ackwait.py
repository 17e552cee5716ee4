"""At-most-once acknowledgements that wait, for a bounded time, for synchronous actions.

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


class CountedDelivery:
    """An output whose outcome only counts in its rule's metrics (the ack does not wait)."""

    __slots__ = ("_metrics",)

    def __init__(self, metrics: Metrics) -> None:
        self._metrics = metrics

    def secured(self) -> None:
        self._metrics.inc("actions.success")

    def failed(self, reason: str) -> None:
        self._metrics.inc("actions.failed")


class BoundedDelivery:
    """An output whose message's ack waits for its outcome until a deadline."""

    __slots__ = ("_metrics", "_ticket", "deadline")

    def __init__(self, ticket: Ticket, metrics: Metrics, deadline: float) -> None:
        self._ticket: Ticket | None = ticket
        self._metrics = metrics
        self.deadline = deadline
        ticket.hold()

    def secured(self) -> None:
        self._metrics.inc("actions.success")
        self.expire()

    def failed(self, reason: str) -> None:
        self._metrics.inc("actions.failed")
        self.expire()

    def expire(self) -> None:
        """Stop holding the message's ack (once)."""
        ticket, self._ticket = self._ticket, None
        if ticket is not None:
            ticket.release()


class AckWaits:
    """The bounded waits of at-most-once messages, released at their deadlines by one task."""

    def __init__(self) -> None:
        # one queue per wait length, so each queue is in deadline order
        self._queues: dict[float, deque[BoundedDelivery]] = {}
        self._added = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    def delivery(self, ticket: Ticket, metrics: Metrics,
                 wait: float | None) -> CountedDelivery | BoundedDelivery:
        """The delivery for one output of an action whose ``ack_wait`` is ``wait``."""
        if wait is None:
            return CountedDelivery(metrics)
        d = BoundedDelivery(ticket, metrics, time.monotonic() + wait)
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
            while q and (q[0]._ticket is None or q[0].deadline <= now):
                q.popleft().expire()
            if q and (nxt is None or q[0].deadline < nxt):
                nxt = q[0].deadline
        return nxt

    def start(self) -> None:
        """Start the task that releases waits at their deadlines."""
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="mqferry[acks].wait")

    async def stop(self) -> None:
        """Stop the task (waits still pending stay held until their outputs settle)."""
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def _run(self) -> None:
        while True:
            nxt = self.expire(time.monotonic())
            self._added.clear()
            # Outputs that settle early leave their queue at a later pass; at least 10 ms
            # between passes keeps this off the hot path.
            timeout = None if nxt is None else max(nxt - time.monotonic(), 0.01)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._added.wait(), timeout)
