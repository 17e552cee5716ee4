"""The MQTT load generator: one process per publisher connection, MQTT 3.1.1 on a plain socket.

At QoS 1 a publisher keeps at most ``inflight`` messages unacknowledged and waits for the PUBACK
of every message before it reports: a message counts as published once the broker took
responsibility for it. After a lost connection it reconnects and resends every unacknowledged
message (DUP set), so a broker restart does not make the generator lose messages of its own.

The packets are written in batches, PUBACKs read in bulk: a client library's per-message work
(paho takes locks and wakes its network thread for every publish) would make the generator, not
the bridge under test, the limit of a run. Framing (remaining lengths, strings, splitting what
was read into packets) is the product's own, :mod:`mqferry._mqtt.codec`; only the MQTT 3.1.1
CONNECT and PUBLISH layouts are written here (the codec writes MQTT 5).
"""

from __future__ import annotations

import contextlib
import logging
import select
import socket
import struct
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

from mqferry._mqtt.codec import PINGREQ, PUBACK, frame_at, mqtt_string, remaining_length
from mqferry_bench.payload import encode

log = logging.getLogger(__name__)

#: How often (in messages) a worker copies its counters to the shared ones.
_SYNC_EVERY = 64
#: Most packets written together when sending as fast as possible.
_BATCH = 32
_KEEPALIVE = 30


@dataclass(frozen=True, slots=True)
class PublisherPlan:
    """What one publisher connection sends.

    Attributes:
        host: MQTT broker host.
        port: MQTT broker port.
        topic: the topic it publishes to.
        key: its stream key (carried in every payload).
        count: messages to send, or ``None`` to send for ``duration`` seconds.
        duration: seconds to send when ``count`` is ``None``.
        rate: messages per second; 0 sends as fast as the inflight window allows.
        size: payload size in bytes.
        qos: 0 or 1.
        inflight: most unacknowledged messages at once (QoS 1).
        text_seqs: sequence numbers ``[start, stop)`` sent as non-JSON text payloads.
        oversize: payload sizes for particular sequence numbers.
        ack_timeout: seconds to wait for the last PUBACKs before giving up.
    """

    host: str
    port: int
    topic: str
    key: str
    count: int | None = None
    duration: float | None = None
    rate: float = 0.0
    size: int = 200
    qos: int = 1
    inflight: int = 1000
    text_seqs: tuple[int, int] = (0, 0)
    oversize: dict[int, int] = field(default_factory=dict)
    ack_timeout: float = 300.0


def publish_packet(topic: bytes, payload: bytes, qos: int, mid: int) -> bytes:
    """An MQTT 3.1.1 PUBLISH (``topic`` already length-prefixed)."""
    if qos:
        return (b"\x32" + remaining_length(len(topic) + 2 + len(payload)) + topic
                + mid.to_bytes(2, "big") + payload)
    return b"\x30" + remaining_length(len(topic) + len(payload)) + topic + payload


