"""The MQTT load generator against a scripted broker: batching, PUBACKs, reconnect and resend."""

import socket
import struct
import threading

from mqferry_bench.mqtt_load import PublisherPlan, publish, publish_packet


def read_packet(conn: socket.socket) -> tuple[int, bytes] | None:
    def exact(n: int) -> bytes | None:
        data = b""
        while len(data) < n:
            chunk = conn.recv(n - len(data))
            if not chunk:
                return None
            data += chunk
        return data

    head = exact(1)
    if head is None:
        return None
    length, mult = 0, 1
    while True:
        byte = exact(1)
        if byte is None:
            return None
        length += (byte[0] & 127) * mult
        mult *= 128
        if not byte[0] & 128:
            break
    body = exact(length) if length else b""
    return (head[0], body) if body is not None else None


class ScriptedBroker:
    """Accepts connections; the first one is dropped after ``drop_after`` publishes."""

    def __init__(self, drop_after: int | None = None) -> None:
        self.server = socket.create_server(("127.0.0.1", 0))
        self.port = self.server.getsockname()[1]
        self.drop_after = drop_after
        self.publishes: list[tuple[int, int, bytes]] = []  # (connection, first byte, body)
        self.connects = 0
        self.thread = threading.Thread(target=self.serve, daemon=True)
        self.thread.start()

    def serve(self) -> None:
        while True:
            try:
                conn, _ = self.server.accept()
            except OSError:
                return
            self.connects += 1
            number = self.connects
            with conn:
                packet = read_packet(conn)
                assert packet is not None and packet[0] == 0x10
                conn.sendall(b"\x20\x02\x00\x00")
                seen = 0
                while (packet := read_packet(conn)) is not None:
                    command, body = packet
                    if command >> 4 == 14:  # DISCONNECT
                        break
                    if command >> 4 != 3:
                        continue
                    self.publishes.append((number, command, body))
                    seen += 1
                    if number == 1 and self.drop_after is not None and seen >= self.drop_after:
                        break  # close without acking this one
                    if command & 6:
                        topic_len = struct.unpack("!H", body[:2])[0]
                        conn.sendall(b"\x40\x02" + body[2 + topic_len:4 + topic_len])

    def close(self) -> None:
        self.server.close()


def test_publish_packet_encodes_mqtt311():
    topic = b"\x00\x03a/b"
    assert publish_packet(topic, b"hi", 1, 258) == b"\x32\x09" + topic + b"\x01\x02hi"
    assert publish_packet(topic, b"hi", 0, 0) == b"\x30\x07" + topic + b"hi"


def test_every_message_is_acked_before_the_publisher_reports():
    broker = ScriptedBroker()
    try:
        result = publish(PublisherPlan(host="127.0.0.1", port=broker.port, topic="t/p0",
                                       key="p0", count=500, inflight=50))
    finally:
        broker.close()
    assert result["published"] == 500 and result["acked"] == 500
    seqs = [int(body.split(b'"s":')[1].split(b",")[0]) for _, _, body in broker.publishes]
    assert seqs == list(range(500))


def test_a_dropped_connection_is_resumed_and_unacked_messages_resent_as_duplicates():
    broker = ScriptedBroker(drop_after=120)
    try:
        result = publish(PublisherPlan(host="127.0.0.1", port=broker.port, topic="t/p0",
                                       key="p0", count=300, inflight=40, ack_timeout=30))
    finally:
        broker.close()
    assert result["acked"] == 300 and broker.connects == 2
    second = [(cmd, body) for number, cmd, body in broker.publishes if number == 2]
    assert second[0][0] & 0x08  # the first resent one carries DUP
    received = {int(body.split(b'"s":')[1].split(b",")[0]) for _, _, body in broker.publishes}
    assert received == set(range(300))
