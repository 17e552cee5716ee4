"""Delivery tracking: when a message or an event counts as delivered, and who is told.

A received MQTT message gets a :class:`Ticket` (one per message, in the MQTT session's ack
window); an event a source dispatches gets an :class:`EventDone`. Both are a
:class:`Countdown`: every output a rule hands to an action holds it, through a
:class:`RuleDelivery`, until the action settles that output; the message is acknowledged (the
source's ``dispatch`` returns) once every output settled.

An output an action failed for good (a ``failed.*`` reason) is told to the ticket
(:meth:`Ticket.output_failed`), and so is a rule that failed on the event itself, its evaluation
raising (:meth:`Ticket.rule_failed`): a message is dead-lettered by its rule instead, while a
source's event fails its ``dispatch`` with :class:`~mqferry._errors.DeliveryError`
(``failed.action``, ``failed.rule``), so that the source fails that record alone as it fails its
own (counted, logged, dead-lettered).

Each :class:`RuleDelivery` counts its outcome once on the rule (an action that settles an
output twice, or after its ``submit`` raised, changes nothing), tells its :class:`Route` when
the output failed (for the dead letters), and releases the ticket once.

The MQTT ack window that orders the PUBACKs (:mod:`mqferry._mqtt.acks`) is told through
:class:`AckAdvance` when a ticket is done; nothing here depends on MQTT.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from typing import Any, Protocol

from mypy_extensions import mypyc_attr

from mqferry._errors import DeliveryError
from mqferry._metrics import Metrics

__all__ = ["EVENT_FAILED", "RULE_FAILED", "AckAdvance", "Countdown", "EventDone", "Route",
           "RuleDelivery", "Ticket"]

#: The reason of the :class:`~mqferry._errors.DeliveryError` a source's event fails with when
#: an action failed one of its outputs for good.
EVENT_FAILED = "failed.action"

#: The reason it fails with when a rule failed on it (its evaluation raised, or the rule was
#: too far behind to evaluate it): the rule handed it to no action.
RULE_FAILED = "failed.rule"

log = logging.getLogger(__name__)


class AckAdvance(Protocol):
    """What a :class:`Ticket` tells when it is done: the ack window of its connection."""

    def advance(self) -> None:
        """Acknowledge the leading run of done messages."""


# Plugins subclass it (a Kafka source's record slot); compiled (scripts/compile.py), it must allow
# subclasses that are not.
@mypyc_attr(allow_interpreted_subclasses=True)
class Countdown:
    """Work that is done once every part of it has settled.

    The owner calls :meth:`hold` once per part, then :meth:`seal`; each part calls
    :meth:`release` once. When sealed and fully released, :meth:`_finish` runs once (subclasses
    extend it). Sealing last means a part that settles at once cannot finish the whole early.
    """

    __slots__ = ("_pending", "_sealed", "done")

    def __init__(self) -> None:
        self._pending = 0
        self._sealed = False
        self.done = False

    def hold(self) -> None:
        """One more part must settle."""
        self._pending += 1

    def release(self) -> None:
        """One part settled."""
        self._pending -= 1
        if self._sealed and self._pending <= 0:
            self._finish()

    def seal(self) -> None:
        """Every hold has been taken; finish once all are released."""
        self._sealed = True
        if self._pending <= 0:
            self._finish()

    def _finish(self) -> None:
        self.done = True


@mypyc_attr(allow_interpreted_subclasses=True)
class Ticket(Countdown):
    """One received message, held by the actions that still have to secure it."""

    __slots__ = ("_window", "generation", "mid", "qos")

    def __init__(self, window: AckAdvance | None, mid: int, qos: int, generation: int) -> None:
        super().__init__()
        self._window = window
        self.mid = mid
        self.qos = qos
        self.generation = generation

    def _finish(self) -> None:
        if not self.done:
            self.done = True
            if self._window is not None:
                self._window.advance()

    def output_failed(self, detail: str) -> None:
        """An action failed an output of this message for good; ``detail`` says which and why.

        Nothing to do for an MQTT message: its rule dead-letters it, and it is acknowledged
        all the same (failure isolation).
        """

    def rule_failed(self, detail: str) -> None:
        """A rule failed on this message (its evaluation raised, or it was too far behind to
        evaluate it: ``failed.overloaded``); ``detail`` says which rule and why.

        Nothing to do for an MQTT message, as for :meth:`output_failed`. A rule whose WHERE
        is false, or whose FOREACH leaves no element, did not fail: it selected nothing.
        """


class EventDone(Ticket):
    """A ticket that completes a future: sources await the deliveries of their events.

    The future fails with :class:`~mqferry._errors.DeliveryError` once every output settled,
    when an action failed one of them for good (:data:`EVENT_FAILED`) or a rule failed on the
    event (:data:`RULE_FAILED`), with the reason and detail of the first such failure; it
    completes otherwise (outputs an action dropped by its own policy, ``dropped.*``, included).
    """

    __slots__ = ("failure", "failures", "future")

    def __init__(self) -> None:
        super().__init__(None, 0, 0, 0)
        self.future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        #: the first failure, as its reason and detail (``None``: none), and how many there were
        self.failure: tuple[str, str] | None = None
        self.failures = 0

    def output_failed(self, detail: str) -> None:
        """Remember the failure: the future fails with it once every output settled."""
        self._failed(EVENT_FAILED, detail)

    def rule_failed(self, detail: str) -> None:
        """Remember the failure: the future fails with it once every output settled."""
        self._failed(RULE_FAILED, detail)

    def _failed(self, reason: str, detail: str) -> None:
        self.failures += 1
        if self.failure is None:
            self.failure = (reason, detail)

    def _finish(self) -> None:
        if not self.done:
            self.done = True
            future = self.future
            if future.done():
                return
            failure = self.failure
            if failure is None:
                future.set_result(None)
            else:
                reason, detail = failure
                more = self.failures - 1
                future.set_exception(DeliveryError(
                    reason, f"{detail} (and {more} more)" if more else detail))


class Route(Protocol):
    """Where the failed outputs of one rule's action are reported (counted, dead-lettered)."""

    def output_failed(self, event: Mapping[str, Any] | None, reason: str, detail: str,
                      ticket: Ticket | None) -> None:
        """An output of ``event`` failed with ``reason``.

        ``event`` is ``None`` when the output did not keep it: only a dead letter needs it.

        ``ticket``, when given, may be held (``hold``/``release``) past this call, until what
        is done about the failure is secured; the route tells it the failure
        (:meth:`Ticket.output_failed`).
        """


