"""The connector's acknowledgements, in order and together (in memory, no broker)."""

import asyncio
import logging

from mqferry._config.models import MqttConfig
from mqferry._mqtt.client import ACK_LINGER, MqttConnector
from mqferry._mqtt.codec import InMessage
from mqferry._mqtt.protocol import MqttProtocol
from tests.mqtt.twins import MemoryTransport


def connector(delivery: str, handler) -> tuple[MqttConnector, MemoryTransport]:
    conn = MqttConnector(config=MqttConfig(delivery=delivery), handler=handler)
    transport = MemoryTransport()
    conn._proto = transport.attach(MqttProtocol(on_publish=conn._on_message))
    return conn, transport


async def acks_sent(transport: MemoryTransport, conn: MqttConnector) -> bytes:
    await asyncio.sleep(0)  # the acks of a turn leave at its end
    conn._proto.flush()
    return transport.sent


def message(mid: int, *, qos: int = 1, topic: str = "t/1", raw_topic: bytes = b"") -> InMessage:
    return InMessage(topic, b"x", qos=qos, retain=False, dup=False, mid=mid, properties=None,
                     raw_topic=raw_topic)


async def test_at_least_once_acks_a_run_of_messages_in_one_write():
    tickets = []
    conn, fake = connector("at_least_once", lambda m, t: (t.hold(), tickets.append(t), t.seal()))
    for mid in (1, 2, 3):
        conn._on_message(message(mid))
    assert await acks_sent(fake, conn) == b""
    tickets[1].release()
    tickets[2].release()
    assert await acks_sent(fake, conn) == b""  # message 1 is still held: nothing may overtake it
    tickets[0].release()
    assert await acks_sent(fake, conn) == bytes([0x40, 2, 0, 1, 0x40, 2, 0, 2, 0x40, 2, 0, 3])


async def test_at_most_once_acks_a_qos1_message_once_its_ticket_is_sealed_and_qos0_never():
    seen = []
    conn, fake = connector("at_most_once", lambda m, t: (seen.append((m.mid, t)),
                                                         t and t.seal()))
    conn._on_message(message(7))
    conn._on_message(message(0, qos=0))
    assert [mid for mid, _ in seen] == [7, 0] and seen[1][1] is None
    assert await acks_sent(fake, conn) == b""  # a lone ack lingers for company
    await asyncio.sleep(ACK_LINGER * 2)
    assert fake.sent == bytes([0x40, 2, 0, 7])


async def test_at_most_once_acks_of_a_trickle_leave_as_one_write():
    conn, fake = connector("at_most_once", lambda m, t: t.seal())
    for mid in (1, 2, 3):  # one message a turn, as a slow publisher's arrive
        conn._on_message(message(mid))
        await asyncio.sleep(0)
    assert fake.writes == []
    await asyncio.sleep(ACK_LINGER * 2)
    assert fake.writes == [bytes([0x40, 2, 0, 1, 0x40, 2, 0, 2, 0x40, 2, 0, 3])]


async def test_at_most_once_acks_leave_with_the_turn_once_enough_are_pending():
    # receive maximum 4: from 2 pending on, nothing lingers (reading stops at 4 until 2 are
    # acknowledged, and a lingering run would hold that up)
    conn = MqttConnector(config=MqttConfig(delivery="at_most_once", receive_maximum=4),
                         handler=lambda m, t: t.seal())
    fake = MemoryTransport()
    conn._proto = fake.attach(MqttProtocol(on_publish=conn._on_message))
    conn._on_message(message(1))
    await asyncio.sleep(0)
    assert fake.writes == []  # one pending: it lingers
    conn._on_message(message(2))
    await asyncio.sleep(0)
    assert fake.writes == [bytes([0x40, 2, 0, 1, 0x40, 2, 0, 2])]


async def test_at_least_once_acks_never_linger():
    tickets = []
    conn, fake = connector("at_least_once", lambda m, t: (t.hold(), tickets.append(t), t.seal()))
    conn._on_message(message(5))
    tickets[0].release()
    await asyncio.sleep(0)
    assert fake.writes == [bytes([0x40, 2, 0, 5])]


async def test_a_topic_that_is_not_utf8_is_dropped_and_acked_in_order(caplog):
    tickets = []
    conn, fake = connector("at_least_once", lambda m, t: (t.hold(), tickets.append(t), t.seal()))
    conn._on_message(message(1))
    with caplog.at_level(logging.WARNING):
        conn._on_message(message(2, topic="t/\ufffd", raw_topic=b"t/\xff"))
    assert len(tickets) == 1  # the handler never saw message 2
    assert "not valid UTF-8" in caplog.text and "t/\\xff" in caplog.text
    assert await acks_sent(fake, conn) == b""  # its ack waits behind message 1
    tickets[0].release()
    assert await acks_sent(fake, conn) == bytes([0x40, 2, 0, 1, 0x40, 2, 0, 2])


