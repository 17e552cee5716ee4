"""Fewer system calls and less work per packet for paho.

paho reads a packet with several small ``recv`` calls (the command byte, each length byte, then
the body), handles one packet per readiness event of the event loop, and builds a ``Properties``
object, an ``MQTTMessage`` and a debug log record for every PUBLISH; it writes each packet (every
4-byte PUBACK) with its own ``send``. Under load that is several system calls, one event-loop turn
and a few dozen microseconds per message.

:func:`read_packets` makes paho read 64 KiB at a time and frames the packets itself. QoS 0 and
QoS 1 PUBLISH packets, the data path, are decoded here into a light :class:`InMessage` and handed
to a callback; every other packet (CONNACK, SUBACK, PUBACK, PINGRESP, DISCONNECT, QoS 2 flows) is
handed to paho's own packet handler unchanged. :func:`coalesce_writes` joins the queued packets
that need no bookkeeping after they are written into one ``send``, and :func:`puback_packets`
encodes a run of PUBACKs as one queued packet.
"""

from __future__ import annotations

import logging
import ssl
import struct
from collections.abc import Callable, Iterable
from typing import Any

import paho.mqtt.client as paho
from paho.mqtt.client import time_func
from paho.mqtt.enums import MQTTErrorCode
from paho.mqtt.exception import MalformedPacket, MQTTException
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

log = logging.getLogger(__name__)

CHUNK = 64 * 1024
#: Packets that paho handles after writing them (QoS 0 publishes are reported as published,
#: DISCONNECT closes the socket) are written on their own.
_PUBLISH, _DISCONNECT = 0x30, 0xE0
_PUBACK = 0x40
_SUCCESS = MQTTErrorCode.MQTT_ERR_SUCCESS


class InMessage:
    """An incoming PUBLISH decoded by :func:`read_packets` (the fields rules and acks use).

    ``raw_topic`` holds the topic's bytes only when they are not valid UTF-8 (a malformed packet;
    ``topic`` then has replacement characters); it is empty otherwise.
    """

    __slots__ = ("dup", "mid", "payload", "properties", "qos", "raw_topic", "retain", "topic")

    def __init__(self, topic: str, payload: bytes, *, qos: int, retain: bool, dup: bool,
                 mid: int, properties: Properties | None, raw_topic: bytes = b"") -> None:
        self.topic = topic
        self.payload = payload
        self.qos = qos
        self.retain = retain
        self.dup = dup
        self.mid = mid
        self.properties = properties
        self.raw_topic = raw_topic


class PacketError(ValueError):
    """A PUBLISH that cannot be decoded."""


def decode_publish(command: int, body: bytes, mqtt5: bool = True) -> InMessage:
    """Decode the variable header and payload of a PUBLISH packet.

    Raises:
        PacketError: the packet is shorter than its fields say, or its properties are invalid.
    """
    qos = (command >> 1) & 3
    end = len(body)
    if end < 2:
        raise PacketError("PUBLISH shorter than its topic length")
    pos = 2 + ((body[0] << 8) | body[1])
    if pos > end:
        raise PacketError("PUBLISH topic longer than the packet")
    raw_topic = body[2:pos]
    mid = 0
    if qos:
        if pos + 2 > end:
            raise PacketError("PUBLISH without its packet identifier")
        mid = (body[pos] << 8) | body[pos + 1]
        pos += 2
    props = None
    if mqtt5:
        if pos >= end:
            raise PacketError("PUBLISH without its properties length")
        if body[pos] == 0:  # no properties: the common case
            pos += 1
        else:
            try:
                props, used = Properties(PacketTypes.PUBLISH).unpack(body[pos:])  # type: ignore[no-untyped-call]
            except (MQTTException, MalformedPacket, KeyError, IndexError, UnicodeDecodeError,
                    struct.error) as exc:
                raise PacketError(f"PUBLISH with invalid properties: {exc}") from None
            pos += used
            if pos > end:
                raise PacketError("PUBLISH properties longer than the packet")
    try:
        topic = raw_topic.decode("utf-8")
        raw_topic = b""
    except UnicodeDecodeError:
        topic = raw_topic.decode("utf-8", "replace")
    return InMessage(topic, body[pos:], qos=qos, retain=bool(command & 1), dup=bool(command & 8),
                     mid=mid, properties=props, raw_topic=raw_topic)


