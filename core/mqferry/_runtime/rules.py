"""Running one rule on an event: evaluation, outputs to actions, and failure isolation.

A rule that cannot process an event fails for that event alone: any exception from its
evaluation (not only a :class:`~mqferry._rules.RuleError`) counts ``failed`` /
``failed.exception`` on the rule, is logged (rate-limited, with the rule, the topic and the
exception), is kept as the rule's :attr:`~RuntimeRule.last_error` (shown by ``GET /rules/:id``
and the console's rule page), and sends the message to the dead-letter action when one is
configured (see :mod:`mqferry._runtime.deadletter`). An action whose ``submit`` raises fails
that output alone (``failed`` / ``failed.exception`` on the action, ``actions.failed`` on the
rule, and the rule's ``last_error``); the delivery it was handed is settled as failed, so the
message's ticket is released. An output an action failed for good (``failed.*``) is told to the
ticket too, and so is a failure of the rule itself (``failed.exception``, ``failed.overloaded``):
a source's event then fails, and its source fails that record alone
(:class:`~mqferry._runtime.delivery.EventDone`). A WHERE that is false (``filtered``) and a
FOREACH that leaves no element (``failed.no_result``, as EMQX counts it) select nothing: neither
fails the event.

Rules that call a blocking function (``jq``: :attr:`CompiledRule.blocking`) are evaluated in a
worker thread, never on the event loop. Each such rule keeps its events in a queue and evaluates
them one at a time, in arrival order, so its outputs keep the order of the messages; an event
holds its message's ticket until its outputs are handed to the actions (on the loop). The queue
is bounded twice: each queued MQTT message holds its PUBACK, so the broker sends no more than the
session's Receive Maximum unacknowledged messages; and at most :data:`MAX_PENDING` events wait
per rule (QoS 0 messages hold no PUBACK), beyond which the rule fails them
(``failed.overloaded``).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import logging
import time
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from mqferry._metrics import rule_metrics
from mqferry._rules import Event, Outcome, RuleError, RuleResult
from mqferry._rules.broker_events import is_broker_event
from mqferry._runtime.ackwait import AckWaits
from mqferry._runtime.delivery import RuleDelivery, Ticket
from mqferry._runtime.failures import LogLimiter
from mqferry._types import Action

if TYPE_CHECKING:
    from mqferry._config.loader import RuleSpec
    from mqferry._runtime.deadletter import DeadLetters

__all__ = ["MAX_PENDING", "OffLoop", "RuleEnv", "RuleFailure", "RuntimeRule"]

log = logging.getLogger(__name__)

#: The most events one blocking rule keeps waiting for evaluation.
MAX_PENDING = 10_000

#: An event waiting for a blocking rule: the event, its ticket, ``looped`` and the ack waits.
_Pending = tuple[Mapping[str, Any], Ticket, bool, "AckWaits | None"]


class OffLoop:
    """The worker thread that evaluates blocking rules, started on first use.

    One thread: the ``jq`` function runs its programs in one worker process, so evaluations in
    parallel would only queue there, and a program that times out (its process is replaced)
    would fail the others queued with it.
    """

    def __init__(self) -> None:
        self._pool: concurrent.futures.ThreadPoolExecutor | None = None

    def submit(self, fn: Callable[[Mapping[str, Any]], RuleResult],
               event: Mapping[str, Any]) -> concurrent.futures.Future[RuleResult]:
        """Run ``fn(event)`` in the worker thread."""
        if self._pool is None:
            self._pool = concurrent.futures.ThreadPoolExecutor(
                1, thread_name_prefix="mqferry-blocking-rules")
        return self._pool.submit(fn, event)

    def close(self) -> None:
        """Let the thread end once what is queued is done."""
        pool, self._pool = self._pool, None
        if pool is not None:
            pool.shutdown(wait=False)


@dataclass(slots=True)
class RuleEnv:
    """What the running app gives its rules.

    Attributes:
        dead_letters: where failed MQTT messages go (``None``: nowhere).
        limiter: rate-limits the log lines of failures.
        offloop: the worker thread of blocking rules.
    """

    dead_letters: DeadLetters | None = None
    limiter: LogLimiter = field(default_factory=lambda: LogLimiter(log))
    offloop: OffLoop = field(default_factory=OffLoop)


@dataclass(frozen=True, slots=True)
class RuleFailure:
    """The last failure of a rule on a message.

    Attributes:
        at: when, in seconds since the epoch.
        reason: the counter it was counted under (``failed.exception``, ``failed.overloaded``,
            or ``actions.failed`` when an action refused an output).
        message: what went wrong, as logged.
        topic: the MQTT topic of the message (or the event, for a source's record).
        action: the action that refused the output, for ``actions.failed``.
    """

    at: float
    reason: str
    message: str
    topic: str | None
    action: str | None = None

    def as_dict(self) -> dict[str, Any]:
        """The failure as the API shows it (``at`` in milliseconds, as EMQX's timestamps)."""
        return {"at": int(self.at * 1000), "reason": self.reason, "message": self.message,
                "topic": self.topic, "action": self.action}


def describe(exc: BaseException) -> str:
    """An exception as one readable line (rule errors carry their own wording)."""
    if isinstance(exc, RuleError):
        return str(exc)
    return f"{type(exc).__name__}: {exc}"


class _Route:
    """One action of one rule: how its outputs' failures are counted, logged, dead-lettered."""

    __slots__ = ("action", "action_id", "rule")

    def __init__(self, rule: RuntimeRule, action: Action) -> None:
        self.rule = rule
        self.action = action
        self.action_id = action.metrics.component_id

    def output_failed(self, event: Mapping[str, Any] | None, reason: str, detail: str,
                      ticket: Ticket | None) -> None:
        rule = self.rule
        if ticket is not None:
            # a source's event fails its record at the source (EventDone); a message ignores it
            what = f"{reason}: {detail}" if detail else reason
            ticket.output_failed(f"rule {rule.id}: action {self.action_id} failed an output "
                                 f"({what})")
        dead_letters = rule.env.dead_letters
        if dead_letters is not None and event is not None:
            error = f"action {self.action_id} failed the output ({reason})"
            dead_letters.send(event, ticket, reason=reason,
                              error=f"{error}: {detail}" if detail else error,
                              rule_id=rule.id, metrics=rule.metrics, action_id=self.action_id)

    def submit_raised(self, event: Mapping[str, Any], delivery: RuleDelivery,
                      exc: Exception) -> None:
        m = self.action.metrics
        m.inc("failed")
        m.inc("failed.exception")
        rule = self.rule
        rule.last_error = RuleFailure(time.time(), "actions.failed", describe(exc),
                                      _topic(event), self.action_id)
        rule.env.limiter.warning(
            ("submit", rule.id, self.action_id),
            "rule %s: action %s failed an output of a message on %r: %s", rule.id,
            self.action_id, _where(event), describe(exc))
        delivery.fail("failed.exception", describe(exc))


def _where(event: Mapping[str, Any]) -> Any:
    return event.get("topic") or event.get("event")


def _topic(event: Mapping[str, Any]) -> str | None:
    where = _where(event)
    return where if isinstance(where, str) else None


class RuntimeRule:
    """A compiled rule with its counters and resolved actions.

    Args:
        spec: the validated rule.
        actions: the running actions its outputs go to.
        env: what the app gives its rules (the app sets it when it installs the rule).
    """

    __slots__ = ("_actions", "_pending", "_routes", "compiled", "env", "id", "last_error",
                 "metrics")

    def __init__(self, spec: RuleSpec, actions: list[Action], env: RuleEnv | None = None) -> None:
        self.id = spec.id
        self.compiled = spec.compiled
        self.metrics = rule_metrics(spec.id)
        self.env = env if env is not None else RuleEnv()
        #: The last failure on a message, kept until the rule is replaced.
        self.last_error: RuleFailure | None = None
        self._pending: deque[_Pending] | None = deque() if self.compiled.blocking else None
        self.actions = actions
        never = [t for t in self.compiled.event_topics if is_broker_event(t)]
        if never:
            log.warning("rule %s selects %s: mqferry sees only the messages published to the "
                        "topics it subscribes to, so this EMQX broker event never reaches it "
                        "and the rule never fires here (mqferry rule test still runs it)",
                        self.id, ", ".join(never))

    @property
    def actions(self) -> list[Action]:
        """The actions this rule's outputs go to."""
        return self._actions

    @actions.setter
    def actions(self, actions: list[Action]) -> None:
        self._actions = actions
        self._routes = tuple(_Route(self, a) for a in actions)

    @property
    def pending(self) -> int:
        """How many events wait for this rule's evaluation in the worker thread."""
        return len(self._pending) if self._pending is not None else 0

    def run(self, event: Mapping[str, Any], ticket: Ticket, *, looped: bool = False,
            waits: AckWaits | None = None) -> None:
        """Evaluate on ``event`` and hand every output to every action, holding ``ticket``.

        Never raises because of the event, the rule or an action (see the module docs).

        ``looped``: the event is a message mqferry republished itself; actions with a true
        ``loop_guard`` (republish) do not get its outputs, so republishing cannot loop.
        ``waits``: the message is acknowledged at most once: ``ticket`` is held only by actions
        with an ``ack_wait``, and only that long (see :mod:`mqferry._runtime.ackwait`).
        """
        self.metrics.inc("matched")
        if self._pending is not None:
            self._enqueue(event, ticket, looped, waits)
            return
        compiled = self.compiled
        select = compiled.select
        try:
            if select is not None:  # SELECT: its generated function, without run()'s frame
                result: Any = select(event if type(event) is Event else Event(event))
                outcome = Outcome.FILTERED if result is None else Outcome.PASSED
            else:
                outcome, result = compiled.run(event)
        except Exception as exc:  # whatever the cause, this event fails alone
            self._failed(event, ticket, waits, "failed.exception", exc)
            return
        self._hand_out(event, ticket, outcome, result, looped=looped, waits=waits)

    def _hand_out(self, event: Mapping[str, Any], ticket: Ticket, outcome: Outcome,
                  result: Any, *, looped: bool, waits: AckWaits | None) -> None:
        m = self.metrics
        if outcome is Outcome.FILTERED:
            m.inc("filtered")
            return
        if outcome is Outcome.NO_RESULT or result is None:
            m.inc("failed")
            m.inc("failed.no_result")
            return
        m.inc("passed")
        outputs = result if isinstance(result, list) else (result,)
        # Only a dead letter reads the event of a failed output: without dead letters (read
        # once, at start) the deliveries do not keep it alive while their records wait.
        kept = event if self.env.dead_letters is not None else None
        for output in outputs:
            for route in self._routes:
                action = route.action
                if looped and getattr(action, "loop_guard", False):
                    action.metrics.inc("dropped.loop")
                    continue
                m.inc("actions.total")
                if waits is not None:
                    delivery = waits.delivery(ticket, m, getattr(action, "ack_wait", None),
                                              route, kept)
                else:
                    ticket.hold()
                    delivery = RuleDelivery(ticket, m, 0.0, route, kept)
                try:
                    action.submit(output, delivery)
                except Exception as exc:  # a broken action fails this output only
                    route.submit_raised(event, delivery, exc)

    def _failed(self, event: Mapping[str, Any], ticket: Ticket, waits: AckWaits | None,
                reason: str, exc: BaseException) -> None:
        m = self.metrics
        m.inc("failed")
        m.inc(reason)
        why = describe(exc)
        self.last_error = RuleFailure(time.time(), reason, why, _topic(event))
        # a source's event fails its record at the source (EventDone); a message ignores it
        ticket.rule_failed(f"rule {self.id} failed on the event ({reason}: {why})")
        env = self.env
        env.limiter.warning(("rule", self.id), "rule %s failed on a message on %r: %s",
                            self.id, _where(event), why)
        if env.dead_letters is not None:
            # at most once: the ack does not wait for the dead letter either
            env.dead_letters.send(event, ticket if waits is None else None, reason=reason,
                                  error=why, rule_id=self.id, metrics=m)

    # -- blocking rules ----------------------------------------------------------------------

    def _enqueue(self, event: Mapping[str, Any], ticket: Ticket, looped: bool,
                 waits: AckWaits | None) -> None:
        pending = self._pending
        assert pending is not None
        if len(pending) >= MAX_PENDING:
            self._failed(event, ticket, waits, "failed.overloaded", OverflowError(
                f"{MAX_PENDING} events are already waiting for this rule's evaluation"))
            return
        ticket.hold()
        pending.append((event, ticket, looped, waits))
        if len(pending) == 1:
            self._evaluate_next()

    def _evaluate_next(self) -> None:
        assert self._pending
        loop = asyncio.get_running_loop()
        try:
            future = self.env.offloop.submit(self.compiled.run, self._pending[0][0])
        except RuntimeError as exc:  # the worker was shut down
            future = concurrent.futures.Future()
            future.set_exception(exc)

        def done(f: concurrent.futures.Future[RuleResult]) -> None:
            with contextlib.suppress(RuntimeError):  # the loop is closed: the app is gone
                loop.call_soon_threadsafe(self._evaluated, f)

        future.add_done_callback(done)

    def _evaluated(self, future: concurrent.futures.Future[RuleResult]) -> None:
        pending = self._pending
        assert pending
        event, ticket, looped, waits = pending.popleft()
        try:
            try:
                outcome, result = future.result()
            except Exception as exc:  # as in run()
                self._failed(event, ticket, waits, "failed.exception", exc)
            else:
                self._hand_out(event, ticket, outcome, result, looped=looped, waits=waits)
        finally:
            ticket.release()
            if pending:
                self._evaluate_next()
