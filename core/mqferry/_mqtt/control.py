"""The packets that open, subscribe and close an MQTT 5 session (CONNECT and CONNACK, SUBSCRIBE,
UNSUBSCRIBE and their acks, DISCONNECT), encoded and decoded by hand as in
:mod:`mqferry._mqtt.codec`, which keeps the packets of the data path."""

from __future__ import annotations

from collections.abc import Sequence

from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from mqferry._mqtt.codec import (
    MAX_SUBSCRIPTION_ID,
    SUBSCRIPTION_ID,
    PacketError,
    mqtt_string,
    packet,
    remaining_length,
    unpack_properties,
)

__all__ = ["Connack", "connect_packet", "decode_connack", "disconnect_packet", "suback_codes",
           "subscribe_packet", "unsubscribe_packet"]


def disconnect_packet(*, end_session: bool = False) -> bytes:
    """DISCONNECT, reason "normal"; with ``end_session`` it also sets the session expiry to 0,
    so the broker drops the session (and stops queueing for it) at once."""
    if not end_session:
        return b"\xe0\x00"
    # reason 0, properties: 5 bytes, Session Expiry Interval (0x11) = 0
    return b"\xe0\x07\x00\x05\x11\x00\x00\x00\x00"


def connect_packet(client_id: str, *, keepalive: int, clean_start: bool,
                   session_expiry: int, receive_maximum: int, username: str | None = None,
                   password: str | None = None) -> bytes:
    """Encode an MQTT 5 CONNECT.

    Raises:
        ValueError: a string is too long for MQTT.
    """
    flags = (0x02 if clean_start else 0) | (0x80 if username is not None else 0) | (
        0x40 if password is not None else 0)
    props = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
    if session_expiry:
        props.SessionExpiryInterval = session_expiry
    props.ReceiveMaximum = receive_maximum
    parts = [b"\x00\x04MQTT\x05", bytes((flags,)), keepalive.to_bytes(2, "big"),
             props.pack(), mqtt_string(client_id)]  # type: ignore[no-untyped-call]
    if username is not None:
        parts.append(mqtt_string(username))
    if password is not None:
        parts.append(mqtt_string(password))  # binary data, same framing as a string
    return packet(0x10, b"".join(parts))


class Connack:
    """A decoded CONNACK: ``reason`` (0 is success), ``session_present`` and the properties."""

    __slots__ = ("properties", "reason", "session_present")

    def __init__(self, reason: int, session_present: bool, properties: Properties) -> None:
        self.reason = reason
        self.session_present = session_present
        self.properties = properties

    def get(self, name: str, default: int) -> int:
        """An integer property by paho's name (``"ServerKeepAlive"``), or ``default``."""
        return int(getattr(self.properties, name, default))


def decode_connack(body: bytes) -> Connack:
    """Decode a CONNACK's variable header.

    Raises:
        PacketError: the packet is malformed.
    """
    if len(body) < 2:
        raise PacketError("CONNACK shorter than 2 bytes")
    props: Properties
    if len(body) > 2:
        props, _ = unpack_properties(PacketTypes.CONNACK, body[2:])
    else:
        props = Properties(PacketTypes.CONNACK)  # type: ignore[no-untyped-call]
    return Connack(body[1], bool(body[0] & 1), props)


def subscribe_packet(mid: int, topics: Sequence[tuple[str, int]], sub_id: int = 0) -> bytes:
    """Encode a SUBSCRIBE of ``(filter, qos)`` pairs (default options otherwise), with the
    subscription identifier ``sub_id`` unless it is 0.

    Raises:
        ValueError: no filter, a filter too long for MQTT, or an identifier out of range.
    """
    if not topics:
        raise ValueError("SUBSCRIBE without a topic filter")
    if not 0 <= sub_id <= MAX_SUBSCRIPTION_ID:
        raise ValueError(f"subscription identifier {sub_id} out of range")
    props = b"\x00"
    if sub_id:
        ident = remaining_length(sub_id)
        props = bytes((len(ident) + 1, SUBSCRIPTION_ID)) + ident
    body = mid.to_bytes(2, "big") + props + b"".join(
        mqtt_string(t) + bytes((q,)) for t, q in topics)
    return packet(0x82, body)


def unsubscribe_packet(mid: int, topics: Sequence[str]) -> bytes:
    """Encode an UNSUBSCRIBE.

    Raises:
        ValueError: no filter, or a filter too long for MQTT.
    """
    if not topics:
        raise ValueError("UNSUBSCRIBE without a topic filter")
    return packet(0xA2, mid.to_bytes(2, "big") + b"\x00"
                   + b"".join(mqtt_string(t) for t in topics))


def suback_codes(body: bytes) -> tuple[int, list[int]]:
    """The packet id and reason codes of a SUBACK or UNSUBACK.

    Raises:
        PacketError: the packet is malformed.
    """
    if len(body) < 3:
        raise PacketError("SUBACK shorter than 3 bytes")
    mid = (body[0] << 8) | body[1]
    if body[2] == 0:  # no properties, as brokers answer: decoding none cost 10 us per packet
        return mid, list(body[3:])
    _, used = unpack_properties(PacketTypes.SUBACK, body[2:])
    return mid, list(body[2 + used:])