class _Reader:
    """The buffered reader :func:`read_packets` installs."""

    def __init__(self, client: paho.Client, on_publish: Callable[[InMessage], None] | None,
                 on_puback: Callable[[int, int], bool] | None,
                 after_read: Callable[[], None] | None, chunk: int, *,
                 on_error: Callable[[OSError], None] | None = None) -> None:
        self.client = client
        self.on_publish = on_publish
        self.on_puback = on_puback
        self.after_read = after_read
        self.on_error = on_error
        self.chunk = chunk
        self.mqtt5 = client._protocol == paho.MQTTv5
        self.raw_recv = client._sock_recv
        self.sock: Any = None
        self.rest = b""

    def loop_read(self, max_packets: int = 1) -> MQTTErrorCode:
        client = self.client
        sock = client._sock
        if sock is None:
            return MQTTErrorCode.MQTT_ERR_NO_CONN
        if self.sock is not sock:  # a new connection: nothing buffered belongs to it
            self.sock, self.rest = sock, b""
        tls_read = 0
        while True:
            try:
                data = self.raw_recv(self.chunk)
            except BlockingIOError:
                return _SUCCESS
            except OSError as exc:  # ssl.SSLError too: a TLS alert from the broker
                log.debug("MQTT socket read failed: %s", exc)
                if self.on_error is not None:
                    self.on_error(exc)
                return client._loop_rc_handle(MQTTErrorCode.MQTT_ERR_CONN_LOST)
            if not data:
                return client._loop_rc_handle(MQTTErrorCode.MQTT_ERR_CONN_LOST)
            client._last_bytes_received = time_func()
            rc = self.frames(self.rest + data if self.rest else data)
            if rc != _SUCCESS:
                return client._loop_rc_handle(rc)
            if self.after_read is not None:
                self.after_read()
            # Over TLS a read returns at most one record (16 KiB), and OpenSSL may hold decrypted
            # bytes that raise no readiness event: read on until the socket has nothing (paho
            # turns SSLWantReadError into BlockingIOError), as one plain read of CHUNK would.
            tls_read += len(data)
            current = client._sock  # None when a handler closed the connection
            if not isinstance(current, ssl.SSLSocket) or (
                    tls_read >= self.chunk and not current.pending()):
                return _SUCCESS

    def frames(self, buf: bytes) -> MQTTErrorCode:
        """Handle every complete packet in ``buf``; keep the incomplete tail for later."""
        client = self.client
        pos, end = 0, len(buf)
        self.rest = b""
        while pos < end:
            if client._sock is not self.sock:
                return _SUCCESS  # closed by a handler: the rest belongs to a dead connection
            command = buf[pos]
            length, mult, i = 0, 1, pos + 1
            while i < end and i - pos <= 4:
                byte = buf[i]
                length += (byte & 127) * mult
                mult *= 128
                i += 1
                if not byte & 128:
                    break
            else:
                if i - pos > 4:
                    log.warning("MQTT packet with a remaining length over 4 bytes")
                    return MQTTErrorCode.MQTT_ERR_PROTOCOL
                i = end + 1  # the length is not complete yet
            if i + length > end:
                self.rest = buf[pos:]
                return _SUCCESS
            body = buf[i:i + length]
            pos = i + length
            rc = self.packet(command, body)
            if rc != _SUCCESS:
                return rc
        return _SUCCESS

    def packet(self, command: int, body: bytes) -> MQTTErrorCode:
        """Handle one complete packet."""
        kind = command & 0xF0
        if kind == _PUBLISH and command & 6 < 4 and self.on_publish is not None:
            try:
                message = decode_publish(command, body, self.mqtt5)
            except PacketError as exc:
                log.warning("malformed MQTT PUBLISH from the broker: %s", exc)
                return MQTTErrorCode.MQTT_ERR_PROTOCOL
            self.on_publish(message)
            return _SUCCESS
        if kind == _PUBACK and self.on_puback is not None and len(body) >= 2:
            reason = body[2] if len(body) > 2 else 0
            if self.on_puback((body[0] << 8) | body[1], reason):
                return _SUCCESS
        return self.handle_by_paho(command, body)

    def handle_by_paho(self, command: int, body: bytes) -> MQTTErrorCode:
        client = self.client
        client._in_packet = {"command": command, "have_remaining": 1, "remaining_count": [],
                             "remaining_mult": 1, "remaining_length": len(body),
                             "packet": bytearray(body), "to_process": 0, "pos": 0}
        try:
            rc = client._packet_handle()
        except MalformedPacket as exc:
            log.warning("malformed MQTT packet 0x%02x from the broker: %s", command, exc)
            rc = MQTTErrorCode.MQTT_ERR_PROTOCOL
        client._in_packet = {"command": 0, "have_remaining": 0, "remaining_count": [],
                             "remaining_mult": 1, "remaining_length": 0,
                             "packet": bytearray(b""), "to_process": 0, "pos": 0}
        return rc


