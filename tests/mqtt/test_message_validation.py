"""What the connector refuses to send, and the malformed messages from the broker it drops.

A PUBLISH a broker refuses ends the session (Mosquitto disconnects it), and a message sent again
after each reconnect would keep it down for good; an incoming PUBLISH that cannot be decoded
would end it the same way, the broker sending it again after each reconnect. Either fails alone.
"""

from __future__ import annotations

import asyncio
import logging
import struct

import pytest

from mqferry._config.models import MqttConfig
from mqferry._mqtt.client import MqttConnector
from mqferry._mqtt.protocol import MqttProtocol
from tests.mqtt.twins import MemoryTransport, publish_packet, varint


def session(receive_maximum: int = 10) -> tuple[MqttConnector, MemoryTransport, list]:
    handled: list = []
    conn = MqttConnector(config=MqttConfig(receive_maximum=receive_maximum),
                         handler=lambda m, t: (handled.append(m), t and t.seal()))
    fake = MemoryTransport()
    conn._proto = fake.attach(MqttProtocol(on_publish=conn._on_message,
                                           on_released=conn._released))
    conn._connected.set()
    return conn, fake, handled


BAD_TOPICS = ["out/a\x00b", "out/\x01", "out/\x1f", "out/\x7f", "out/\x85", "out/\ud800",
              "out/\ufffe", "out/\ufdd0", "", "out/+", "out/#", "a" * 65536]


@pytest.mark.parametrize("topic", BAD_TOPICS)
async def test_a_topic_brokers_refuse_is_never_written(topic):
    conn, fake, _ = session()
    told: list = []
    with pytest.raises(ValueError, match="invalid MQTT topic to publish to"):
        conn.publish_with(topic, b"x", told.append, qos=1)
    with pytest.raises(ValueError, match="invalid MQTT topic to publish to"):
        await conn.publish(topic, b"x", qos=0)
    conn.publish_with("out/good", b"x", told.append, qos=1)
    conn._proto.flush()
    assert told == [] and fake.sent.count(b"\x32") == 1 and b"out/good" in fake.sent


BAD_PROPERTIES = [
    ({"User-Property": [("k", "v\x00")]}, "user property 'k'"),
    ({"User-Property": {"k\x01": "v"}}, "user property name"),
    ({"User-Property": [("k", "\ud83d")]}, "U+D83D"),
    ({"Content-Type": "text/\x7f"}, "Content-Type"),
    ({"Response-Topic": "reply/\x00"}, "Response-Topic"),
    ({"Response-Topic": "reply/+"}, "wildcard"),
    ({"Correlation-Data": b"x" * 65536}, "Correlation-Data"),
    ({"User-Property": [("k", "v" * 65536)]}, "65535 bytes"),
]


@pytest.mark.parametrize(("properties", "why"), BAD_PROPERTIES)
async def test_a_property_brokers_refuse_is_never_written(properties, why):
    conn, fake, _ = session()
    with pytest.raises(ValueError, match="invalid MQTT 5") as info:
        conn.publish_with("out/1", b"x", lambda e: None, qos=1, properties=properties)
    assert why in str(info.value)
    assert fake.sent == b""


async def test_binary_correlation_data_and_plain_strings_are_sent():
    conn, fake, _ = session()
    told: list = []
    conn.publish_with("out/1", b"x", told.append, qos=0, properties={
        "Correlation-Data": b"\x00\xff", "Content-Type": "text/plain; charset=utf-8",
        "User-Property": [("clé", "välue \u00a0")], "Response-Topic": "reply/1"})
    conn._proto.flush()
    assert told == [None] and b"\x09\x00\x02\x00\xff" in fake.sent


