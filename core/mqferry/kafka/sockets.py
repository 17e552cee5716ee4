"""TCP options (buffer sizes, nodelay, keepalive) on an aiokafka client's broker connections.

aiokafka opens its sockets itself and has no option for these, so they are set on each
connection's socket after it is opened; :func:`apply_socket_options` is called periodically and
configures the connections it has not seen yet.
"""

from __future__ import annotations

import socket
from typing import Any

from mqferry.kafka.config import SocketOptions


def _keepalive(spec: str) -> tuple[int, int, int] | None:
    if spec.strip() == "none":
        return None
    idle, interval, probes = (int(x) for x in spec.replace(" ", "").strip(",").split(","))
    return idle, interval, probes


def configure_socket(sock: socket.socket, opts: SocketOptions) -> None:
    """Set the options on one socket."""
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, opts.sndbuf)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, opts.recbuf)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, int(opts.nodelay))
    ka = _keepalive(opts.tcp_keepalive)
    if ka is not None:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPIDLE, ka[0])
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPINTVL, ka[1])
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPCNT, ka[2])


def apply_socket_options(client: Any, opts: SocketOptions, seen: set[int]) -> int:
    """Configure the sockets of ``client``'s connections not in ``seen``; how many were new."""
    n = 0
    for conn in list(getattr(client, "_conns", {}).values()):
        writer = getattr(conn, "_writer", None)
        sock = writer.transport.get_extra_info("socket") if writer is not None else None
        if sock is None or id(sock) in seen:
            continue
        try:
            configure_socket(sock, opts)
        except OSError:
            continue
        seen.add(id(sock))
        n += 1
    return n
