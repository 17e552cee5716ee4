"""Fewer system calls for paho: buffered reads and coalesced writes.

paho reads a packet with several small ``recv`` calls (the command byte, each length byte, then
the body) and handles one packet per readiness event of the event loop; it writes each packet
(every 4-byte PUBACK) with its own ``send``. Under load that is a few system calls and one
event-loop turn per message. :func:`buffer_reads` makes paho read from a 64 KiB buffer filled by
one ``recv`` and keeps handling packets while the buffer holds any; :func:`coalesce_writes`
joins the queued packets that need no bookkeeping after they are written into one ``send``.
"""

from __future__ import annotations

from typing import Any

import paho.mqtt.client as paho
from paho.mqtt.enums import MQTTErrorCode

CHUNK = 64 * 1024
#: Packets that paho handles after writing them (QoS 0 publishes are reported as published,
#: DISCONNECT closes the socket) are written on their own.
_PUBLISH, _DISCONNECT = 0x30, 0xE0
_PUBACK = 0x40


def buffer_reads(client: paho.Client, chunk: int = CHUNK) -> None:
    """Give ``client`` (not yet connected) a read buffer; see the module docs."""
    raw_recv = client._sock_recv
    raw_loop_read = client.loop_read
    state: dict[str, Any] = {"sock": None, "data": b"", "pos": 0}

    def recv(bufsize: int) -> bytes:
        sock = client._sock
        if state["sock"] is not sock:  # a new connection: nothing buffered belongs to it
            state.update(sock=sock, data=b"", pos=0)
        data, pos = state["data"], state["pos"]
        if pos >= len(data):
            data = raw_recv(chunk)  # raises BlockingIOError when nothing is there
            if not data:
                return b""  # the peer closed the connection
            pos = 0
        out = data[pos : pos + bufsize]
        state["data"], state["pos"] = data, pos + len(out)
        return bytes(out)

    def loop_read(max_packets: int = 1) -> MQTTErrorCode:
        rc = raw_loop_read(max_packets)
        # Packets already in the buffer raise no readiness event: handle them now.
        while (rc == MQTTErrorCode.MQTT_ERR_SUCCESS and client._sock is not None
               and state["pos"] < len(state["data"])):
            rc = raw_loop_read(max_packets)
        return rc

    client._sock_recv = recv  # type: ignore[method-assign]
    client.loop_read = loop_read  # type: ignore[method-assign]


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
