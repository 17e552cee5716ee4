"""EMQX's broker events (``$events/client/connected`` ...) for the rule tester.

EMQX raises these events inside the broker: a client connects, a session subscribes, a message
is delivered, acknowledged or dropped. mqferry is an MQTT client beside the broker and sees only
the messages published to the topics it subscribes to, so a rule ``FROM`` one of these topics
is accepted (a pasted EMQX rule loads) but never fires at runtime; the runtime says so in a
warning when it installs such a rule. The tester (``mqferry rule test``, ``POST /rule_test``)
runs such rules on a sample event with EMQX's columns, as EMQX's SQL tester does.

Each event has a topic (``$events/client/connected``), the older spelling EMQX still accepts
(``$events/client_connected``), a name (``client.connected``, the ``event`` column) and an event
type (``client_connected``, the tester context's ``event_type``). The sample columns follow
``columns_with_exam`` in EMQX's ``emqx_rule_events.erl``.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from typing import Any

__all__ = ["EVENTS", "event_by_name", "event_by_topic", "event_by_type", "is_broker_event",
           "resolve", "sample_columns"]

#: Event name -> (topic, older topic or None). ``message.publish`` has no event topic: its rules
#: select MQTT topic filters.
EVENTS: dict[str, tuple[str, str | None]] = {
    "client.connected": ("$events/client/connected", "$events/client_connected"),
    "client.disconnected": ("$events/client/disconnected", "$events/client_disconnected"),
    "client.connack": ("$events/client/connack", "$events/client_connack"),
    "client.ping": ("$events/client/ping", None),
    "client.check_authz_complete": ("$events/auth/check_authz_complete",
                                    "$events/client_check_authz_complete"),
    "client.check_authn_complete": ("$events/auth/check_authn_complete",
                                    "$events/client_check_authn_complete"),
    "session.subscribed": ("$events/session/subscribed", "$events/session_subscribed"),
    "session.unsubscribed": ("$events/session/unsubscribed", "$events/session_unsubscribed"),
    "message.delivered": ("$events/message/delivered", "$events/message_delivered"),
    "message.acked": ("$events/message/acked", "$events/message_acked"),
    "message.dropped": ("$events/message/dropped", "$events/message_dropped"),
    "delivery.dropped": ("$events/message/delivery_dropped", "$events/delivery_dropped"),
    "message.transformation_failed": ("$events/message_transformation/failed",
                                      "$events/message_transformation_failed"),
    "schema.validation_failed": ("$events/schema_validation/failed",
                                 "$events/schema_validation_failed"),
    "alarm.activated": ("$events/sys/alarm_activated", None),
    "alarm.deactivated": ("$events/sys/alarm_deactivated", None),
}

_BY_TOPIC = {topic: name for name, pair in EVENTS.items() for topic in pair if topic}


def is_broker_event(topic: str) -> bool:
    """Whether a FROM entry is one of EMQX's broker event topics (either spelling)."""
    return topic in _BY_TOPIC


def event_by_topic(topic: str) -> str | None:
    """The event name of an event topic in either spelling, or None."""
    return _BY_TOPIC.get(topic)


def event_by_name(name: str) -> tuple[str, ...]:
    """Both topics of an event name (``client.connected``); empty when it is not one."""
    pair = EVENTS.get(name)
    return () if pair is None else tuple(t for t in pair if t)


def event_by_type(event_type: str) -> str | None:
    """The event name of a tester ``event_type`` (``client_connected`` -> ``client.connected``)."""
    for name in EVENTS:
        if name.replace(".", "_") == event_type:
            return name
    return None


def resolve(text: str) -> str | None:
    """The event name of a name, an event type or a topic of a broker event, or None."""
    if text in EVENTS:
        return text
    return event_by_topic(text) or event_by_type(text)


def _user_props(specific: dict[str, Any]) -> dict[str, Any]:
    return {**specific, "User-Property": {"foo": "bar"},
            "User-Property-Pairs": [{"key": "foo"}, {"value": "bar"}]}


_PUB_PROPS = {"Payload-Format-Indicator": 0, "Message-Expiry-Interval": 30}
_CONN_PROPS = {"Session-Expiry-Interval": 7200, "Receive-Maximum": 32}
_DISCONN_PROPS = {"Session-Expiry-Interval": 7200, "Reason-String": "Redirect to another server",
                  "Server Reference": "192.168.22.129"}


