"""MQTT 5 packets encoded and decoded by :mod:`mqferry._mqtt.codec`, checked against paho's."""

from __future__ import annotations

import struct

import pytest
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from mqferry._mqtt import codec, control, strings
from tests.mqtt.twins import publish_packet, varint


def test_decode_publish_reads_every_field():
    packet = publish_packet("d/1", b"again", 5, command=0x3B)  # QoS 1, dup, retain
    msg = codec.decode_publish(packet[0], packet[2:])
    assert (msg.topic, msg.payload, msg.qos, msg.dup, msg.retain, msg.mid, msg.properties) == (
        "d/1", b"again", 1, True, True, 5, None)


def test_decode_publish_reads_properties_and_qos0():
    user = b"\x26" + struct.pack("!H", 8) + b"clientid" + struct.pack("!H", 2) + b"c1"
    packet = publish_packet("a/p", b"props", 0, qos=0, props=varint(len(user)) + user)
    msg = codec.decode_publish(packet[0], packet[2:])
    assert (msg.qos, msg.mid, msg.payload) == (0, 0, b"props")
    assert msg.properties.UserProperty == [("clientid", "c1")]


@pytest.mark.parametrize("ident", [1, 127, 128, 16_383, 16_384, 2_097_152, 268_435_455])
def test_a_publish_with_only_its_subscription_identifier_names_it_and_has_no_properties(ident):
    prop = b"\x0b" + varint(ident)
    packet = publish_packet("s/1", b"body", 4, props=varint(len(prop)) + prop)
    msg = codec.decode_publish(packet[0], packet[2:])
    assert (msg.topic, msg.payload, msg.mid, msg.properties, msg.sub_ids) == (
        "s/1", b"body", 4, None, (ident,))
    assert msg.routes == () and not msg.malformed


def test_subscription_identifiers_beside_other_properties_are_taken_out_of_them():
    user = b"\x26" + struct.pack("!H", 1) + b"k" + struct.pack("!H", 1) + b"v"
    props = b"\x0b\x05" + user + b"\x0b\x81\x01"  # identifiers 5 and 129
    packet = publish_packet("s/2", b"p", 1, props=varint(len(props)) + props)
    msg = codec.decode_publish(packet[0], packet[2:])
    assert msg.sub_ids == (5, 129) and msg.payload == b"p"
    assert msg.properties.UserProperty == [("k", "v")]
    assert not hasattr(msg.properties, "SubscriptionIdentifier")


def test_a_publish_without_identifier_names_none():
    packet = publish_packet("s/3", b"p", 1)
    assert codec.decode_publish(packet[0], packet[2:]).sub_ids == ()


def test_an_identifier_followed_by_a_byte_that_is_no_property_is_marked_not_raised():
    packet = publish_packet("s/4", b"p", 6, props=b"\x03\x0b\x05\x05")
    msg = codec.decode_publish(packet[0], packet[2:])
    assert msg.malformed and msg.mid == 6 and msg.sub_ids == ()


@pytest.mark.parametrize("ident", [0, 1, 300, 268_435_455])
def test_subscribe_packet_carries_the_identifier_as_paho_encodes_it(ident):
    packet = control.subscribe_packet(9, [("a/#", 1)], ident)
    if ident:
        expected = Properties(PacketTypes.SUBSCRIBE)
        expected.SubscriptionIdentifier = ident
        props = expected.pack()
    else:
        props = b"\x00"
    body = struct.pack("!H", 9) + props + struct.pack("!H", 3) + b"a/#\x01"
    assert packet == b"\x82" + varint(len(body)) + body


def test_subscribe_packet_refuses_an_identifier_out_of_range():
    with pytest.raises(ValueError, match="out of range"):
        control.subscribe_packet(1, [("a", 1)], codec.MAX_SUBSCRIPTION_ID + 1)


def test_an_invalid_utf8_topic_keeps_its_bytes():
    packet = publish_packet(b"t/\xff", b"p", 3)
    msg = codec.decode_publish(packet[0], packet[2:])
    assert msg.raw_topic == b"t/\xff" and msg.topic == "t/\ufffd"


#: malformed PUBLISH bodies and what the error names
MALFORMED = [
    (b"\x00", "shorter than its topic length"),
    (b"\x00\x09t/x", "topic longer than the packet"),
    (b"\x00\x01t", "without its packet identifier"),
    (b"\x00\x01t\x00\x01", "without its properties length"),
]


@pytest.mark.parametrize(("body", "why"), MALFORMED)
def test_a_malformed_publish_is_named(body, why):
    with pytest.raises(codec.PacketError, match=why):
        codec.decode_publish(0x32, body)


@pytest.mark.parametrize(("body", "why"), MALFORMED)
def test_a_publish_inside_a_read_is_bounded_by_its_own_length(body, why):
    # The bytes after the packet belong to the next packets of the read: never to this one.
    read = b"\x00\x00\x00" + body + b"\x00\x00t/x\x00\x07" * 4
    with pytest.raises(codec.PacketError, match=why):
        codec.decode_publish(0x32, read, 3, 3 + len(body))