class RuleDelivery:
    """Ties one action output to its rule's counters and, while it holds one, its message's ticket.

    Args:
        ticket: the ticket this output holds (already held), or ``None`` when the message's ack
            does not wait for it.
        metrics: the rule's metrics.
        deadline: for a bounded wait, when :class:`AckWaits` releases the ticket regardless.
        route: told when the output fails (``None``: failures are only counted).
        event: the event the output came from, handed to ``route``; ``None`` when nothing
            would read it (no dead letters): an output buffered in an action then holds its
            record alone, not the event's ~2 KB (the message, its decoded payload, ...).
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

    def failed(self, reason: Any) -> None:
        self.fail(reason, "")

    def fail(self, reason: Any, detail: Any) -> None:
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
        why = str(reason)
        try:
            if route is not None and why.startswith("failed"):
                route.output_failed(self._event, why, str(detail),
                                    None if self.deadline else self._ticket)
        except Exception:
            # Not raised into the action settling it (it may be settling a whole batch).
            log.exception("reporting a failed output (%s) failed", why)
        finally:
            # whatever the route did with it: a ticket never released holds every later ack
            self.release()

    def release(self) -> None:
        """Stop holding the message's ticket (once)."""
        ticket, self._ticket = self._ticket, None
        if ticket is not None:
            ticket.release()