def _message(now: int, **extra: Any) -> dict[str, Any]:
    """The columns every message event shares (published, delivered, dropped ...)."""
    return {"id": uuid.uuid4().hex.upper(), "clientid": "c_emqx", "username": "u_emqx",
            "payload": '{"msg": "hello"}', "peerhost": "192.168.0.10",
            "peername": "192.168.0.10:32781", "topic": "t/a", "qos": 1, "flags": {},
            "publish_received_at": now, "pub_props": _user_props(_PUB_PROPS), **extra}


def _delivered(now: int) -> dict[str, Any]:
    return _message(now, from_clientid="c_emqx_1", from_username="u_emqx_1",
                    clientid="c_emqx_2", username="u_emqx_2")


def _connection(now: int, **extra: Any) -> dict[str, Any]:
    return {"clientid": "c_emqx", "username": "u_emqx", "peername": "192.168.0.10:56431",
            "sockname": "0.0.0.0:1883", "proto_name": "MQTT", "proto_ver": 5, "keepalive": 60,
            "clean_start": True, "expiry_interval": 3600, "connected_at": now,
            "conn_props": _user_props(_CONN_PROPS), **extra}


def _subscription(kind: str) -> dict[str, Any]:
    return {"clientid": "c_emqx", "username": "u_emqx", "peerhost": "192.168.0.10",
            "peername": "192.168.0.10:32781", "topic": "t/a", "qos": 1,
            kind: _user_props({}), "client_attrs": {"test": "example"}}


_ATTRS = {"client_attrs": {"test": "example"}}

_SAMPLES: dict[str, Callable[[int], dict[str, Any]]] = {
    "client.connected": lambda now: _connection(now, mountpoint=None, is_bridge=False, **_ATTRS),
    "client.disconnected": lambda now: {
        **{k: v for k, v in _connection(now).items()
           if k not in ("keepalive", "clean_start", "expiry_interval", "conn_props")},
        "reason": "normal", "disconn_props": _user_props(_DISCONN_PROPS),
        "disconnected_at": now, **_ATTRS},
    "client.connack": lambda now: _connection(now, reason_code="success"),
    "client.ping": _connection,
    "client.check_authz_complete": lambda now: {
        "clientid": "c_emqx", "username": "u_emqx", "peerhost": "192.168.0.10",
        "peername": "192.168.0.10:32781", "topic": "t/a", "action": "publish",
        "authz_source": "cache", "result": "allow", **_ATTRS},
    "client.check_authn_complete": lambda now: {
        "clientid": "c_emqx", "username": "u_emqx", "peername": "192.168.0.10:56431",
        "reason_code": "success", "is_superuser": True, "is_anonymous": False, **_ATTRS},
    "session.subscribed": lambda now: _subscription("sub_props"),
    "session.unsubscribed": lambda now: _subscription("unsub_props"),
    "message.delivered": _delivered,
    "message.acked": lambda now: {**_delivered(now),
                                  "puback_props": _user_props({"Reason-String": "OK"})},
    "message.dropped": lambda now: _message(now, reason="no_subscribers"),
    "delivery.dropped": lambda now: {**_delivered(now), "reason": "queue_full"},
    "message.transformation_failed": lambda now: _message(now, transformation="my_transformation"),
    "schema.validation_failed": lambda now: _message(now, validation="my_validation"),
    "alarm.activated": lambda now: {
        "name": "alarm_name", "details": {"extra": "details"}, "message": "something is wrong",
        "activated_at": 1736512728666},
    "alarm.deactivated": lambda now: {
        "name": "alarm_name", "details": {"extra": "details"}, "message": "something is wrong",
        "activated_at": 1736512728666, "deactivated_at": 1736512728999},
}


def sample_columns(name: str, node: str) -> dict[str, Any]:
    """EMQX's example columns of the event ``name``, with ``event``, ``timestamp`` and ``node``.

    Raises:
        KeyError: ``name`` is not a broker event.
    """
    now = int(time.time() * 1000)
    return {"event": name, **_SAMPLES[name](now), "timestamp": now, "node": node}
