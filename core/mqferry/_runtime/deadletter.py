"""The dead-letter destination of MQTT messages that a rule or an action could not process.

With ``mqtt.dead_letter: {action: <type>:<name>}``, every MQTT message whose rule evaluation
failed (``failed.exception``), or whose rule output an action failed (any ``failed.*`` reason; an
output an action dropped by its own policy, such as ``drop_oldest``'s ``dropped.queue_full``, is
not a dead letter), is handed to that action as one output built by :func:`dead_letter_output`.
Any action will do: ``kafka_producer`` gives a Kafka dead-letter topic, ``republish`` an MQTT one.

The message's PUBACK waits until the dead-letter action secured it (with ``mqtt.delivery:
at_least_once``), so a dead letter is not lost in a crash: the broker redelivers the message.
When the dead-letter action fails too, the rule counts ``dead_letter.failed``, the failure is
logged, and the message is released (acknowledged): a dead letter is never dead-lettered again.
Rule counters: ``dead_letter.success`` and ``dead_letter.failed``.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from typing import Any

from mqferry._metrics import Metrics
from mqferry._mqtt.properties import RECEIVED_PROPERTIES
from mqferry._runtime.delivery import Ticket
from mqferry._runtime.failures import LogLimiter
from mqferry._templates import to_text
from mqferry._types import LOOP_MARKER, Action

__all__ = ["DeadLetters", "dead_letter_output"]

log = logging.getLogger(__name__)

#: The longest error text a dead letter carries (an exception may quote a whole payload).
MAX_ERROR = 1000

#: MQTT 5 publish properties copied into ``headers`` (``mqtt-content-type``, ...): the
#: publisher's, not the subscription identifier of mqferry's own subscription.
_PROPS = tuple(name for _, name in RECEIVED_PROPERTIES if name != "Subscription-Identifier")


def dead_letter_output(event: Mapping[str, Any], *, reason: str, error: str, rule_id: str,
                       action_id: str | None, node: str) -> dict[str, Any]:
    """The output a dead-letter action receives for one MQTT message.

    Keys: ``topic``, ``clientid`` and ``username`` (when the publisher set them as user
    properties, see :func:`~mqferry._runtime.events.message_event`), ``qos``, ``retain``,
    ``flags``, ``pub_props`` (every MQTT 5 publish property, ``User-Property`` as a map),
    ``user_properties``, ``payload`` (the raw bytes), ``reason`` (the counter: ``failed.*``),
    ``error`` (a readable explanation), ``rule_id``, ``action_id`` (absent when the rule's
    evaluation failed), ``node``, ``timestamp`` (when it was dead-lettered, epoch ms),
    ``publish_received_at``, ``id`` (the message's id), and ``headers``: all of the above as
    text, ready for ``kafka_headers: ${headers}`` or ``user_properties: ${headers}`` (the
    message's user properties, then ``mqtt-topic``, ``mqtt-clientid``, ``mqtt-username``,
    ``mqtt-qos``, ``mqtt-retain``, ``mqtt-<property>``, ``mqferry-reason``, ``mqferry-error``,
    ``mqferry-rule``, ``mqferry-action``, ``mqferry-node``, ``mqferry-timestamp``).
    """
    props: Mapping[str, Any] = event.get("pub_props") or {}
    user: Mapping[str, Any] = props.get("User-Property") or {}
    payload = event.get("payload")
    raw = payload.encode() if isinstance(payload, str) else payload
    flags: Mapping[str, Any] = event.get("flags") or {}
    retain = bool(flags.get("retain", False))
    now = int(time.time() * 1000)
    error = error if len(error) <= MAX_ERROR else error[:MAX_ERROR] + "..."
    headers: dict[str, str] = {str(k): to_text(v) for k, v in user.items()}
    headers["mqtt-topic"] = str(event.get("topic", ""))
    for key in ("clientid", "username"):
        if event.get(key) is not None:
            headers[f"mqtt-{key}"] = str(event[key])
    headers["mqtt-qos"] = str(event.get("qos", 0))
    headers["mqtt-retain"] = "true" if retain else "false"
    for name in _PROPS:
        if props.get(name) is not None:
            headers[f"mqtt-{name.lower()}"] = to_text(props[name])
    headers["mqferry-reason"] = reason
    headers["mqferry-error"] = error
    headers["mqferry-rule"] = rule_id
    if action_id is not None:
        headers["mqferry-action"] = action_id
    headers["mqferry-node"] = node
    headers["mqferry-timestamp"] = str(now)
    out: dict[str, Any] = {
        "id": event.get("id"),
        "topic": event.get("topic"),
        "qos": event.get("qos", 0),
        "retain": retain,
        "flags": dict(flags),
        "pub_props": dict(props),
        "user_properties": dict(user),
        "payload": raw,
        "reason": reason,
        "error": error,
        "rule_id": rule_id,
        "node": node,
        "timestamp": now,
        "publish_received_at": event.get("publish_received_at"),
        "headers": headers,
    }
    for key in ("clientid", "username"):
        if event.get(key) is not None:
            out[key] = event[key]
    if action_id is not None:
        out["action_id"] = action_id
    return out


class DeadLetters:
    """Hands failed MQTT messages to the dead-letter action.

    Args:
        action_id: the dead-letter action (``mqtt.dead_letter.action``).
        actions: the running actions by id (the app's live mapping: a replaced dead-letter
            action is found under the same id).
        node: this instance's name.
        limiter: rate-limits the log lines of dead letters that fail.
    """

    def __init__(self, *, action_id: str, actions: Mapping[str, Action], node: str,
                 limiter: LogLimiter) -> None:
        self.action_id = action_id
        self._actions = actions
        self._node = node
        self.limiter = limiter

    def send(self, event: Mapping[str, Any], ticket: Ticket | None, *, reason: str, error: str,
             rule_id: str, metrics: Metrics, action_id: str | None = None) -> None:
        """Dead-letter the MQTT message ``event``, if it is one.

        Args:
            event: the message's rule event (events of Kafka sources are not dead-lettered
                here: sources have their own dead letters).
            ticket: held until the dead-letter action settles; ``None`` when the message's ack
                does not wait (``at_most_once``).
            reason: the failure's counter (``failed.*``).
            error: a readable explanation.
            rule_id: the rule whose evaluation or output failed.
            metrics: that rule's metrics, where ``dead_letter.*`` is counted.
            action_id: the action that failed the output; ``None`` for an evaluation failure.
        """
        if event.get("event") != "message.publish":
            return
        action = self._actions.get(self.action_id)
        if action is None:
            self.count_failure(metrics, rule_id, event,
                               f"the action {self.action_id} is not running")
            return
        if getattr(action, "loop_guard", False) and LOOP_MARKER in (
                (event.get("pub_props") or {}).get("User-Property") or ()):
            # a dead letter republished by mqferry that failed again: sending it once more
            # through the same kind of action could loop for ever
            self.count_failure(metrics, rule_id, event,
                               "it was republished by mqferry: not sent again")
            return
        output = dead_letter_output(event, reason=reason, error=error, rule_id=rule_id,
                                    action_id=action_id, node=self._node)
        if ticket is not None:
            ticket.hold()
        delivery = _DeadLetterDelivery(self, ticket, metrics, rule_id, event)
        try:
            action.submit(output, delivery)
        except Exception as exc:  # a broken action fails this dead letter only
            action.metrics.inc("failed")
            action.metrics.inc("failed.exception")
            delivery.fail(f"{self.action_id} raised {exc!r}")

    def count_failure(self, metrics: Metrics, rule_id: str, event: Mapping[str, Any],
                      why: str) -> None:
        """Count a dead letter that could not be sent or secured (``dead_letter.failed``) and
        log ``why`` (rate-limited)."""
        metrics.inc("dead_letter.failed")
        self.limiter.warning(("dead_letter", rule_id),
                             "rule %s: a message on %r could not be dead-lettered: %s",
                             rule_id, event.get("topic"), why)


class _DeadLetterDelivery:
    """The delivery of one dead letter: counts its outcome on the rule, releases the message."""

    __slots__ = ("_event", "_metrics", "_owner", "_rule_id", "_settled", "_ticket")

    def __init__(self, owner: DeadLetters, ticket: Ticket | None, metrics: Metrics,
                 rule_id: str, event: Mapping[str, Any]) -> None:
        self._owner = owner
        self._ticket = ticket
        self._metrics = metrics
        self._rule_id = rule_id
        self._event = event
        self._settled = False

    def secured(self) -> None:
        if not self._settled:
            self._settled = True
            self._metrics.inc("dead_letter.success")
            self._release()

    def failed(self, reason: str) -> None:
        self.fail(f"{self._owner.action_id} failed it ({reason})")

    def fail(self, why: str) -> None:
        """Count the dead letter as failed, log why, release the message."""
        if not self._settled:
            self._settled = True
            self._owner.count_failure(self._metrics, self._rule_id, self._event, why)
            self._release()

    def _release(self) -> None:
        ticket, self._ticket = self._ticket, None
        if ticket is not None:
            ticket.release()
