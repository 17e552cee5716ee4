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