async def test_qos2_messages_are_acked_with_pubrec():
    tickets = []
    conn, fake = connector("at_least_once", lambda m, t: (t.hold(), tickets.append(t), t.seal()))
    conn._on_message(message(4, qos=2))
    assert await acks_sent(fake, conn) == b""
    tickets[0].release()
    assert await acks_sent(fake, conn) == bytes([0x50, 2, 0, 4])


async def test_acks_of_a_lost_connection_are_never_sent_on_the_next():
    tickets = []
    conn, fake = connector("at_least_once", lambda m, t: (t.hold(), tickets.append(t), t.seal()))
    conn._on_message(message(1))
    conn._drop_session()  # the connection is gone; the broker redelivers message 1
    assert fake.sent == b"\xe0\x00"  # DISCONNECT, without the ack
    again = MemoryTransport()
    conn._proto = again.attach(MqttProtocol(on_publish=conn._on_message))
    tickets[0].release()  # message 1's action finished late: its mid means nothing now
    conn._on_message(message(1))  # the redelivery, same mid
    tickets[1].release()
    assert await acks_sent(again, conn) == bytes([0x40, 2, 0, 1])  # once, for the redelivery


async def test_the_acks_of_one_turn_leave_as_one_run():
    runs: list[list[tuple[int, int]]] = []
    tickets = []
    conn, fake = connector("at_least_once", lambda m, t: (t.hold(), tickets.append(t), t.seal()))
    sent_acks = conn._send_acks
    conn.acks._send_acks = lambda acks: (runs.append(list(acks)), sent_acks(acks))
    for mid in range(1, 6):
        conn._on_message(message(mid))
    for ticket in tickets:  # a Kafka batch secures its records one after the other
        ticket.release()
    assert runs == []  # not one call per message: at the end of the turn
    await asyncio.sleep(0)
    assert runs == [[(1, 1), (2, 1), (3, 1), (4, 1), (5, 1)]]
    assert await acks_sent(fake, conn) == b"".join(bytes([0x40, 2, 0, mid]) for mid in range(1, 6))


async def test_acks_secured_in_the_last_turn_leave_before_the_disconnect():
    tickets = []
    conn, fake = connector("at_least_once", lambda m, t: (t.hold(), tickets.append(t), t.seal()))
    conn._on_message(message(1))
    conn._on_message(message(2))
    tickets[0].release()  # secured; its ack is due at the end of this turn
    conn._drop_session()  # ... but the session ends first
    assert fake.sent == bytes([0x40, 2, 0, 1]) + b"\xe0\x00"  # the ack, then DISCONNECT


async def test_a_publish_whose_properties_cannot_be_encoded_fails_alone_and_frees_its_slot():
    # receive maximum 2: two unencodable publishes must not use up the window for good
    conn = MqttConnector(config=MqttConfig(receive_maximum=2), handler=lambda m, t: t.seal())
    fake = MemoryTransport()
    conn._proto = fake.attach(MqttProtocol(on_publish=conn._on_message))
    conn._connected.set()
    told: list = []
    for _ in range(3):
        conn.publish_with("out/1", b"x", told.append, qos=1,
                          properties={"Message-Expiry-Interval": 2**33})
    assert len(told) == 3 and all(isinstance(e, ValueError) for e in told)
    assert "Message-Expiry-Interval" in str(told[0]) or "properties" in str(told[0])
    conn.publish_with("out/1", b"good", told.append, qos=1)
    conn._proto.flush()
    assert fake.sent.startswith(bytes([0x32]))  # the good publish went out at once
    assert b"good" in fake.sent


async def test_publish_takes_bytes_like_payloads_and_truthy_retain_flags():
    conn = MqttConnector(config=MqttConfig(), handler=lambda m, t: t.seal())
    fake = MemoryTransport()
    conn._proto = fake.attach(MqttProtocol(on_publish=conn._on_message))
    conn._connected.set()
    told: list = []
    conn.publish_with("a", bytearray(b"one"), told.append, qos=0, retain=1)
    conn.publish_with("b", memoryview(b"two"), told.append, qos=0, retain=0)
    conn._proto.flush()
    assert told == [None, None]
    # PUBLISH with retain set, topic "a", no properties, "one"; then without retain
    assert fake.sent == b"\x31\x07\x00\x01a\x00one" + b"\x30\x07\x00\x01b\x00two"
