"""One MQTT connection's packets (:class:`mqferry._mqtt.protocol.MqttProtocol`), in memory."""

from __future__ import annotations

import asyncio
import logging

import pytest

from mqferry import MqttUnavailable
from mqferry._errors import DeliveryError
from mqferry._mqtt.protocol import MqttProtocol
from tests.mqtt.twins import connection, publish_packet


async def test_one_read_hands_over_every_packet_in_it():
    received: list = []
    proto, _ = connection(received)
    proto.data_received(b"".join(publish_packet("t/1", f"m{i}".encode(), i + 1)
                                 for i in range(50)))
    assert [m.payload for m in received] == [f"m{i}".encode() for i in range(50)]
    assert [m.mid for m in received] == list(range(1, 51))


@pytest.mark.parametrize("cut", [1, 2, 3, 200, 201])
async def test_a_packet_cut_inside_its_length_bytes_or_body_is_completed_later(cut):
    received: list = []
    proto, _ = connection(received)
    packet = publish_packet("t/long", b"x" * 20_000, 9)  # a 3-byte remaining length
    proto.data_received(packet[:cut])
    assert received == []
    proto.data_received(packet[cut:] + publish_packet("t/2", b"next", 2))
    assert [m.payload for m in received] == [b"x" * 20_000, b"next"]


async def test_a_malformed_packet_closes_the_connection_with_its_reason(caplog):
    received: list = []
    proto, transport = connection(received)
    with caplog.at_level(logging.WARNING):
        proto.data_received(b"\x32\x01\x00")
    assert received == [] and transport.aborted
    reason = await proto.closed
    assert "PUBLISH shorter than its topic length" in reason and reason in caplog.text


async def test_acks_written_while_handling_a_read_leave_in_one_write():
    proto, transport = connection()
    proto._on_publish = lambda m: proto.send_acks([(m.mid, m.qos)])
    proto.data_received(b"".join(publish_packet("t", b"x", mid) for mid in (1, 2, 3)))
    assert transport.writes == [b"".join(bytes([0x40, 2, 0, m]) for m in (1, 2, 3))]


async def test_own_publishes_settle_on_their_ack_and_fail_on_an_error_code():
    released: list = []
    proto, transport = connection(released=released)
    ok: list = []
    refused: list = []
    q0: list = []
    q2: list = []
    proto.publish("o/1", b"a", qos=1, retain=False, properties=None, settled=ok.append)
    proto.publish("o/2", b"b", qos=1, retain=False, properties=None, settled=refused.append)
    proto.publish("o/0", b"c", qos=0, retain=False, properties=None, settled=q0.append)
    proto.publish("o/3", b"d", qos=2, retain=False, properties=None, settled=q2.append)
    assert q0 == [None] and ok == []  # QoS 0 settles as it is written
    proto.flush()
    assert len(transport.writes) == 1  # four publishes, one write
    proto.data_received(bytes([0x40, 3, 0, 1, 0x10]) + bytes([0x40, 3, 0, 2, 0x87])
                        + bytes([0x40, 2, 0, 99]) + bytes([0x50, 2, 0, 3]))
    assert ok == [None] and len(released) == 2  # 0x10 "no matching subscribers" is fine
    [err] = refused
    assert isinstance(err, DeliveryError)
    assert err.reason == "failed.refused" and "Not authorized" in str(err)
    assert transport.writes[-1] == bytes([0x62, 2, 0, 3])  # PUBREL; QoS 2 done on PUBCOMP
    assert q2 == []
    proto.data_received(bytes([0x70, 2, 0, 3]))
    assert q2 == [None] and len(released) == 3
    assert (ok, refused, q0) == ([None], [err], [None])  # each told once


