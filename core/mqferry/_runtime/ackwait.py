"""At-most-once acks that wait a bounded time for the outputs of their message.

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
from collections.abc import Mapping
from typing import Any

from mqferry._metrics import Metrics
from mqferry._runtime.delivery import Route, RuleDelivery, Ticket
from mqferry._tasks import Supervisor

__all__ = ["AckWaits"]


class AckWaits:
    """The bounded waits of at-most-once messages, released at their deadlines by one task."""

    def __init__(self) -> None:
        # one queue per wait length, so each queue is in deadline order
        self._queues: dict[float, deque[RuleDelivery]] = {}
        self._added = asyncio.Event()
        # restarted if it ever dies: at-most-once acks must never wait beyond their deadline
        #: The loop that releases waits at their deadlines.
        self.task = Supervisor("mqferry[acks].wait", self._run)

    def delivery(self, ticket: Ticket, metrics: Metrics, wait: float | None,
                 route: Route | None = None,
                 event: Mapping[str, Any] | None = None) -> RuleDelivery:
        """The delivery for one output of an action whose ``ack_wait`` is ``wait``."""
        if wait is None:
            return RuleDelivery(None, metrics, 0.0, route, event)
        ticket.hold()
        d = RuleDelivery(ticket, metrics, time.monotonic() + wait, route, event)
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
        self.task.start()

    async def stop(self) -> None:
        """Stop the task (waits still pending stay held until their outputs settle)."""
        await self.task.stop()

    async def _run(self) -> None:
        while True:
            nxt = self.expire(time.monotonic())
            self._added.clear()
            # Outputs that settle early leave their queue at a later pass; at least 10 ms
            # between passes keeps this off the hot path.
            timeout = None if nxt is None else max(nxt - time.monotonic(), 0.01)
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(timeout):
                    await self._added.wait()
