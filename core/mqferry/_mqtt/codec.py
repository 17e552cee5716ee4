"""MQTT 5 packets as bytes: the encoders and decoders :mod:`mqferry._mqtt.protocol` uses.

The data path (PUBLISH at QoS 0/1 with no properties or only the subscription identifier that
routes it, PUBACK) is encoded and decoded here by hand: it is a few slices per message.
Properties, rarer and richer, go through paho's public
:class:`~paho.mqtt.properties.Properties` (``pack``/``unpack``), and reason codes get their names
from paho's :class:`~paho.mqtt.reasoncodes.ReasonCode`; paho's client is not involved.
"""

from __future__ import annotations

import struct
from collections.abc import Iterable
from typing import Any, Final, Protocol

from paho.mqtt.exception import MalformedPacket, MQTTException
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode

__all__ = [
    "CONNACK",
    "DISCONNECT",
    "MAX_PACKET",
    "MAX_REMAINING",
    "MAX_SUBSCRIPTION_ID",
    "PINGREQ",
    "PINGRESP",
    "PUBACK",
    "PUBCOMP",
    "PUBLISH",
    "PUBREC",
    "PUBREL",
    "RETIRED",
    "SUBACK",
    "SUBSCRIPTION_ID",
    "UNSUBACK",
    "InMessage",
    "Incoming",
    "PacketError",
    "ack_packets",
    "decode_publish",
    "frame_at",
    "mqtt_string",
    "packet",
    "payload_bytes",
    "puback_packets",
    "publish_packet",
    "reason_name",
    "remaining_length",
    "unpack_properties",
]

CONNACK, PUBLISH, PUBACK, PUBREC, PUBREL, PUBCOMP = 0x20, 0x30, 0x40, 0x50, 0x60, 0x70
SUBACK, UNSUBACK, PINGRESP, DISCONNECT = 0x90, 0xB0, 0xD0, 0xE0
PINGREQ = b"\xc0\x00"
#: The largest remaining length MQTT can encode.
MAX_REMAINING = 268_435_455
#: The largest packet MQTT can encode: its fixed header, and the largest remaining length.
MAX_PACKET = MAX_REMAINING + 5
#: The largest subscription identifier (a variable byte integer of at most four bytes).
MAX_SUBSCRIPTION_ID: Final = 268_435_455
#: The first of a copy's :attr:`InMessage.routes` when it was sent for a subscription that is
#: not subscribed now (retired, or held from an earlier connection); then come its filter and
#: the filters subscribed before it that match the topic
#: (:meth:`mqferry._mqtt.subscriptions.SubscriptionIds.retired_routes`). No filter is empty.
RETIRED: Final = ""
#: The property identifier of the Subscription Identifier (Final: compiled as a constant, not a
#: lookup in the module's globals once per message).
SUBSCRIPTION_ID: Final = 0x0B

_PROPERTY_ERRORS = (MQTTException, MalformedPacket, KeyError, IndexError, UnicodeDecodeError,
                    struct.error)


class PacketError(ValueError):
    """A packet from the broker that cannot be decoded."""


class InMessage:
    """An incoming PUBLISH (the fields rules and acks use).

    ``raw_topic`` holds the topic's bytes only when they are not valid UTF-8 (a malformed packet;
    ``topic`` then has replacement characters); it is empty otherwise. ``malformed`` says why the
    message cannot be handled (its topic is not UTF-8, its properties cannot be decoded), and is
    empty for a good one: the packet's bounds were known, so the message fails alone (it is
    acknowledged and dropped) and the connection goes on.

    ``sub_ids`` are the identifiers of the subscriptions the broker sent this copy for (MQTT 5
    sends them when the subscription had one); they are not in ``properties``, which hold what
    the publisher sent. ``routes`` are the topic filters of those subscriptions, which the
    session fills in when it knows them all (empty otherwise: the message then goes to every
    rule its topic matches); for a copy of a retired subscription they start with
    :data:`RETIRED`.
    """

    __slots__ = ("dup", "malformed", "mid", "payload", "properties", "qos", "raw_topic",
                 "retain", "routes", "sub_ids", "topic")

    def __init__(self, topic: str, payload: bytes, qos: int, retain: bool, dup: bool,  # noqa: PLR0917
                 mid: int, properties: Properties | None, raw_topic: bytes = b"",
                 malformed: str = "", sub_ids: tuple[int, ...] = ()) -> None:
        self.topic = topic
        self.payload = payload
        self.qos = qos
        self.retain = retain
        self.dup = dup
        self.mid = mid
        self.properties = properties
        self.raw_topic = raw_topic
        self.malformed = malformed or ("its topic is not valid UTF-8" if raw_topic else "")
        self.sub_ids = sub_ids
        self.routes: tuple[str, ...] = ()


