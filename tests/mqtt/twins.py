"""An in-memory transport for :class:`mqferry._mqtt.protocol.MqttProtocol` (no socket)."""

from __future__ import annotations

import asyncio
import struct

from mqferry._mqtt.protocol import MqttProtocol


class MemoryTransport(asyncio.Transport):
    """Records what the protocol writes; closing it tells the protocol, as the loop would."""

    def __init__(self) -> None:
        super().__init__()
        self.writes: list[bytes] = []
        self.closed = False
        self.aborted = False
        self.reading = True
        self._protocol: MqttProtocol | None = None

    def attach(self, protocol: MqttProtocol) -> MqttProtocol:
        self._protocol = protocol
        protocol.connection_made(self)
        return protocol

    def write(self, data: bytes | bytearray | memoryview) -> None:
        self.writes.append(bytes(data))

    def _lost(self) -> None:
        protocol, self._protocol = self._protocol, None
        if protocol is not None:
            protocol.connection_lost(None)

    def close(self) -> None:
        self.closed = True
        self._lost()

    def abort(self) -> None:
        self.aborted = self.closed = True
        self._lost()

    def is_closing(self) -> bool:
        return self.closed

    def pause_reading(self) -> None:
        self.reading = False

    def resume_reading(self) -> None:
        self.reading = True

    def is_reading(self) -> bool:
        return self.reading

    @property
    def sent(self) -> bytes:
        return b"".join(self.writes)


def connection(received: list | None = None, released: list | None = None
               ) -> tuple[MqttProtocol, MemoryTransport]:
    """A connection on a :class:`MemoryTransport`: what it receives and releases are listed."""
    transport = MemoryTransport()
    proto = MqttProtocol(
        on_publish=(received if received is not None else []).append,
        on_released=lambda: released.append(1) if released is not None else None)
    transport.attach(proto)
    return proto, transport


def varint(n: int) -> bytes:
    out = bytearray()
    while True:
        n, byte = divmod(n, 128)
        out.append(byte | (128 if n else 0))
        if not n:
            return bytes(out)


def publish_packet(topic: str | bytes, payload: bytes, mid: int, *, qos: int = 1,
                   props: bytes = b"\x00", command: int | None = None) -> bytes:
    """An MQTT 5 PUBLISH built independently of the codec under test."""
    raw = topic.encode() if isinstance(topic, str) else topic
    body = struct.pack("!H", len(raw)) + raw
    if qos:
        body += struct.pack("!H", mid)
    body += props + payload
    first = command if command is not None else 0x30 | (qos << 1)
    return bytes([first]) + varint(len(body)) + body


def read_varint(data: bytes, pos: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        byte = data[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        shift += 7
        if not byte & 0x80:
            return value, pos


class Subscribe:
    """A SUBSCRIBE as the broker reads it, parsed independently of the codec under test."""

    def __init__(self, body: bytes) -> None:
        self.mid = struct.unpack("!H", body[:2])[0]
        props_len, pos = read_varint(body, 2)
        props, pos = body[pos:pos + props_len], pos + props_len
        self.sub_id = read_varint(props, 1)[0] if props[:1] == b"\x0b" else 0
        self.filters: list[str] = []
        while pos < len(body):
            (size,) = struct.unpack("!H", body[pos:pos + 2])
            self.filters.append(body[pos + 2:pos + 2 + size].decode())
            pos += 2 + size + 1  # the options byte


class BrokerTransport(MemoryTransport):
    """A transport that answers each SUBSCRIBE (0x80 for a filter in ``refuse``) and each
    UNSUBSCRIBE, in the next turn of the event loop, as a broker would.

    Attributes:
        subscribes: every SUBSCRIBE written, parsed.
        unsubscribes: the packet ids of every UNSUBSCRIBE written.
    """

    def __init__(self, refuse: set[str] | None = None) -> None:
        super().__init__()
        self.refuse = refuse or set()
        self.subscribes: list[Subscribe] = []
        self.unsubscribes: list[int] = []

    def write(self, data: bytes | bytearray | memoryview) -> None:
        super().write(data)
        data, pos, answers = bytes(data), 0, b""
        while pos < len(data):
            command = data[pos]
            size, start = read_varint(data, pos + 1)
            body, pos = data[start:start + size], start + size
            if command == 0x82:
                sub = Subscribe(body)
                self.subscribes.append(sub)
                codes = bytes(0x80 if f in self.refuse else 1 for f in sub.filters)
                answers += bytes([0x90, 3 + len(codes)]) + body[:2] + b"\x00" + codes
            elif command == 0xA2:
                self.unsubscribes.append(struct.unpack("!H", body[:2])[0])
                answers += bytes([0xB0, 4]) + body[:2] + b"\x00\x00"
        if answers:
            asyncio.get_running_loop().call_soon(self._answer, answers)

    def _answer(self, answers: bytes) -> None:
        if self._protocol is not None:
            self._protocol.data_received(answers)
