"""The deliveries of rule outputs, and at-most-once acks that wait a bounded time for them.

Each output a rule hands to an action gets a :class:`RuleDelivery`, which counts its outcome
once (an action that settles an output twice, or after its ``submit`` raised, changes nothing),
tells its route when the output failed (for the dead letters), and releases the message's
ticket once.

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
from typing import Any, Protocol

from mqferry.metrics import Metrics
from mqferry.mqtt.acks import Ticket
from mqferry.tasks import Supervisor


class Route(Protocol):
    """Where the failed outputs of one rule's action are reported (counted, dead-lettered)."""

    def output_failed(self, event: Mapping[str, Any], reason: str, detail: str,
                      ticket: Ticket | None) -> None:
        """An output of ``event`` failed with ``reason``.

        ``ticket``, when given, may be held (``hold``/``release``) past this call, until what
        is done about the failure is secured.
        """


class RuleDelivery:
    """Ties one action output to its rule's counters and, while it holds one, its message's ticket.

    Args:
        ticket: the ticket this output holds (already held), or ``None`` when the message's ack
            does not wait for it.
        metrics: the rule's metrics.
        deadline: for a bounded wait, when :class:`AckWaits` releases the ticket regardless.
        route: told when the output fails (``None``: failures are only counted).
        event: the event the output came from, handed to ``route``.
    """

    __slots__ = ("_event", "_metrics", "_route", "_ticket", "deadline")

    def __init__(self, ticket: Ticket | None, metrics: Metrics, deadline: float = 0.0,
                 route: Route | None = None, event: Mapping[str, Any] | None = None) -> None:
        self._ticket = ticket
        self._metrics: Metrics | None = metrics
        self.deadline = deadline
        self._route = route
        self._event = event

    @property
    def holding(self) -> bool:
        """Whether the ticket is still held."""
        return self._ticket is not None

    @property
    def settled(self) -> bool:
        """Whether the outcome was counted (secured or failed)."""
        return self._metrics is None

    def secured(self) -> None:
        m, self._metrics = self._metrics, None
        if m is not None:
            m.inc("actions.success")
            self.release()

    def failed(self, reason: str) -> None:
        self.fail(reason, "")

    def fail(self, reason: str, detail: str) -> None:
        """Count the output as failed with ``reason`` (``detail`` explains it), once.

        ``failed.*`` reasons go to the route (outputs an action dropped by its own policy,
        ``dropped.*``, do not). With a bounded wait (``at_most_once``) the route gets no ticket
        to hold: the ack does not wait for what is done about the failure.
        """
        m, self._metrics = self._metrics, None
        if m is None:
            return
        m.inc("actions.failed")
        route = self._route
        if route is not None and self._event is not None and reason.startswith("failed"):
            route.output_failed(self._event, reason, detail,
                                None if self.deadline else self._ticket)
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