class Incoming(Protocol):
    """An incoming message as handlers read it: an :class:`InMessage`, or a test twin's."""

    @property
    def topic(self) -> str: ...
    @property
    def payload(self) -> bytes | bytearray: ...
    @property
    def qos(self) -> int: ...
    @property
    def retain(self) -> bool | int: ...
    @property
    def dup(self) -> bool | int: ...
    @property
    def mid(self) -> int: ...
    @property
    def properties(self) -> Any: ...  # paho's Properties, or None
    @property
    def routes(self) -> tuple[str, ...]: ...  # see InMessage


def reason_name(kind: int, code: int) -> str:
    """The spec's name of a reason code in a packet of ``kind`` (:data:`CONNACK`, ...):
    ``"Not authorized"``, or its number if unknown."""
    try:
        return str(ReasonCode(kind >> 4, identifier=code))
    except (KeyError, ValueError, MQTTException):
        return f"reason code {code}"


def frame_at(buf: bytes, pos: int, end: int) -> tuple[int, int] | None:
    """Where the body of the packet that starts at ``buf[pos]`` lies: ``(start, stop)``.

    The one framing of MQTT packets (fixed header, then a remaining length of 1-4 bytes, 7 bits
    each), shared by the connection's reader and the bench's load generator. ``end`` is where the
    data read so far ends.

    Returns:
        The body's bounds in ``buf``, or ``None`` when the packet is not complete before ``end``
        (keep ``buf[pos:end]`` for the next read).

    Raises:
        PacketError: a remaining length over 4 bytes.
    """
    length, mult, i = 0, 1, pos + 1
    while i < end:
        byte = buf[i]
        length += (byte & 127) * mult
        mult *= 128
        i += 1
        if not byte & 128:
            break
        if i - pos > 4:
            raise PacketError("a remaining length over 4 bytes")
    else:
        return None  # the length is not complete yet
    stop = i + length
    return None if stop > end else (i, stop)


def remaining_length(n: int) -> bytes:
    """The encoding of a packet's remaining length ``n`` (1-4 bytes)."""
    if n < 128:
        return bytes((n,))
    out = bytearray()
    while True:
        n, byte = divmod(n, 128)
        out.append(byte | (128 if n else 0))
        if not n:
            return bytes(out)


def packet(first: int, body: bytes) -> bytes:
    """A packet: its first byte, its remaining length, ``body``."""
    return bytes((first,)) + remaining_length(len(body)) + body


def mqtt_string(text: str) -> bytes:
    """A UTF-8 string as MQTT frames it: its length in two bytes, then the bytes."""
    raw = text.encode("utf-8")
    if len(raw) > 65535:
        raise ValueError(f"MQTT string longer than 65535 bytes ({len(raw)})")
    return len(raw).to_bytes(2, "big") + raw


def unpack_properties(packet_type: int, data: bytes) -> tuple[Properties, int]:
    """The properties at the start of ``data`` and how many bytes they took.

    Raises:
        PacketError: they cannot be decoded.
    """
    try:
        props, used = Properties(packet_type).unpack(data)  # type: ignore[no-untyped-call]
    except _PROPERTY_ERRORS as exc:
        raise PacketError(f"invalid properties: {exc}") from None
    return props, int(used)