async def test_a_settled_callback_that_raises_is_logged_and_the_read_goes_on(caplog):
    released: list = []
    proto, _ = connection(released=released)
    after: list = []

    def broken(outcome):
        raise RuntimeError("a bug in a plugin's callback")

    proto.publish("o/1", b"a", qos=1, retain=False, properties=None, settled=broken)
    proto.publish("o/2", b"b", qos=1, retain=False, properties=None, settled=after.append)
    proto.data_received(bytes([0x40, 2, 0, 1]) + bytes([0x40, 2, 0, 2]))
    assert after == [None] and len(released) == 2
    assert proto.is_open
    assert "settled callback raised" in caplog.text and "a bug in a plugin" in caplog.text


async def test_a_lost_connection_fails_what_is_in_flight():
    proto, transport = connection()
    outcomes: list = []
    proto.publish("o/1", b"a", qos=1, retain=False, properties=None, settled=outcomes.append)
    subscribing = asyncio.ensure_future(proto.requests.subscribe([("a/#", 1)]))
    await asyncio.sleep(0)
    transport.close()
    assert await proto.closed == "the broker closed the connection"
    [lost] = outcomes
    assert isinstance(lost, MqttUnavailable) and "lost before the broker's ack" in str(lost)
    with pytest.raises(MqttUnavailable):
        await subscribing


async def test_a_disconnect_from_the_broker_names_its_reason():
    proto, transport = connection()
    proto.data_received(b"\xe0\x02\x8e\x00")
    assert await proto.closed == "the broker disconnected: Session taken over"
    assert transport.closed


async def test_holding_back_pauses_reading_until_go_on_and_not_while_an_answer_is_due():
    proto, transport = connection()
    proto.hold_back()
    assert proto.held_back and not transport.reading
    proto.go_on()
    assert not proto.held_back and transport.reading
    # a publish of ours waits for its PUBACK on this connection: reading must go on (a
    # republish's ack may be what releases the held messages)
    outcomes: list = []
    proto.publish("out/t", b"x", qos=1, retain=False, properties=None, settled=outcomes.append)
    proto.hold_back()
    assert not proto.held_back and transport.reading
    proto.data_received(bytes([0x40, 2, 0, 1]))  # its PUBACK (mid 1)
    assert outcomes == [None]
    proto.hold_back()
    assert proto.held_back
    # a publish made while held back resumes reading, for its ack
    proto.publish("out/t", b"y", qos=1, retain=False, properties=None, settled=outcomes.append)
    assert not proto.held_back and transport.reading


def _read(proto: MqttProtocol, data: bytes) -> None:
    """Hand ``data`` over as the event loop's transport does: into the protocol's buffer."""
    buf = proto.get_buffer(len(data))
    buf[:len(data)] = data
    proto.buffer_updated(len(data))


def _filling(proto: MqttProtocol) -> bytes:
    """PUBLISH packets of exactly one full read buffer (the last one cut, completed later)."""
    size = len(proto.get_buffer(-1))
    packets = b"".join(publish_packet("t/1", b"p" * 200, i % 65535 + 1) for i in range(400))
    assert len(packets) > size
    return packets[:size]


async def test_a_read_that_filled_the_buffer_waits_for_the_next_turn_of_the_loop():
    received: list = []
    proto, transport = connection(received)
    _read(proto, _filling(proto))
    assert received and not transport.reading  # more may wait: let the rest of the loop run
    await asyncio.sleep(0)
    assert transport.reading


async def test_a_read_that_did_not_fill_the_buffer_reads_on():
    received: list = []
    proto, transport = connection(received)
    _read(proto, publish_packet("t/1", b"x", 1))
    assert len(received) == 1 and transport.reading


async def test_holding_back_outlasts_the_end_of_a_turn():
    proto, transport = connection()
    _read(proto, _filling(proto))
    proto.hold_back()
    await asyncio.sleep(0)
    assert proto.held_back and not transport.reading  # the turn ended; the hold-back did not
    proto.go_on()
    assert transport.reading


async def test_go_on_during_a_turn_leaves_the_resume_to_the_turn():
    proto, transport = connection()
    proto.hold_back()
    proto.go_on()
    _read(proto, _filling(proto))
    proto.hold_back()
    proto.go_on()
    assert not transport.reading
    await asyncio.sleep(0)
    assert transport.reading
