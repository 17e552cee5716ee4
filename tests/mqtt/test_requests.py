"""SUBSCRIBE and UNSUBSCRIBE requests on one connection (:mod:`mqferry._mqtt.requests`), in
memory."""

from __future__ import annotations

import asyncio

import pytest

from mqferry import MqttUnavailable
from mqferry._mqtt.protocol import MqttProtocol
from tests.mqtt.twins import BrokerTransport, connection


async def test_subscribe_returns_the_brokers_codes():
    proto, transport = connection()
    subscribing = asyncio.ensure_future(proto.requests.subscribe([("a/#", 1), ("b", 1)]))
    await asyncio.sleep(0)
    sent = transport.sent
    assert sent[0] == 0x82
    proto.data_received(bytes([0x90, 5]) + sent[2:4] + b"\x00\x01\x87")
    assert await subscribing == [1, 0x87]


async def test_subscribe_each_writes_every_subscribe_at_once_and_keeps_each_answer():
    transport = BrokerTransport(refuse={"b"})
    proto = transport.attach(MqttProtocol(on_publish=lambda m: None))
    codes = await proto.requests.subscribe_each([("a", 1, 7), ("b", 1, 8), ("c/#", 0, 200)])
    assert len(transport.writes) == 1  # one write, one round trip
    assert [(s.filters, s.sub_id) for s in transport.subscribes] == [
        (["a"], 7), (["b"], 8), (["c/#"], 200)]  # a SUBSCRIBE each, its identifier its own
    assert len({s.mid for s in transport.subscribes}) == 3
    assert codes == [[1], [0x80], [1]]  # the refusal is the second filter's alone
    assert not proto._asked


async def test_answers_of_a_batch_that_come_out_of_order_go_to_their_own_packet():
    proto, transport = connection()
    subscribing = asyncio.ensure_future(proto.requests.subscribe_each([("a", 1, 1), ("b", 1, 2)]))
    await asyncio.sleep(0)
    [sent] = transport.writes
    first, second = sent[2:4], sent[len(sent) // 2 + 2:len(sent) // 2 + 4]
    proto.data_received(bytes([0x90, 4]) + second + b"\x00\x87")
    assert not subscribing.done()  # the first still waits
    proto.data_received(bytes([0x90, 4]) + first + b"\x00\x01")
    assert await subscribing == [[1], [0x87]]


async def test_a_batch_not_answered_in_full_times_out_and_frees_its_packet_ids():
    proto, transport = connection()
    subscribing = asyncio.ensure_future(
        proto.requests.subscribe_each([("a", 1, 1), ("b", 1, 2)], timeout=0.05))
    await asyncio.sleep(0)
    proto.data_received(bytes([0x90, 4]) + transport.sent[2:4] + b"\x00\x01")
    with pytest.raises(MqttUnavailable, match="timed out"):
        await subscribing
    assert not proto._asked
    proto.hold_back()
    assert proto.held_back  # no answer is due any more


async def test_a_batch_with_a_packet_that_cannot_be_encoded_writes_nothing():
    proto, transport = connection()
    with pytest.raises(ValueError, match="out of range"):
        await proto.requests.subscribe_each([("a", 1, 1), ("b", 1, 1 << 28)])
    assert transport.writes == [] and not proto._asked


async def test_a_lost_connection_fails_a_batch_waiting_for_its_answers():
    proto, transport = connection()
    subscribing = asyncio.ensure_future(proto.requests.subscribe_each([("a", 1, 1), ("b", 1, 2)]))
    await asyncio.sleep(0)
    transport.close()
    with pytest.raises(MqttUnavailable, match="closed the connection"):
        await subscribing
    assert not proto._asked


async def test_a_subscribe_without_an_answer_times_out():
    proto, _ = connection()
    with pytest.raises(MqttUnavailable, match="timed out"):
        await proto.requests.subscribe([("a/#", 1)], timeout=0.05)