def decode_publish(command: int, buf: bytes, start: int = 0, stop: int | None = None
                   ) -> InMessage:
    """Decode the variable header and payload of an MQTT 5 PUBLISH packet.

    The packet's body is ``buf[start:stop]`` (all of ``buf`` by default): the reader decodes it
    where it lies in what it read, copying only the topic and the payload out.

    A packet whose topic is not UTF-8 or whose properties cannot be decoded is decoded as far
    as it can be, with the reason in :attr:`InMessage.malformed`.

    Raises:
        PacketError: the packet is shorter than its fixed fields say (its packet identifier,
            which acknowledges it, cannot be read).
    """
    qos = (command >> 1) & 3
    end = len(buf) if stop is None else stop
    if end - start < 2:
        raise PacketError("PUBLISH shorter than its topic length")
    pos = start + 2 + ((buf[start] << 8) | buf[start + 1])
    if pos > end:
        raise PacketError("PUBLISH topic longer than the packet")
    raw_topic = buf[start + 2:pos]
    mid = 0
    if qos:
        if pos + 2 > end:
            raise PacketError("PUBLISH without its packet identifier")
        mid = (buf[pos] << 8) | buf[pos + 1]
        pos += 2
    if pos >= end:
        raise PacketError("PUBLISH without its properties length")
    props = None
    sub_ids: tuple[int, ...] = ()
    size = buf[pos]
    if size == 0:  # no properties: the common case
        pos += 1
    elif size < 6 and (ident := _only_subscription_id(buf, pos + 1, pos + 1 + size, end)):
        # Only the subscription identifier (one to four bytes), without paho's decoder.
        sub_ids = (ident,)
        pos += 1 + size
    else:
        try:
            props, used = unpack_properties(PacketTypes.PUBLISH, buf[pos:end])
        except PacketError as exc:
            return InMessage(raw_topic.decode("utf-8", "replace"), b"", qos, bool(command & 1),
                             bool(command & 8), mid, None, b"", str(exc))
        pos += used
        if pos > end:
            return InMessage(raw_topic.decode("utf-8", "replace"), b"", qos, bool(command & 1),
                             bool(command & 8), mid, None, b"",
                             "its properties are longer than the packet")
        if hasattr(props, "SubscriptionIdentifier"):
            sub_ids = tuple(props.SubscriptionIdentifier)
            delattr(props, "SubscriptionIdentifier")
    try:
        topic = raw_topic.decode("utf-8")
        raw_topic = b""
    except UnicodeDecodeError:
        topic = raw_topic.decode("utf-8", "replace")
    # positional: keyword arguments cost more, once per message
    return InMessage(topic, buf[pos:end], qos, bool(command & 1), bool(command & 8), mid, props,
                     raw_topic, "", sub_ids)


def _only_subscription_id(buf: bytes, pos: int, stop: int, end: int) -> int:
    """The identifier when ``buf[pos:stop]`` holds a Subscription Identifier and nothing else,
    else 0 (no identifier is 0)."""
    if stop > end or stop - pos < 2 or buf[pos] != SUBSCRIPTION_ID:
        return 0
    value, shift, pos = 0, 0, pos + 1
    while pos < stop:
        byte = buf[pos]
        value |= (byte & 0x7F) << shift
        shift += 7
        pos += 1
        if not byte & 0x80:
            return value if pos == stop else 0
    return 0


def payload_bytes(payload: bytes | bytearray | memoryview) -> bytes:
    """A payload to publish as ``bytes``.

    Raises:
        TypeError: it is not bytes-like (``bytes(an int)`` would allocate that many bytes).
    """
    if type(payload) is bytes:
        return payload
    if isinstance(payload, bytearray | memoryview):
        return bytes(payload)
    raise TypeError(f"an MQTT payload is bytes, not {type(payload).__name__}")


def publish_packet(topic: str, payload: bytes, qos: int, retain: bool, *, mid: int,
                   properties: Properties | None, dup: bool = False) -> bytes:
    """Encode an MQTT 5 PUBLISH.

    Raises:
        ValueError: the topic or a property is not encodable, or the packet is larger than MQTT
            allows.
    """
    raw = topic.encode("utf-8")
    if len(raw) > 65535:
        raise ValueError(f"MQTT topic longer than 65535 bytes ({len(raw)})")
    parts = [len(raw).to_bytes(2, "big"), raw]
    if qos:
        parts.append(mid.to_bytes(2, "big"))
    if properties is None:
        parts.append(b"\x00")
    else:
        try:
            parts.append(properties.pack())  # type: ignore[no-untyped-call]
        except (*_PROPERTY_ERRORS, TypeError, ValueError, OverflowError) as exc:
            # a value out of its property's range (an expiry of 2**33 s), or of the wrong type
            raise ValueError(f"MQTT 5 publish properties cannot be encoded: {exc!r}") from None
    parts.append(payload)
    body = b"".join(parts)
    if len(body) > MAX_REMAINING:
        raise ValueError(f"MQTT packet too large ({len(body)} bytes)")
    return packet(PUBLISH | qos << 1 | (8 if dup else 0) | (1 if retain else 0), body)


def puback_packets(mids: Iterable[int]) -> bytes:
    """PUBACK packets (reason "success", the short form) for ``mids``, back to back."""
    return b"".join(b"\x40\x02" + mid.to_bytes(2, "big") for mid in mids)


def ack_packets(acks: Iterable[tuple[int, int]]) -> bytes:
    """The acks for a run of ``(mid, qos)``: PUBACK for QoS 1, PUBREC for QoS 2, back to back."""
    # Each short-form ack is 4 bytes: type, length 2, packet id; packed as one big-endian
    # 32-bit word each, in one call.
    words = [(0x40020000 if qos == 1 else 0x50020000) | mid for mid, qos in acks if qos]
    return struct.pack(">%dI" % len(words), *words)  # noqa: UP031
