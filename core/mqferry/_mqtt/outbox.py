"""Our publishes on one MQTT session: checked before they are written, and QoS 1/2 ones kept
within the in-flight window.

The broker takes at most its receive maximum of our QoS 1/2 publishes unacknowledged (its
CONNACK says), and we send no more than our own ``receive_maximum`` either; the rest wait here,
in order, and leave as acks free their slots (:meth:`Outbox.released`).
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Mapping
from typing import Any

from paho.mqtt.properties import Properties

from mqferry._errors import MqttUnavailable
from mqferry._mqtt import codec
from mqferry._mqtt.properties import publish_properties
from mqferry._mqtt.protocol import MqttProtocol, Settled, tell
from mqferry._mqtt.strings import topic_problem

__all__ = ["Outbox", "future_settler"]

#: A publish waiting for room in the in-flight window: topic, payload, qos, retain, properties and
#: what to tell how it ended.
_Outgoing = tuple[str, bytes, int, bool, Properties | None, Settled]


def future_settler(future: asyncio.Future[None]) -> Settled:
    """A :data:`~mqferry._mqtt.protocol.Settled` that completes ``future`` (unless it is done
    already)."""

    def settled(outcome: BaseException | None) -> None:
        if not future.done():
            if outcome is None:
                future.set_result(None)
            else:
                future.set_exception(outcome)
    return settled


class Outbox:
    """The publishes of one session: QoS 1/2 ones in flight are limited, the rest wait in order.

    Args:
        limit: our own limit of QoS 1/2 publishes in flight (the ``mqtt`` section's
            ``receive_maximum``).
        session: the session, as errors name it.
    """

    def __init__(self, limit: int, session: str) -> None:
        self._limit = limit
        self._session = session
        self._free = limit
        self._backlog: deque[_Outgoing] = deque()

    def opened(self, broker_limit: int) -> None:
        """A new connection, whose broker takes ``broker_limit`` publishes in flight."""
        self._free = min(self._limit, broker_limit)

    def publish(self, proto: MqttProtocol, topic: str, payload: bytes | bytearray | memoryview,
                settled: Settled, *, qos: int, retain: bool | int,
                properties: Mapping[str, Any] | None) -> None:
        """Check a publish, then write it on ``proto`` or keep it until a slot is free.

        See :meth:`mqferry._mqtt.client.MqttConnector.publish_with`.

        Raises:
            ValueError: an invalid topic or property (``settled`` is not called).
        """
        why = topic_problem(topic)
        if why is not None:
            raise ValueError(f"invalid MQTT topic to publish to: {topic!r}: {why}")
        props = publish_properties(properties)
        out = (topic, codec.payload_bytes(payload), qos, bool(retain), props, settled)
        if qos > 0:
            if self._free <= 0:
                self._backlog.append(out)
                return
            self._free -= 1
        self._send(proto, out)

    def _send(self, proto: MqttProtocol, out: _Outgoing) -> None:
        topic, payload, qos, retain, props, settled = out
        try:
            proto.publish(topic, payload, qos=qos, retain=retain, properties=props,
                          settled=settled)
        except Exception as exc:  # not encodable (size, topic, a property): this publish only
            # Whatever raised, the slot of the in-flight window goes back: one leaked slot per
            # bad publish would stall every QoS 1/2 publish after receive_maximum of them.
            if qos:
                self._free += 1
            tell(settled, exc)

    def released(self, proto: MqttProtocol | None) -> None:
        """One of our QoS 1/2 publishes completed: the next waiting ones leave on ``proto``."""
        self._free += 1
        backlog = self._backlog
        while backlog and self._free > 0 and proto is not None:
            self._free -= 1
            self._send(proto, backlog.popleft())

    def lost(self, reason: str) -> None:
        """The session is gone: each publish still waiting is told so, with ``reason``."""
        backlog, self._backlog = self._backlog, deque()
        for *_, settled in backlog:
            tell(settled, MqttUnavailable(reason, session=self._session))
        self._free = self._limit
