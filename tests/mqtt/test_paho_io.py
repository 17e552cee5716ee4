import socket
import struct

import paho.mqtt.client as paho
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from mqferry.mqtt.paho_io import buffer_reads, coalesce_writes


def publish_packet(topic: str, payload: bytes, mid: int) -> bytes:
    """An MQTT 3.1.1 QoS 1 PUBLISH."""
    body = struct.pack("!H", len(topic)) + topic.encode() + struct.pack("!H", mid) + payload
    return bytes([0x32, len(body)]) + body


def client_on(sock: socket.socket, received: list[bytes]) -> paho.Client:
    client = paho.Client(CallbackAPIVersion.VERSION2, protocol=paho.MQTTv311)
    client.on_message = lambda c, u, m: received.append(m.payload)
    client._sock = sock
    client._state = paho._ConnectionState.MQTT_CS_CONNECTED
    return client


@pytest.fixture
def pair():
    ours, theirs = socket.socketpair()
    ours.setblocking(False)
    yield ours, theirs
    ours.close()
    theirs.close()


def test_one_read_handles_every_packet_in_the_buffer(pair):
    ours, theirs = pair
    received: list[bytes] = []
    client = client_on(ours, received)
    buffer_reads(client)
    theirs.sendall(b"".join(publish_packet("t/1", f"m{i}".encode(), i + 1) for i in range(50)))
    client.loop_read()
    assert received == [f"m{i}".encode() for i in range(50)]


def test_a_packet_split_across_reads_is_completed_later(pair):
    ours, theirs = pair
    received: list[bytes] = []
    client = client_on(ours, received)
    buffer_reads(client)
    packet = publish_packet("t/split", b"whole", 1)
    theirs.sendall(packet[:5])
    client.loop_read()
    assert received == []
    theirs.sendall(packet[5:] + publish_packet("t/2", b"next", 2))
    client.loop_read()
    assert received == [b"whole", b"next"]


def test_a_closed_peer_is_reported_as_a_lost_connection(pair):
    ours, theirs = pair
    client = client_on(ours, [])
    buffer_reads(client)
    theirs.close()
    assert client.loop_read() != paho.MQTTErrorCode.MQTT_ERR_SUCCESS


def test_queued_acks_leave_in_one_write_and_qos0_publishes_are_still_reported(pair):
    ours, theirs = pair
    client = client_on(ours, [])
    client._state = paho._ConnectionState.MQTT_CS_CONNECTED
    published = []
    client.on_publish = lambda c, u, mid, rc, props: published.append(mid)
    coalesce_writes(client)
    sends = []
    raw_send = client._sock_send
    client._sock_send = lambda data: sends.append(bytes(data)) or raw_send(data)
    client._on_socket_register_write = lambda *a: None  # an external loop would write later
    for mid in (1, 2, 3):
        client._send_puback(mid)
    info = client.publish("t/q0", b"x", qos=0)
    client.loop_write()
    assert len(sends) == 2  # three PUBACKs together, then the QoS 0 publish on its own
    assert sends[0] == b"".join(bytes([0x40, 2, 0, m]) for m in (1, 2, 3))
    assert info.is_published() and published == [info.mid]
    assert theirs.recv(100) == sends[0] + sends[1]
