"""One MQTT 5 connection as an asyncio protocol: the only owner of the broker's socket.

The event loop's transport reads up to :data:`READ_SIZE` into our buffer; :meth:`MqttProtocol.
data_received` frames every complete packet of it, hands each PUBLISH to a synchronous callback
(no queue, no task, no copy of the payload beyond its slice), and completes our publishes on their
PUBACKs.
Writes made while handling a read (acks, the publishes they release) and those made in one turn
of the event loop leave together in one ``send``. The keepalive (:mod:`mqferry._mqtt.keepalive`)
and the (un)subscribe requests awaiting their acks (:mod:`mqferry._mqtt.requests`) have modules of
their own.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterable
from typing import cast

from paho.mqtt.properties import Properties

from mqferry._errors import DeliveryError, MqttUnavailable
from mqferry._mqtt import codec, control
from mqferry._mqtt.codec import InMessage, PacketError
from mqferry._mqtt.control import Connack
from mqferry._mqtt.keepalive import Keepalive
from mqferry._mqtt.requests import Requests

__all__ = ["READ_SIZE", "MqttProtocol", "Settled", "tell"]

log = logging.getLogger(__name__)

#: The most one read takes from the socket.
READ_SIZE = 64 * 1024

#: Told how a publish ended: ``None`` once the broker acknowledged it (QoS 1/2) or it was
#: written (QoS 0), else the exception (:class:`~mqferry._errors.MqttUnavailable` when the
#: connection was lost first, :class:`~mqferry._errors.DeliveryError` when the broker refused it).
Settled = Callable[[BaseException | None], None]


def tell(settled: Settled, outcome: BaseException | None) -> None:
    """Call ``settled``; a callback that raises is logged and fails nothing else."""
    try:
        settled(outcome)
    except Exception:
        log.exception("a publish's settled callback raised")


class MqttProtocol(asyncio.BufferedProtocol):
    """The packets of one MQTT 5 connection.

    Args:
        on_publish: receives each incoming PUBLISH, synchronously; it acknowledges QoS 1/2
            messages later through :meth:`send_acks`.
        on_released: called each time one of our QoS 1/2 publishes completed (acked, refused or
            failed): the in-flight window has room again.
        on_lost: called once when the connection is gone (not when we closed it ourselves).
    """

    def __init__(self, *, on_publish: Callable[[InMessage], None],
                 on_released: Callable[[], None] = lambda: None,
                 on_lost: Callable[[], None] = lambda: None) -> None:
        self._on_publish = on_publish
        self._on_released = on_released
        self._on_lost = on_lost
        self._loop = asyncio.get_running_loop()
        self._transport: asyncio.Transport | None = None
        self._rest = b""
        # Reads of at most READ_SIZE: the transport's default (256 KiB, over 1000 messages handled
        # in one go) keeps so many objects alive at once that garbage collection passes, not the
        # messages, took the extra time (MQTT -> Kafka at full load: +13% CPU per message).
        self._view = memoryview(bytearray(READ_SIZE))
        self._out: list[bytes] = []
        self._flush_handle: asyncio.Handle | None = None
        #: reading is paused until the next turn of the event loop (see :meth:`buffer_updated`)
        self._turn: asyncio.Handle | None = None
        self._publishes: dict[int, Settled] = {}
        #: The (un)subscribe requests on this connection (they wait for their acks there).
        self.requests = Requests(self._loop, self._next_mid, self._send_requests)
        # Read for every packet identifier taken: the requests' own map (kept, edited in place).
        self._asked = self.requests.waiting
        self._mid = 0
        self._keepalive: Keepalive | None = None
        #: When the last read came, and when the last write left (event loop time).
        self.last_in = self.last_out = self._loop.time()
        self.connack: asyncio.Future[Connack] = self._loop.create_future()
        #: Completes with the reason once the connection is gone.
        self.closed: asyncio.Future[str] = self._loop.create_future()
        self._reason: str | None = None
        #: The reason code of the broker's DISCONNECT, if the broker ended the connection so.
        self.disconnect_code: int | None = None
        #: Reading is paused because the client holds as many unacknowledged messages as it
        #: may (see :meth:`hold_back`).
        self.held_back = False
        #: The largest packet the broker takes (its CONNACK's Maximum Packet Size).
        self.max_packet_size = codec.MAX_PACKET
        #: The highest topic alias the broker takes (its CONNACK's Topic Alias Maximum).
        self.topic_alias_max = 0

    # -- asyncio.BufferedProtocol ------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # A stream transport of any event loop: uvloop's are not subclasses of asyncio's.
        self._transport = cast(asyncio.Transport, transport)

    def get_buffer(self, sizehint: int) -> memoryview:
        return self._view

    def buffer_updated(self, nbytes: int) -> None:
        self.data_received(bytes(self._view[:nbytes]))
        if nbytes == len(self._view):
            self._next_turn()

    def _next_turn(self) -> None:
        """Read no more until the event loop has run everything else that is ready.

        A read that filled the buffer leaves more waiting. uvloop (libuv) reads such a socket
        up to 32 times in a row before any other callback runs: under a flood that nothing
        holds back (at-most-once acknowledges at once) the bridge read ~10,000 messages per
        turn while its Kafka sender waited, and buffered 450 MiB at a tenth of the throughput
        (measured). One full read per turn, as asyncio's own loop does.
        """
        transport = self._transport
        if transport is None or self._turn is not None or self.held_back:
            return
        transport.pause_reading()
        self._turn = self._loop.call_soon(self._turn_ended)

    def _turn_ended(self) -> None:
        self._turn = None
        if self._transport is not None and not self.held_back:
            self._transport.resume_reading()

    def data_received(self, data: bytes) -> None:
        """Handle the bytes of one read (what :meth:`buffer_updated` hands over)."""
        self.last_in = self._loop.time()
        try:
            self._frames(self._rest + data if self._rest else data)
        except PacketError as exc:
            log.warning("malformed MQTT packet from the broker: %s", exc)
            self.close(f"malformed MQTT packet from the broker: {exc}", abort=True)
            return
        self.flush()

    def eof_received(self) -> bool | None:
        return None  # close the transport

    def connection_lost(self, exc: Exception | None) -> None:
        self._transport = None
        reason = self._reason or (str(exc) if exc else "the broker closed the connection")
        self._reason = reason
        for handle in (self._flush_handle, self._turn):
            if handle is not None:
                handle.cancel()
        if self._keepalive is not None:
            self._keepalive.stop()
        self._out.clear()
        if not self.connack.done():
            self.connack.set_exception(MqttUnavailable(reason))
            self.connack.exception()  # nobody may be waiting any more: not worth a warning
        failed = MqttUnavailable(
            f"the MQTT connection was lost before the broker's ack: {reason}")
        publishes, self._publishes = self._publishes, {}
        for settled in publishes.values():
            tell(settled, failed)
        self.requests.fail(MqttUnavailable(reason))
        if not self.closed.done():
            self.closed.set_result(reason)
            self._on_lost()

    # -- reading -----------------------------------------------------------------------------

    def _frames(self, buf: bytes) -> None:
        """Handle every complete packet in ``buf``; keep the incomplete tail for later."""
        pos, end = 0, len(buf)
        self._rest = b""
        while pos < end:
            if self._transport is None or self._reason is not None:
                return  # closed by a handler: the rest belongs to a dead connection
            frame = codec.frame_at(buf, pos, end)
            if frame is None:
                self._rest = buf[pos:]  # incomplete: the rest comes with the next read
                return
            start, stop = frame
            command, pos = buf[pos], stop
            if command & 0xF0 == codec.PUBLISH:  # decoded where it lies: no copy of the body
                self._on_publish(codec.decode_publish(command, buf, start, stop))
            else:
                self._packet(command, buf[start:stop])

    def _packet(self, command: int, body: bytes) -> None:
        """Handle a packet other than PUBLISH (:meth:`_frames` decodes those in place)."""
        kind = command & 0xF0
        if kind in {codec.PUBACK, codec.PUBCOMP}:
            self._settle(body, kind)
        elif kind == codec.PUBREC:
            self._pubrec(body)
        elif kind == codec.PUBREL:
            self.write(b"\x70\x02" + body[:2])  # PUBCOMP: the QoS 2 message was delivered
        elif kind in {codec.SUBACK, codec.UNSUBACK}:
            self.requests.answered(body)
        elif kind == codec.PINGRESP:
            pass  # its arrival updated the time of the last read
        elif kind == codec.CONNACK:
            if not self.connack.done():
                connack = control.decode_connack(body)
                self.max_packet_size = connack.get("MaximumPacketSize", codec.MAX_PACKET)
                self.topic_alias_max = connack.get("TopicAliasMaximum", 0)
                self.connack.set_result(connack)
        elif kind == codec.DISCONNECT:
            code = self.disconnect_code = body[0] if body else 0
            name = codec.reason_name(codec.DISCONNECT, code)
            self.close(f"the broker disconnected: {name}", abort=True)
        else:
            raise PacketError(f"unexpected packet type 0x{command:02x}")

    def _settle(self, body: bytes, kind: int) -> None:
        if len(body) < 2:
            raise PacketError("acknowledgement shorter than its packet identifier")
        settled = self._publishes.pop((body[0] << 8) | body[1], None)
        if settled is None:
            return  # not in flight on this connection (a late duplicate)
        self._on_released()
        code = body[2] if len(body) > 2 else 0
        if code >= 0x80:
            why = codec.reason_name(kind, code)
            tell(settled, DeliveryError(
                "failed.refused", f"the MQTT broker refused the publish: {why}"))
        else:
            tell(settled, None)

    def _pubrec(self, body: bytes) -> None:
        if len(body) < 2:
            raise PacketError("PUBREC shorter than its packet identifier")
        if len(body) > 2 and body[2] >= 0x80:
            self._settle(body, codec.PUBREC)  # refused: the QoS 2 flow ends here
            return
        self.write(b"\x62\x02" + body[:2])  # PUBREL; the publish completes on PUBCOMP

    # -- writing -----------------------------------------------------------------------------

    @property
    def is_open(self) -> bool:
        """Whether the connection can still carry packets."""
        return self._transport is not None and self._reason is None

    def write(self, data: bytes) -> None:
        """Queue bytes; they leave with the others of this read or turn of the event loop."""
        self._out.append(data)
        if self._flush_handle is None:
            self._flush_handle = self._loop.call_soon(self.flush)

    def flush(self) -> None:
        """Write everything queued, in one ``send``."""
        if self._flush_handle is not None:
            self._flush_handle.cancel()
            self._flush_handle = None
        out, transport = self._out, self._transport
        if not out or transport is None:
            return
        transport.write(out[0] if len(out) == 1 else b"".join(out))
        out.clear()
        self.last_out = self._loop.time()

    def _next_mid(self) -> int:
        mid = self._mid
        for _ in range(65535):
            mid = mid % 65535 + 1
            if mid not in self._publishes and mid not in self._asked:
                self._mid = mid
                return mid
        raise ValueError("no free MQTT packet identifier (65535 in flight)")

    def publish(self, topic: str, payload: bytes, *, qos: int, retain: bool,
                properties: Properties | None, settled: Settled) -> None:
        """Send a PUBLISH; ``settled`` is called on its ack (QoS 1/2) or at once (QoS 0).

        Called from the packet that acknowledges it, not a turn of the event loop later as a
        future's callbacks are: a future and its callback per publish cost over ten times the
        call (measured).

        Raises:
            ValueError: the topic or packet cannot be encoded, the packet is larger than the
                broker's Maximum Packet Size, or its topic alias is over the broker's maximum
                (the broker would end the connection).
        """
        if properties is not None:
            self._check_alias(properties)
        mid = self._next_mid() if qos else 0
        data = codec.publish_packet(topic, payload, qos, retain, mid=mid, properties=properties)
        if len(data) > self.max_packet_size:
            raise ValueError(f"the PUBLISH to {topic!r} is {len(data)} bytes, over the MQTT "
                             f"broker's Maximum Packet Size ({self.max_packet_size})")
        self.write(data)
        if qos:
            self._publishes[mid] = settled
            self.go_on()  # its ack must be read
        else:
            tell(settled, None)

    def _check_alias(self, properties: Properties) -> None:
        alias = getattr(properties, "TopicAlias", None)
        if alias is not None and not 0 < alias <= self.topic_alias_max:
            raise ValueError(f"topic alias {alias} is not between 1 and the MQTT broker's "
                             f"Topic Alias Maximum ({self.topic_alias_max})")

    def hold_back(self) -> None:
        """Stop reading: the client holds as many unacknowledged messages as it may.

        The receive maximum sent in CONNECT should stop the broker, but Mosquitto 2.0 sends
        beyond it once acknowledgements flow (measured: over 16,000 unacknowledged messages
        with a receive maximum of 100), and every one of them is held in memory until its
        action secures it. Not reading lets TCP stop the broker instead. Not while a publish or
        a (un)subscribe of ours waits for its answer on this connection: its ack must be read
        (a republish action's PUBACK may be what releases the held messages).
        """
        if self.held_back or self._publishes or self._asked or not self.is_open:
            return
        assert self._transport is not None
        self._transport.pause_reading()
        self.held_back = True

    def go_on(self) -> None:
        """Read again after :meth:`hold_back`."""
        if not self.held_back:
            return
        self.held_back = False
        self.last_in = self._loop.time()  # nothing was read while held back: not a silence
        if self._transport is not None and self._turn is None:
            self._transport.resume_reading()  # (else the end of the turn does)

    def send_acks(self, acks: Iterable[tuple[int, int]]) -> None:
        """Acknowledge a run of received messages, ``(mid, qos)``, in order."""
        if self.is_open:
            self.write(codec.ack_packets(acks))

    def _send_requests(self, data: bytes) -> None:
        self.go_on()  # their answers must be read
        self.write(data)
        self.flush()

    # -- session -----------------------------------------------------------------------------

    def start_keepalive(self, seconds: float) -> None:
        """Keep the connection alive at ``seconds`` (0: no keepalive), from the CONNACK on."""
        if seconds > 0:
            self._keepalive = Keepalive(self, seconds)

    def close(self, reason: str, *, abort: bool = False) -> None:
        """Close the connection with ``reason`` (what :attr:`closed` will say)."""
        if self._reason is None:
            self._reason = reason
        transport = self._transport
        if transport is None:
            return
        if abort:
            transport.abort()
        else:
            self.flush()
            transport.close()

    def disconnect(self, *, end_session: bool = False) -> None:
        """Send DISCONNECT (normal) and close; unacknowledged messages stay with the broker.

        ``end_session``: the broker drops the session at once (its expiry set to 0), with
        whatever it queued for it.
        """
        if self.is_open:
            self.write(control.disconnect_packet(end_session=end_session))
            self.close("disconnected by mqferry")
