"""Our publishes on one session (:mod:`mqferry._mqtt.outbox`): the in-flight window, in memory."""

from __future__ import annotations

import pytest

from mqferry import MqttUnavailable
from mqferry._mqtt.outbox import Outbox
from tests.mqtt.twins import connection


def puback(mid: int) -> bytes:
    return bytes((0x40, 2, mid >> 8, mid & 0xFF))


async def test_publishes_beyond_the_window_wait_in_order_and_leave_as_acks_free_slots():
    proto, transport = connection()
    outbox = Outbox(10, "broker as c")
    proto._on_released = lambda: outbox.released(proto)
    outbox.opened(2)  # the broker takes two in flight
    told: list = []
    for i in range(4):
        outbox.publish(proto, f"o/{i}", b"x", lambda e, i=i: told.append((i, e)), qos=1,
                       retain=False, properties=None)
    proto.flush()
    assert transport.sent.count(b"o/") == 2  # o/2 and o/3 wait
    proto.data_received(puback(1))
    assert told == [(0, None)] and transport.sent.count(b"o/") == 3
    assert b"o/2" in transport.sent and b"o/3" not in transport.sent


async def test_a_publish_that_cannot_be_written_gives_its_slot_back():
    proto, transport = connection()
    outbox = Outbox(1, "broker as c")
    proto.max_packet_size = 50
    told: list = []
    outbox.publish(proto, "o/big", b"x" * 100, told.append, qos=1, retain=False,
                   properties=None)
    [err] = told
    assert isinstance(err, ValueError) and "Maximum Packet Size" in str(err)
    outbox.publish(proto, "o/next", b"x", told.append, qos=1, retain=False, properties=None)
    proto.flush()
    assert b"o/next" in transport.sent  # not stuck behind a slot the bad one kept


async def test_an_invalid_topic_is_refused_before_anything_is_told():
    proto, _ = connection()
    told: list = []
    with pytest.raises(ValueError, match="invalid MQTT topic"):
        Outbox(1, "s").publish(proto, "o/#", b"x", told.append, qos=1, retain=False,
                               properties=None)
    assert told == []


async def test_a_lost_session_tells_each_waiting_publish_and_opens_the_window_again():
    proto, _ = connection()
    outbox = Outbox(1, "broker as c")
    told: list = []
    for i in range(3):
        outbox.publish(proto, f"o/{i}", b"x", told.append, qos=1, retain=False,
                       properties=None)
    outbox.lost("the MQTT connection was lost before the broker's ack")
    assert len(told) == 2 and all(isinstance(e, MqttUnavailable) for e in told)
    assert told[0].session == "broker as c"
    proto2, transport2 = connection()
    outbox.publish(proto2, "o/new", b"x", told.append, qos=1, retain=False, properties=None)
    proto2.flush()
    assert b"o/new" in transport2.sent
