"""What Mosquitto refuses in a PUBLISH, and that mqferry never sends it (the real broker).

Mosquitto ends the session of a client that sends a topic or a string property holding a
character it refuses; the MQTT client checks every publish first, so such a message fails alone
and the session stays up for the next one.
"""

from __future__ import annotations

import asyncio
import os
import struct
import uuid

import pytest

from mqferry._config.models import MqttConfig
from mqferry._mqtt.client import MqttConnector
from mqferry._mqtt.strings import string_problem

pytestmark = pytest.mark.integration

HOST = os.environ.get("MQFERRY_MQTT_HOST", "127.0.0.1")
PORT = int(os.environ.get("MQFERRY_MQTT_PORT", "1883"))


def _string(raw: bytes) -> bytes:
    return struct.pack("!H", len(raw)) + raw


async def _raw_publish(topic: bytes, props: bytes = b"") -> bytes:
    """Send one QoS 1 PUBLISH on a connection of its own; what the broker answers (``b""``
    when it closed the connection without a word)."""
    reader, writer = await asyncio.open_connection(HOST, PORT)
    try:
        client_id = f"validate-{uuid.uuid4().hex[:8]}".encode()
        body = b"\x00\x04MQTT\x05\x02\x00\x3c\x00" + _string(client_id)
        writer.write(bytes([0x10, len(body)]) + body)
        connack = await asyncio.wait_for(reader.read(64), 5)
        assert connack[:1] == b"\x20" and connack[3] == 0, connack
        body = _string(topic) + b"\x00\x01" + bytes([len(props)]) + props + b"x"
        writer.write(bytes([0x32, len(body)]) + body)
        return await asyncio.wait_for(reader.read(64), 5)
    finally:
        writer.close()


#: every kind of character the codec refuses (see ``strings._REFUSED``)
REFUSED = ["\x00", "\x01", "\x1f", "\x7f", "\x85", "\x9f", "\ufdd0", "\ufffe", "\U0010ffff"]


@pytest.mark.parametrize("char", REFUSED)
async def test_mosquitto_ends_the_session_of_a_publish_with_a_refused_character(char):
    assert string_problem(char) is not None
    answer = await _raw_publish(f"val/a{char}b".encode())
    assert answer[:1] in (b"\xe0", b""), answer  # DISCONNECT (malformed), or closed
    user = b"\x26" + _string(b"k") + _string(f"v{char}".encode())
    assert (await _raw_publish(b"val/a", user))[:1] != b"\x40"
    assert (await _raw_publish(b"val/a", b"\x03" + _string(f"t{char}".encode())))[:1] != b"\x40"


async def test_mosquitto_ends_the_session_of_a_publish_with_a_surrogate():
    assert string_problem("\ud800") is not None
    assert (await _raw_publish(b"val/a\xed\xa0\x80b"))[:1] != b"\x40"


@pytest.mark.parametrize("text", ["a b", "\u00a0", "\ufeff", "\ufdcf", "\U0001f600", "$x"])
async def test_mosquitto_takes_what_the_codec_lets_through(text):
    assert string_problem(text) is None
    assert (await _raw_publish(f"val/{text}".encode()))[:1] == b"\x40"


async def test_a_refused_publish_fails_alone_and_the_next_one_arrives(mosquitto_sub):
    p = f"val-{uuid.uuid4().hex[:8]}"
    conn = MqttConnector(config=MqttConfig(server=f"{HOST}:{PORT}", clientid=p,
                                           reconnect_min="100ms", reconnect_max="500ms"))
    await conn.start()
    try:
        await conn.wait_connected(10)
        with mosquitto_sub(f"{p}/#", 1) as sub:
            with pytest.raises(ValueError, match="U\\+0000"):
                await conn.publish(f"{p}/a\x00b", b"bad", qos=1)
            with pytest.raises(ValueError, match="U\\+0001"):
                await conn.publish(f"{p}/a", b"bad", qos=1,
                                   properties={"User-Property": [("k", "\x01")]})
            await conn.publish(f"{p}/good", b"good", qos=1)
            [msg] = sub.wait(30)
        assert (msg.topic, msg.payload) == (f"{p}/good", b"good")
        assert conn.is_connected and conn.connects == 1
    finally:
        await conn.stop()