class _Session:
    """One MQTT 3.1.1 connection (clean session) and the publishes it has not had acked."""

    def __init__(self, plan: PublisherPlan) -> None:
        self.plan = plan
        self.clientid = f"mqferry-bench-{plan.key}-{uuid.uuid4().hex[:6]}"
        self.sock: socket.socket | None = None
        self.unacked: dict[int, bytes] = {}
        self.acked = 0
        self.rbuf = b""
        self.last_out = time.monotonic()
        self._mid = 0

    def next_mid(self) -> int:
        self._mid = self._mid % 65535 + 1
        return self._mid

    def connect(self, deadline: float) -> None:
        """Connect (retrying until ``deadline``) and resend what is unacknowledged.

        Raises:
            ConnectionError: no CONNACK before ``deadline``.
        """
        error: Exception | None = None
        while time.monotonic() < deadline:
            try:
                self._connect_once()
            except OSError as exc:
                error = exc
                self.close()
                time.sleep(1.0)
                continue
            if self.unacked:  # resend in order, marked as duplicates
                self.send(b"".join(bytes([p[0] | 0x08]) + p[1:] for p in self.unacked.values()))
            return
        raise ConnectionError(f"no CONNACK from {self.plan.host}:{self.plan.port}: {error}")

    def _connect_once(self) -> None:
        sock = socket.create_connection((self.plan.host, self.plan.port), timeout=10)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        body = (mqtt_string("MQTT") + bytes([4, 0x02]) + struct.pack("!H", _KEEPALIVE)
                + mqtt_string(self.clientid))
        sock.sendall(b"\x10" + remaining_length(len(body)) + body)
        connack = b""
        while len(connack) < 4:
            chunk = sock.recv(4 - len(connack))
            if not chunk:
                raise ConnectionError("the broker closed the connection before CONNACK")
            connack += chunk
        if connack[0] != 0x20 or connack[3] != 0:
            raise ConnectionError(f"connection refused: CONNACK {connack.hex()}")
        sock.settimeout(10)
        self.sock, self.rbuf, self.last_out = sock, b"", time.monotonic()

    def close(self) -> None:
        if self.sock is not None:
            try:
                self.sock.close()
            finally:
                self.sock = None

    def send(self, data: bytes) -> None:
        """Write ``data``; on a lost connection reconnect, which resends the unacked ones."""
        try:
            if self.sock is None:
                raise ConnectionError("not connected")
            self.sock.sendall(data)
            self.last_out = time.monotonic()
        except OSError as exc:
            log.warning("publisher %s: connection lost (%s); reconnecting", self.plan.key, exc)
            self.close()
            self.connect(time.monotonic() + self.plan.ack_timeout)

    def flush(self, batch: list[bytes]) -> None:
        """Send the packets of ``batch`` together and empty it."""
        if batch:
            self.send(b"".join(batch))
            batch.clear()

    def poll(self, timeout: float) -> None:
        """Read what the broker sent (PUBACKs), waiting at most ``timeout`` seconds for it."""
        sock = self.sock
        if sock is None:
            self.connect(time.monotonic() + self.plan.ack_timeout)
            return
        if time.monotonic() - self.last_out > _KEEPALIVE / 2:
            self.send(PINGREQ)
        try:
            ready, _, _ = select.select([sock], [], [], timeout)
            if not ready:
                return
            data = sock.recv(65536)
            if not data:
                raise ConnectionError("the broker closed the connection")
        except OSError as exc:
            log.warning("publisher %s: connection lost (%s); reconnecting", self.plan.key, exc)
            self.close()
            self.connect(time.monotonic() + self.plan.ack_timeout)
            return
        self._frames(self.rbuf + data if self.rbuf else data)

    def _frames(self, buf: bytes) -> None:
        pos, end, unacked = 0, len(buf), self.unacked
        while pos < end:
            frame = frame_at(buf, pos, end)
            if frame is None:
                break
            start, stop = frame
            if buf[pos] & 0xF0 == PUBACK and stop - start >= 2:
                mid = (buf[start] << 8) | buf[start + 1]
                if unacked.pop(mid, None) is not None:
                    self.acked += 1
            pos = stop
        self.rbuf = buf[pos:]

    def disconnect(self) -> None:
        if self.sock is not None:
            with contextlib.suppress(OSError):
                self.sock.sendall(b"\xe0\x00")
            self.close()


def publish(plan: PublisherPlan, shared: Any = None, go: Any = None) -> dict[str, Any]:
    """Send the plan's messages; return ``published``, ``acked``, ``started``, ``finished``.

    Args:
        plan: what to send.
        shared: optional ``multiprocessing`` array of three signed 64-bit ints: the counts sent
            and acknowledged so far (for a progress display), and 1 once connected.
        go: optional event to wait for after connecting, so that all publishers start together.
    """
    session = _Session(plan)
    session.connect(time.monotonic() + 30)
    try:
        if shared is not None:
            shared[2] = 1
        if go is not None:
            go.wait()
        sent, started = _send(plan, session, shared)
        finished = time.time()
        deadline = time.monotonic() + plan.ack_timeout
        if plan.qos:
            while session.unacked and time.monotonic() < deadline:
                session.poll(0.2)
        acked = session.acked if plan.qos else sent
    finally:
        session.disconnect()
    if shared is not None:
        shared[0], shared[1] = sent, acked
    return {"key": plan.key, "published": sent, "acked": acked, "started": started,
            "finished": finished}


def _send(plan: PublisherPlan, session: _Session, shared: Any) -> tuple[int, float]:
    key, size, qos, window = plan.key, plan.size, plan.qos, plan.inflight
    topic = mqtt_string(plan.topic)
    text_lo, text_hi = plan.text_seqs
    started = time.time()
    t0 = time.monotonic()
    stop_at = t0 + plan.duration if plan.count is None and plan.duration else None
    interval = 1.0 / plan.rate if plan.rate > 0 else 0.0
    batch: list[bytes] = []
    seq = 0
    while True:
        if plan.count is not None and seq >= plan.count:
            break
        if stop_at is not None and (seq & 63) == 0 and time.monotonic() >= stop_at:
            break
        if interval:
            ahead = t0 + seq * interval - time.monotonic()
            if ahead > 0.001:
                session.flush(batch)
                session.poll(min(ahead, 0.5)) if qos else time.sleep(ahead)
                continue
        if qos and len(session.unacked) >= window:
            session.flush(batch)
            session.poll(0.5)
            continue
        payload = encode(key, seq, time.time_ns() // 1000, plan.oversize.get(seq, size),
                         json=not text_lo <= seq < text_hi)
        mid = session.next_mid() if qos else 0
        packet = publish_packet(topic, payload, qos, mid)
        if qos:
            session.unacked[mid] = packet
        batch.append(packet)
        seq += 1
        if len(batch) >= _BATCH:
            session.flush(batch)
            if qos:
                session.poll(0)
        if shared is not None and (seq % _SYNC_EVERY) == 0:
            shared[0], shared[1] = seq, session.acked
    session.flush(batch)
    return seq, started
