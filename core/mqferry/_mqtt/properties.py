"""MQTT 5 publish properties from a mapping of their spec names."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

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

    Raises:
        ValueError: an unknown property name.
    """
    if not props:
        return None
    out = Properties(PacketTypes.PUBLISH)  # type: ignore[no-untyped-call]
    for name, value in props.items():
        if name == "User-Property":
            pairs = value.items() if isinstance(value, Mapping) else value
            out.UserProperty = [(str(k), str(v)) for k, v in pairs]
        elif name in _SENT:
            if name == "Correlation-Data" and isinstance(value, str):
                setattr(out, _SENT[name], value.encode())
            else:
                setattr(out, _SENT[name], value)
        else:
            raise ValueError(f"unknown MQTT 5 publish property {name!r}")
    return out
