"""The keepalive of one connection (:mod:`mqferry._mqtt.keepalive`), in memory."""

from __future__ import annotations

import asyncio

from tests.mqtt.twins import connection


async def test_keepalive_pings_when_silent_and_drops_a_silent_broker():
    proto, transport = connection()
    proto.start_keepalive(0.2)
    await asyncio.sleep(0.15)
    assert b"\xc0\x00" in transport.writes  # we were silent for half the interval
    proto.data_received(b"\xd0\x00")  # PINGRESP: the broker is alive
    await asyncio.sleep(0.2)
    assert not transport.closed
    reason = await asyncio.wait_for(proto.closed, 1)
    assert reason.startswith("keepalive: no data from the broker") and transport.aborted


async def test_keepalive_pings_a_broker_that_only_listens():
    proto, transport = connection()
    proto.start_keepalive(0.2)
    for _ in range(8):  # publishing QoS 0 all along: we are never silent, the broker is
        proto.write(b"\x30\x03\x00\x01t")
        proto.flush()
        await asyncio.sleep(0.02)
    assert b"\xc0\x00" in transport.writes
    assert not transport.closed
