"""Buffered socket reads for paho.

paho reads a packet with several small ``recv`` calls (the command byte, each length byte, then
the body) and handles one packet per readiness event of the event loop. Under load that is a few
system calls and one event-loop turn per message. :func:`buffer_reads` makes paho read from a
64 KiB buffer filled by one ``recv``, and keeps handling packets while the buffer holds any, so
a burst of messages costs one system call and one loop turn.
"""

from __future__ import annotations

from typing import Any

import paho.mqtt.client as paho
from paho.mqtt.enums import MQTTErrorCode

CHUNK = 64 * 1024


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