def read_packets(client: paho.Client, on_publish: Callable[[InMessage], None] | None,
                 on_puback: Callable[[int, int], bool] | None = None, *,
                 after_read: Callable[[], None] | None = None, chunk: int = CHUNK,
                 on_error: Callable[[OSError], None] | None = None) -> None:
    """Replace ``client.loop_read`` (client not yet connected) with a buffered reader.

    ``on_publish`` receives every QoS 0/1 PUBLISH instead of paho; it must acknowledge QoS 1
    messages itself (see :func:`puback_packets`). ``on_puback(mid, reason_code)`` sees every
    PUBACK first and returns whether it was one of its own publishes (see
    :func:`publish_packet`); the others go to paho. ``None`` leaves those packets to paho.
    ``after_read`` runs after the packets of each read were handled (to send their acks
    together). ``on_error`` receives the error of a failed read (a TLS alert such as "certificate
    required" arrives this way, after the handshake), before the connection is closed.

    Over TLS, paho's ``_sock_recv`` turns ``SSLWantReadError`` into ``BlockingIOError`` (wait for
    the next readiness event) and ``SSLWantWriteError`` into a write registration; decrypted bytes
    that OpenSSL still holds raise no readiness event, so they are read at once.
    """
    reader = _Reader(client, on_publish, on_puback, after_read, chunk, on_error=on_error)
    client.loop_read = reader.loop_read  # type: ignore[method-assign]


#: The largest remaining length MQTT can encode.
MAX_REMAINING = 268_435_455


def _varint(n: int) -> bytes:
    if n < 128:
        return bytes((n,))
    out = bytearray()
    while True:
        n, byte = divmod(n, 128)
        out.append(byte | (128 if n else 0))
        if not n:
            return bytes(out)


def publish_packet(topic: str, payload: bytes, qos: int, retain: bool, *, mid: int,
                   properties: Properties | None, mqtt5: bool = True) -> bytes:
    """Encode a PUBLISH (QoS 0 or 1) to be queued with :func:`queue_packet`.

    Raises:
        ValueError: the topic is not encodable, or the packet is larger than MQTT allows.
    """
    raw = topic.encode("utf-8")
    if len(raw) > 65535:
        raise ValueError(f"MQTT topic longer than 65535 bytes ({len(raw)})")
    parts = [len(raw).to_bytes(2, "big"), raw]
    if qos:
        parts.append(mid.to_bytes(2, "big"))
    if mqtt5:
        parts.append(properties.pack() if properties is not None else b"\x00")  # type: ignore[no-untyped-call]
    parts.append(payload)
    body = b"".join(parts)
    if len(body) > MAX_REMAINING:
        raise ValueError(f"MQTT packet too large ({len(body)} bytes)")
    return bytes((_PUBLISH | qos << 1 | (1 if retain else 0),)) + _varint(len(body)) + body


def queue_packet(client: paho.Client, packet: bytes) -> None:
    """Queue an encoded packet that needs no bookkeeping after it is written."""
    # qos 1 in paho's record: paho reports only QoS 0 publishes after writing them
    client._packet_queue(_PUBLISH, packet, 0, 1)


def puback_packets(mids: Iterable[int]) -> bytes:
    """PUBACK packets (reason "success", the short form) for ``mids``, back to back."""
    return b"".join(b"\x40\x02" + mid.to_bytes(2, "big") for mid in mids)


def _plain(packet: Any) -> bool:
    command = packet["command"] & 0xF0
    return command != _DISCONNECT and not (command == _PUBLISH and packet["qos"] == 0)


def coalesce_writes(client: paho.Client, limit: int = CHUNK) -> None:
    """Make ``client`` write queued packets together, up to ``limit`` bytes per ``send``."""
    raw_packet_write = client._packet_write
    queue = client._out_packet

    def packet_write() -> MQTTErrorCode:
        if len(queue) > 1 and _plain(queue[0]) and queue[0]["pos"] == 0:
            parts = []
            size = 0
            while queue and _plain(queue[0]) and queue[0]["pos"] == 0 and size < limit:
                packet = queue.popleft()
                parts.append(packet["packet"])
                size += len(packet["packet"])
            # A PUBACK needs nothing after it is written; partial writes resume from "pos".
            queue.appendleft({"command": _PUBACK, "mid": 0, "qos": 0, "pos": 0,
                              "to_process": size, "packet": b"".join(parts), "info": None})
        return raw_packet_write()

    client._packet_write = packet_write  # type: ignore[method-assign]