def _string(raw: bytes) -> bytes:
    return struct.pack("!H", len(raw)) + raw


#: PUBLISH properties that cannot be decoded, and what the reason names
UNDECODABLE = [
    (b"\x26\x00", "invalid properties"),  # a user property cut short
    (b"\x26" + _string(b"k") + _string(b"v\xff"), "utf-8"),
    (b"\x26" + _string(b"\xff") + _string(b"v"), "utf-8"),
    (b"\x03" + _string(b"text/\xff"), "utf-8"),
    (b"\x7f\x00", "invalid properties"),  # no such property
]


@pytest.mark.parametrize(("props", "why"), UNDECODABLE)
def test_a_publish_whose_properties_cannot_be_decoded_is_marked_not_raised(props, why):
    # Its bounds are known: it fails alone (acknowledged by its packet id), the read goes on.
    body = _string(b"t/p") + b"\x00\x07" + varint(len(props)) + props + b"payload"
    read = b"\x00\x00" + body + b"\x00\x00t/x"
    msg = codec.decode_publish(0x32, read, 2, 2 + len(body))
    assert (msg.topic, msg.mid, msg.qos, msg.properties, msg.payload) == ("t/p", 7, 1, None, b"")
    assert why in msg.malformed


def test_properties_longer_than_the_packet_are_marked():
    body = _string(b"t/p") + b"\x00\x07" + b"\x05" + b"\x01\x01"  # 5 bytes said, 2 there
    msg = codec.decode_publish(0x32, body)
    assert msg.mid == 7 and msg.malformed


def test_a_good_publish_is_not_marked_and_a_bad_topic_is():
    packet = publish_packet("t/ok", b"p", 3)
    assert codec.decode_publish(packet[0], packet[2:]).malformed == ""
    packet = publish_packet(b"t/\xff", b"p", 3)
    assert "not valid UTF-8" in codec.decode_publish(packet[0], packet[2:]).malformed


#: topics and strings MQTT brokers refuse (Mosquitto ends the session: see
#: tests/integration/test_mqtt_publish_validation.py), and the character each one names
REFUSED_CHARACTERS = ["\x00", "\x01", "\x1f", "\x7f", "\x80", "\x9f", "\ud800", "\udfff",
                      "\ufdd0", "\ufdef", "\ufffe", "\uffff", "\U0001fffe", "\U0010ffff"]


@pytest.mark.parametrize("char", REFUSED_CHARACTERS)
def test_a_string_with_a_character_brokers_refuse_is_named(char):
    why = strings.string_problem(f"out/a{char}b")
    assert why is not None and f"U+{ord(char):04X}" in why
    assert strings.topic_problem(f"out/a{char}b") == why


@pytest.mark.parametrize("text", ["out/a b", "\u00a0", "\ufeff", "\ufdcf", "\ufdf0", "\U0001f600",
                                  "$SYS/x", "a" * 65535, "é" * 32767, "/", "日本/語"])
def test_strings_brokers_take_pass(text):
    assert strings.string_problem(text) is None
    assert strings.topic_problem(text) is None


@pytest.mark.parametrize(("topic", "why"), [
    ("", "empty"), ("a/+", "wildcard"), ("#", "wildcard"), ("a" * 65536, "65535 bytes"),
    ("é" * 32768, "65535 bytes (65536)"), ("a\x00", "U+0000")])
def test_topic_problem_names_what_is_wrong(topic, why):
    assert why in (strings.topic_problem(topic) or "")


def test_a_publish_inside_a_read_is_decoded_where_it_lies():
    first = publish_packet("d/1", b"one", 5, command=0x32)
    second = publish_packet("d/22", b"two!", 6, command=0x33)
    read = first + second
    msg = codec.decode_publish(second[0], read, len(first) + 2, len(read))
    assert (msg.topic, msg.payload, msg.mid, msg.retain) == ("d/22", b"two!", 6, True)
    msg = codec.decode_publish(first[0], read, 2, len(first))
    assert (msg.topic, msg.payload, msg.mid) == ("d/1", b"one", 5)


def test_publish_packet_round_trips_and_matches_an_independent_encoding():
    props = Properties(PacketTypes.PUBLISH)
    props.UserProperty = [("k", "v")]
    props.ContentType = "text/plain"
    packet = codec.publish_packet("o/ü", b"body", 1, True, mid=300, properties=props)
    assert packet[0] == 0x33
    msg = codec.decode_publish(packet[0], packet[2:])
    assert (msg.topic, msg.payload, msg.mid, msg.retain) == ("o/ü", b"body", 300, True)
    assert msg.properties.UserProperty == [("k", "v")]
    assert msg.properties.ContentType == "text/plain"
    assert packet == publish_packet("o/ü", b"body", 300, props=props.pack(), command=0x33)
    assert codec.publish_packet("o/0", b"", 0, False, mid=0, properties=None) == \
        b"\x30\x06\x00\x03o/0\x00"


