"""The keepalive of one MQTT connection.

A PINGREQ when either side has been silent for half the interval, and the connection dropped
when the broker has been silent for one and a half intervals. The connection stamps the time of
its last read and write (:attr:`~mqferry._mqtt.protocol.MqttProtocol.last_in`, ``last_out``);
a few timer ticks per interval read them.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

from mqferry._mqtt import codec

if TYPE_CHECKING:
    from mqferry._mqtt.protocol import MqttProtocol

__all__ = ["Keepalive"]


class Keepalive:
    """Keeps one connection alive, from its CONNACK on, until :meth:`stop`.

    Args:
        proto: the connection.
        interval: the keepalive in seconds (more than 0): the CONNACK's Server Keep Alive, or
            the one sent in CONNECT.
    """

    def __init__(self, proto: MqttProtocol, interval: float) -> None:
        self._proto = proto
        self._interval = interval
        self._loop = asyncio.get_running_loop()
        self._last_ping = float("-inf")
        self._handle = self._loop.call_later(interval / 4, self._tick)

    def stop(self) -> None:
        """No more ticks (the connection is gone)."""
        self._handle.cancel()

    def _tick(self) -> None:
        proto = self._proto
        if not proto.is_open:
            return
        now, interval = self._loop.time(), self._interval
        if proto.held_back:
            proto.last_in = now  # not reading on purpose: the broker's silence is ours
        if now - proto.last_in > interval * 1.5:
            proto.close(f"keepalive: no data from the broker for {now - proto.last_in:.0f}s",
                        abort=True)
            return
        # Silent either way for half the interval: ping. A client that only publishes QoS 0
        # hears nothing back unless it asks, and would take a live broker for a dead one.
        half = interval / 2
        if (now - proto.last_out >= half or now - proto.last_in >= half) and \
                now - self._last_ping >= half:
            self._last_ping = now
            proto.write(codec.PINGREQ)
            proto.flush()
        self._handle = self._loop.call_later(interval / 4, self._tick)