async def test_a_publish_over_the_brokers_maximum_packet_size_fails_alone():
    conn, fake, _ = session(receive_maximum=1)
    conn._proto.max_packet_size = 100
    told: list = []
    conn.publish_with("out/big", b"x" * 100, told.append, qos=1)
    assert len(told) == 1 and isinstance(told[0], ValueError)
    assert "Maximum Packet Size (100)" in str(told[0])
    conn.publish_with("out/small", b"x" * 10, told.append, qos=1)  # its window slot came back
    conn._proto.flush()
    assert fake.sent.startswith(b"\x32") and b"out/small" in fake.sent and b"out/big" not in (
        fake.sent)


async def test_the_maximum_packet_size_and_topic_alias_maximum_come_from_the_connack():
    proto = MemoryTransport().attach(MqttProtocol(on_publish=lambda m: None))
    # CONNACK, success, properties: Maximum Packet Size (0x27) 1024, Topic Alias Maximum (0x22) 5
    props = b"\x27" + struct.pack("!I", 1024) + b"\x22" + struct.pack("!H", 5)
    body = b"\x00\x00" + varint(len(props)) + props
    proto.data_received(bytes([0x20]) + varint(len(body)) + body)
    assert (await proto.connack).reason == 0
    assert (proto.max_packet_size, proto.topic_alias_max) == (1024, 5)


async def test_a_topic_alias_the_broker_does_not_take_fails_alone():
    conn, _, _ = session()
    conn._proto.topic_alias_max = 10
    told: list = []
    with pytest.raises(ValueError, match="Topic-Alias"):
        conn.publish_with("out/1", b"x", told.append, qos=1, properties={"Topic-Alias": 0})
    conn.publish_with("out/1", b"x", told.append, qos=1, properties={"Topic-Alias": 11})
    assert len(told) == 1 and "Topic Alias Maximum (10)" in str(told[0])
    conn.publish_with("out/1", b"x", told.append, qos=0, properties={"Topic-Alias": 10})
    assert told[1:] == [None]


def _user_property(key: bytes, value: bytes) -> bytes:
    prop = b"\x26" + struct.pack("!H", len(key)) + key + struct.pack("!H", len(value)) + value
    return varint(len(prop)) + prop


MALFORMED_READS = [
    pytest.param(publish_packet("in/1", b"p", 2, props=_user_property(b"k", b"\xff")),
                 "utf-8", id="user-property"),
    pytest.param(publish_packet("in/1", b"p", 2, props=b"\x04\x03\x00\x01\xff"), "utf-8",
                 id="content-type"),
    pytest.param(publish_packet(b"in/\xff", b"p", 2), "not valid UTF-8", id="topic"),
]


@pytest.mark.parametrize(("packet", "why"), MALFORMED_READS)
async def test_a_malformed_message_is_acked_counted_and_the_connection_goes_on(packet, why,
                                                                                caplog):
    conn, fake, handled = session()
    read = (publish_packet("in/1", b"before", 1) + packet + publish_packet("in/1", b"after", 3))
    with caplog.at_level(logging.WARNING):
        conn._proto.data_received(read)
    assert [m.payload for m in handled] == [b"before", b"after"]
    assert conn._proto.is_open and not fake.closed
    await asyncio.sleep(0)  # the acks of a turn leave at its end
    conn._proto.flush()
    assert fake.sent == bytes([0x40, 2, 0, 1, 0x40, 2, 0, 2, 0x40, 2, 0, 3])  # all three, in order
    assert (conn.metrics.get("dropped"), conn.metrics.get("dropped.malformed")) == (1, 1)
    assert "dropped a malformed MQTT message" in caplog.text and why in caplog.text


async def test_the_warning_about_malformed_messages_is_rate_limited(caplog):
    conn, _, handled = session(receive_maximum=1000)
    bad = publish_packet("in/1", b"p", 2, props=_user_property(b"k", b"\xff"))
    with caplog.at_level(logging.WARNING):
        conn._proto.data_received(bad * 100)
    assert conn.metrics.get("dropped.malformed") == 100 and handled == []
    assert caplog.text.count("dropped a malformed MQTT message") == 1
