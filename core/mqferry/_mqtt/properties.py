"""MQTT 5 publish properties from a mapping of their spec names."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from paho.mqtt.exception import MQTTException
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from mqferry._mqtt.strings import MAX_STRING, string_problem, topic_problem

__all__ = ["PUBLISH_PROPERTIES", "RECEIVED_PROPERTIES", "publish_properties"]

#: The MQTT 5 PUBLISH properties by their spec names (as rules and templates spell them), each
#: with paho's attribute name; ``User-Property`` is handled on its own (a list of pairs).
PUBLISH_PROPERTIES: dict[str, str] = {
    "Payload-Format-Indicator": "PayloadFormatIndicator",
    "Message-Expiry-Interval": "MessageExpiryInterval",
    "Content-Type": "ContentType",
    "Response-Topic": "ResponseTopic",
    "Correlation-Data": "CorrelationData",
    "Subscription-Identifier": "SubscriptionIdentifier",
    "Topic-Alias": "TopicAlias",
}
#: Only a broker sets a subscription identifier; a publisher may not.
_SENT = {k: v for k, v in PUBLISH_PROPERTIES.items() if k != "Subscription-Identifier"}
#: What a received message shows in its ``pub_props``: the topic alias is resolved by then.
RECEIVED_PROPERTIES: tuple[tuple[str, str], ...] = tuple(
    (attr, name) for name, attr in PUBLISH_PROPERTIES.items() if name != "Topic-Alias")


def publish_properties(props: Mapping[str, Any] | None) -> Properties | None:
    """paho publish properties (the encoder :mod:`mqferry._mqtt.codec` packs) from a mapping.

    ``User-Property`` may be a mapping or a list of ``(key, value)`` pairs.

    The strings (user properties, ``Content-Type``, ``Response-Topic``) must be MQTT strings a
    broker accepts (:func:`~mqferry._mqtt.strings.string_problem`), the response topic without
    wildcards, and ``Correlation-Data`` (binary) at most 65535 bytes: a broker ends the session
    of a client that sends anything else.

    Raises:
        ValueError: an unknown property name, or a value a broker would refuse.
    """
    if not props:
        return None
    out = Properties(PacketTypes.PUBLISH)  # type: ignore[no-untyped-call]
    for name, value in props.items():
        if name == "User-Property":
            pairs = value.items() if isinstance(value, Mapping) else value
            user = [(str(k), str(v)) for k, v in pairs]
            for k, v in user:
                _check(f"user property name {k!r}", k)
                _check(f"value {v!r} of user property {k!r}", v)
            out.UserProperty = user
        elif name in _SENT:
            try:
                setattr(out, _SENT[name], _checked(name, value))
            except MQTTException as exc:  # out of its range (a topic alias of 0)
                raise ValueError(f"invalid MQTT 5 property {name}: {exc}") from None
        else:
            raise ValueError(f"unknown MQTT 5 publish property {name!r}")
    return out


def _checked(name: str, value: Any) -> Any:
    """``value`` of property ``name`` as it is sent.

    Raises:
        ValueError: a broker would refuse it.
    """
    if name == "Correlation-Data":
        raw = value.encode() if isinstance(value, str) else value
        if isinstance(raw, bytes | bytearray) and len(raw) > MAX_STRING:
            raise ValueError(f"invalid MQTT 5 property Correlation-Data: it is longer than "
                             f"{MAX_STRING} bytes ({len(raw)})")
        return raw
    if name == "Response-Topic" and isinstance(value, str):
        why = topic_problem(value)
        if why is not None:
            raise ValueError(f"invalid MQTT 5 property Response-Topic {value!r}: {why}")
    elif name == "Content-Type" and isinstance(value, str):
        _check(f"Content-Type {value!r}", value)
    return value


def _check(what: str, text: str) -> None:
    why = string_problem(text)
    if why is not None:
        raise ValueError(f"invalid MQTT 5 {what}: {why}")
