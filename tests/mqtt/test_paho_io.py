import socket
import struct

import paho.mqtt.client as paho
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from mqferry.mqtt.paho_io import (
    coalesce_writes,
    decode_publish,
    puback_packets,
    read_packets,
)
from mqferry.mqtt.paho_io import publish_packet as encode_publish


def publish_packet(topic: str | bytes, payload: bytes, mid: int, *, qos: int = 1,
                   props: bytes | None = None, command: int | None = None) -> bytes:
    """A PUBLISH; MQTT 5 when ``props`` (the encoded properties with their length) is given."""
    raw = topic.encode() if isinstance(topic, str) else topic
    body = struct.pack("!H", len(raw)) + raw
    if qos:
        body += struct.pack("!H", mid)
    if props is not None:
        body += props
    body += payload
    first = command if command is not None else 0x30 | (qos << 1)
    return bytes([first]) + varint(len(body)) + body


def varint(n: int) -> bytes:
    out = bytearray()
    while True:
        n, byte = divmod(n, 128)
        out.append(byte | (128 if n else 0))
        if not n:
            return bytes(out)


def client_on(sock: socket.socket, received: list, *, v5: bool = False,
              fast: list | None = None) -> paho.Client:
    client = paho.Client(CallbackAPIVersion.VERSION2,
                         protocol=paho.MQTTv5 if v5 else paho.MQTTv311)
    client.on_message = lambda c, u, m: received.append(m.payload)
    client._sock = sock
    client._state = paho._ConnectionState.MQTT_CS_CONNECTED
    read_packets(client, fast.append if fast is not None else None)
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
    theirs.sendall(b"".join(publish_packet("t/1", f"m{i}".encode(), i + 1) for i in range(50)))
    client.loop_read()
    assert received == [f"m{i}".encode() for i in range(50)]


def test_a_packet_split_across_reads_is_completed_later(pair):
    ours, theirs = pair
    received: list[bytes] = []
    client = client_on(ours, received)
    packet = publish_packet("t/split", b"whole", 1)
    theirs.sendall(packet[:5])
    client.loop_read()
    assert received == []
    theirs.sendall(packet[5:] + publish_packet("t/2", b"next", 2))
    client.loop_read()
    assert received == [b"whole", b"next"]


@pytest.mark.parametrize("cut", [1, 2, 3, 200, 201])
def test_a_long_packet_cut_inside_its_length_bytes_or_body(pair, cut):
    ours, theirs = pair
    fast: list = []
    client = client_on(ours, [], fast=fast)
    packet = publish_packet("t/long", b"x" * 20_000, 9)  # a 3-byte remaining length
    theirs.sendall(packet[:cut])
    client.loop_read()
    assert fast == []
    theirs.sendall(packet[cut:])
    client.loop_read()
    assert [m.payload for m in fast] == [b"x" * 20_000]


def test_a_closed_peer_is_reported_as_a_lost_connection(pair):
    ours, theirs = pair
    client = client_on(ours, [])
    theirs.close()
    assert client.loop_read() != paho.MQTTErrorCode.MQTT_ERR_SUCCESS
    assert client._sock is None


def test_publishes_go_to_the_fast_handler_and_other_packets_to_paho(pair):
    ours, theirs = pair
    received: list[bytes] = []
    fast: list = []
    client = client_on(ours, received, v5=True, fast=fast)
    user = b"\x26" + struct.pack("!H", 8) + b"clientid" + struct.pack("!H", 2) + b"c1"
    props = varint(len(user)) + user
    theirs.sendall(publish_packet("a/1", b"q1", 7, props=b"\x00")
                   + publish_packet("a/0", b"q0", 0, qos=0, props=b"\x00")
                   + publish_packet("a/2", b"q2", 8, qos=2, props=b"\x00")
                   + bytes([0x31]) + varint(len(b"r") + 6) + struct.pack("!H", 3) + b"a/r"
                   + b"\x00" + b"r"  # QoS 0, retained (no packet identifier)
                   + publish_packet("a/p", b"props", 9, props=props))
    client.loop_read()
    assert [(m.topic, m.payload, m.qos, m.mid, m.retain) for m in fast] == [
        ("a/1", b"q1", 1, 7, False), ("a/0", b"q0", 0, 0, False), ("a/r", b"r", 0, 0, True),
        ("a/p", b"props", 1, 9, False)]
    assert fast[0].properties is None
    assert fast[3].properties.UserProperty == [("clientid", "c1")]
    assert received == [] and 8 in client._in_messages  # QoS 2 is paho's: PUBREC sent
    assert theirs.recv(100) == bytes([0x50, 2, 0, 8])


