import socket
import struct

import paho.mqtt.client as paho
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from mqferry.mqtt.reads import buffer_reads


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
