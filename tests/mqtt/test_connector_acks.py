"""The connector's acknowledgements for messages from the fast reader (no broker needed)."""

import logging

import pytest

from mqferry.config.models import MqttConfig
from mqferry.mqtt.client import MqttConnector
from mqferry.mqtt.paho_io import InMessage


class FakePaho:
    def __init__(self) -> None:
        self.queued: list[bytes] = []
        self.acked: list[tuple[int, int]] = []

    def _packet_queue(self, command, packet, mid, qos):
        assert command == 0x40 and mid == 0 and qos == 0
        self.queued.append(packet)

    def ack(self, mid, qos):
        self.acked.append((mid, qos))


class FakeClient:
    def __init__(self) -> None:
        self._client = FakePaho()


def message(mid: int, *, qos: int = 1, topic: str = "t/1", raw_topic: bytes = b"") -> InMessage:
    return InMessage(topic, b"x", qos=qos, retain=False, dup=False, mid=mid, properties=None,
                     raw_topic=raw_topic)


def connector(delivery: str, handler) -> tuple[MqttConnector, FakePaho]:
    conn = MqttConnector(config=MqttConfig(delivery=delivery), handler=handler)
    client = FakeClient()
    conn._client = client  # type: ignore[assignment]
    return conn, client._client


def test_at_least_once_acks_a_run_of_messages_as_one_queued_packet():
    tickets = []
    conn, fake = connector("at_least_once", lambda m, t: (t.hold(), tickets.append(t), t.seal()))
    for mid in (1, 2, 3):
        conn._on_message(message(mid))
    assert fake.queued == []
    tickets[1].release()
    tickets[2].release()
    assert fake.queued == []  # message 1 is still held: nothing may overtake it
    tickets[0].release()
    assert fake.queued == [bytes([0x40, 2, 0, 1, 0x40, 2, 0, 2, 0x40, 2, 0, 3])]


def test_at_most_once_acks_a_qos1_message_once_its_ticket_is_sealed_and_qos0_never():
    seen = []
    conn, fake = connector("at_most_once", lambda m, t: (seen.append((m.mid, t)),
                                                         t and t.seal()))
    conn._on_message(message(7))
    conn._on_message(message(0, qos=0))
    assert [mid for mid, _ in seen] == [7, 0] and seen[1][1] is None
    assert fake.queued == [bytes([0x40, 2, 0, 7])]


def test_a_topic_that_is_not_utf8_is_dropped_and_acked_in_order(caplog):
    tickets = []
    conn, fake = connector("at_least_once", lambda m, t: (t.hold(), tickets.append(t), t.seal()))
    conn._on_message(message(1))
    with caplog.at_level(logging.WARNING):
        conn._on_message(message(2, topic="t/\ufffd", raw_topic=b"t/\xff"))
    assert len(tickets) == 1  # the handler never saw message 2
    assert "not valid UTF-8" in caplog.text and "t/\\xff" in caplog.text
    assert fake.queued == []  # its ack waits behind message 1
    tickets[0].release()
    assert fake.queued == [bytes([0x40, 2, 0, 1, 0x40, 2, 0, 2])]


def test_qos2_acks_go_through_paho():
    tickets = []
    conn, fake = connector("at_least_once", lambda m, t: (t.hold(), tickets.append(t), t.seal()))
    conn._on_message(message(4, qos=2))
    tickets[0].release()
    assert fake.acked == [(4, 2)] and fake.queued == []


async def test_own_publishes_complete_on_their_puback_and_fail_on_an_error_code():
    import asyncio

    from mqferry.errors import DeliveryError
    from mqferry.mqtt.client import _Client

    released = []
    client = _Client(lambda m: None, lambda: released.append(1), hostname="127.0.0.1")
    loop = asyncio.get_running_loop()
    ok, refused = loop.create_future(), loop.create_future()
    client._mqferry_publishes.update({1: ok, 2: refused})
    assert client.on_puback(1, 0x10)  # "no matching subscribers" is a success
    assert client.on_puback(2, 0x87)
    assert not client.on_puback(3, 0)  # not ours: left to paho
    assert ok.result() is None and len(released) == 2
    with pytest.raises(DeliveryError) as err:
        refused.result()
    assert err.value.reason == "failed.refused" and "Not authorized" in str(err.value)
