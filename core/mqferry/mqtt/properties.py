"""MQTT 5 publish properties from a mapping of their spec names."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

__all__ = ["publish_properties"]

_PROPERTY_NAMES = {
    "Payload-Format-Indicator": "PayloadFormatIndicator",
    "Message-Expiry-Interval": "MessageExpiryInterval",
    "Content-Type": "ContentType",
    "Response-Topic": "ResponseTopic",
    "Correlation-Data": "CorrelationData",
    "Topic-Alias": "TopicAlias",
}


def publish_properties(props: Mapping[str, Any] | None) -> Properties | None:
    """paho publish properties (the encoder :mod:`mqferry.mqtt.codec` packs) from a mapping.

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
        elif name in _PROPERTY_NAMES:
            if name == "Correlation-Data" and isinstance(value, str):
                setattr(out, _PROPERTY_NAMES[name], value.encode())
            else:
                setattr(out, _PROPERTY_NAMES[name], value)
        else:
            raise ValueError(f"unknown MQTT 5 publish property {name!r}")
    return out