def test_an_invalid_utf8_topic_keeps_its_bytes(pair):
    ours, theirs = pair
    fast: list = []
    client = client_on(ours, [], v5=True, fast=fast)
    theirs.sendall(publish_packet(b"t/\xff", b"p", 3, props=b"\x00"))
    client.loop_read()
    assert fast[0].raw_topic == b"t/\xff" and fast[0].topic == "t/\ufffd"


@pytest.mark.parametrize("body", [
    b"\x00",  # shorter than the topic length
    b"\x00\x09t/x",  # topic longer than the packet
    b"\x00\x01t",  # no packet identifier
    b"\x00\x01t\x00\x01",  # no properties length
    b"\x00\x01t\x00\x01\x05\x26\x00",  # properties cut short
])
def test_a_malformed_publish_closes_the_connection_with_a_protocol_error(pair, body, caplog):
    ours, theirs = pair
    fast: list = []
    client = client_on(ours, [], v5=True, fast=fast)
    theirs.sendall(bytes([0x32, len(body)]) + body)
    rc = client.loop_read()
    assert rc == paho.MQTTErrorCode.MQTT_ERR_PROTOCOL
    assert fast == [] and client._sock is None
    assert "malformed MQTT PUBLISH" in caplog.text


def test_decode_publish_reads_dup_and_payload():
    packet = publish_packet("d/1", b"again", 5, props=b"\x00", command=0x3A)
    msg = decode_publish(packet[0], packet[2:])
    assert (msg.topic, msg.payload, msg.qos, msg.dup, msg.mid) == ("d/1", b"again", 1, True, 5)


def test_puback_packets_back_to_back():
    assert puback_packets([1, 258]) == bytes([0x40, 2, 0, 1, 0x40, 2, 1, 2])


def test_queued_acks_leave_in_one_write_and_qos0_publishes_are_still_reported(pair):
    ours, theirs = pair
    client = client_on(ours, [])
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


def test_publish_packet_matches_what_paho_decodes():
    from paho.mqtt import _packet
    from paho.mqtt.packettypes import PacketTypes
    from paho.mqtt.properties import Properties

    props = Properties(PacketTypes.PUBLISH)
    props.UserProperty = [("k", "v")]
    props.ContentType = "text/plain"
    packet = encode_publish("o/ü", b"body", 1, True, mid=300, properties=props)
    assert packet[0] == 0x33
    msg = decode_publish(packet[0], packet[2:])
    assert (msg.topic, msg.payload, msg.mid, msg.retain) == ("o/ü", b"body", 300, True)
    assert msg.properties.UserProperty == [("k", "v")]
    decoded = _packet.decode_publish(packet[0], bytearray(packet[2:]), paho.MQTTv5)
    assert decoded.payload == b"body" and decoded.properties.ContentType == "text/plain"
    q0 = encode_publish("o/0", b"", 0, False, mid=0, properties=None)
    assert q0 == b"\x30\x06\x00\x03o/0\x00"


def test_publish_packet_refuses_what_mqtt_cannot_carry():
    with pytest.raises(ValueError, match="longer than 65535"):
        encode_publish("t" * 70_000, b"", 1, False, mid=1, properties=None)
    with pytest.raises(UnicodeEncodeError):
        encode_publish("t/\udcff", b"", 1, False, mid=1, properties=None)


def test_pubacks_of_own_publishes_go_to_their_callback(pair):
    ours, theirs = pair
    acks: list[tuple[int, int]] = []
    client = paho.Client(CallbackAPIVersion.VERSION2, protocol=paho.MQTTv5)
    client._sock = ours
    client._state = paho._ConnectionState.MQTT_CS_CONNECTED
    paho_acks: list[int] = []
    client._handle_pubackcomp = lambda cmd: paho_acks.append(cmd) or 0  # type: ignore[method-assign]
    read_packets(client, None, lambda mid, rc: (acks.append((mid, rc)), mid < 100)[1])
    theirs.sendall(bytes([0x40, 2, 0, 5]) + bytes([0x40, 3, 0, 6, 0x87])
                   + bytes([0x40, 2, 0, 200]))
    client.loop_read()
    assert acks == [(5, 0), (6, 0x87), (200, 0)]
    assert paho_acks == ["PUBACK"]  # not ours: paho's