def test_publish_packet_refuses_what_mqtt_cannot_carry():
    with pytest.raises(ValueError, match="longer than 65535"):
        codec.publish_packet("t" * 70_000, b"", 1, False, mid=1, properties=None)
    with pytest.raises(UnicodeEncodeError):
        codec.publish_packet("t/\udcff", b"", 1, False, mid=1, properties=None)


def test_acks_back_to_back():
    assert codec.puback_packets([1, 258]) == bytes([0x40, 2, 0, 1, 0x40, 2, 1, 2])
    assert codec.ack_packets([(1, 1), (2, 2), (3, 0)]) == bytes([0x40, 2, 0, 1, 0x50, 2, 0, 2])
    assert codec.ack_packets([(65535, 1), (256, 2)]) == bytes([0x40, 2, 255, 255, 0x50, 2, 1, 0])
    assert codec.ack_packets([]) == b""


def test_connect_packet_carries_the_session_settings():
    packet = control.connect_packet("cid", keepalive=30, clean_start=False, session_expiry=7200,
                                  receive_maximum=500, username="u", password="p")
    assert packet[0] == 0x10
    body = packet[2:]
    assert body[:7] == b"\x00\x04MQTT\x05"
    assert body[7] == 0x80 | 0x40  # username, password; clean start off
    assert body[8:10] == (30).to_bytes(2, "big")
    props, used = Properties(PacketTypes.CONNECT).unpack(body[10:])
    assert (props.SessionExpiryInterval, props.ReceiveMaximum) == (7200, 500)
    assert body[10 + used:] == b"\x00\x03cid\x00\x01u\x00\x01p"
    clean = control.connect_packet("c", keepalive=1, clean_start=True, session_expiry=0,
                                 receive_maximum=1)
    assert clean[2 + 7] == 0x02


def test_connack_and_suback_decoding():
    props = Properties(PacketTypes.CONNACK)
    props.ReceiveMaximum = 20
    props.ServerKeepAlive = 5
    connack = control.decode_connack(b"\x01\x00" + props.pack())
    assert (connack.reason, connack.session_present) == (0, True)
    assert (connack.get("ReceiveMaximum", 65535), connack.get("ServerKeepAlive", 60)) == (20, 5)
    assert control.decode_connack(b"\x00\x86\x00").reason == 0x86
    assert control.suback_codes(b"\x00\x07\x00\x01\x87") == (7, [1, 0x87])
    reason = Properties(PacketTypes.SUBACK)
    reason.ReasonString = "no"
    assert control.suback_codes(b"\x01\x00" + reason.pack() + b"\x80") == (256, [0x80])
    assert codec.reason_name(codec.CONNACK, 0x86) == "Bad user name or password"


def test_subscribe_and_unsubscribe_packets():
    assert control.subscribe_packet(9, [("a/#", 1)]) == b"\x82\x09\x00\x09\x00\x00\x03a/#\x01"
    assert control.unsubscribe_packet(9, ["a/#"]) == b"\xa2\x08\x00\x09\x00\x00\x03a/#"


def test_frame_at_splits_packets_cut_at_any_byte():
    packets = [codec.puback_packets([7]), codec.PINGREQ,
               codec.publish_packet("t", b"x" * 300, 1, False, mid=9, properties=None)]
    # fixed headers: 2 bytes, 2 bytes, 3 bytes (a remaining length over 127 takes two)
    expected = [(p[0], p[h:]) for p, h in zip(packets, (2, 2, 3), strict=True)]
    data = b"".join(packets)
    for cut in range(len(data) + 1):
        frames, rest = [], b""
        for chunk in (data[:cut], data[cut:]):
            buf, pos = rest + chunk, 0
            while (frame := codec.frame_at(buf, pos, len(buf))) is not None:
                frames.append((buf[pos], buf[frame[0]:frame[1]]))
                pos = frame[1]
            rest = buf[pos:]
        assert (frames, rest) == (expected, b""), cut


def test_frame_at_refuses_a_remaining_length_over_four_bytes():
    assert codec.frame_at(b"\x30\xff\xff\xff", 0, 4) is None  # not complete yet
    with pytest.raises(codec.PacketError, match="over 4 bytes"):
        codec.frame_at(b"\x30\xff\xff\xff\xff\x01", 0, 6)


def test_disconnect_packets():
    assert control.disconnect_packet() == b"\xe0\x00"
    ended = control.disconnect_packet(end_session=True)
    # reason 0, then the Session Expiry Interval property (0x11) set to 0
    assert ended[0] == 0xE0 and ended[1] == len(ended) - 2
    assert ended[2:] == b"\x00\x05\x11" + (0).to_bytes(4, "big")
