"""The MQTT connector against the real broker: a crashed connection loop, keepalive."""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import Iterable

import pytest

from mqferry._config.models import MqttConfig
from mqferry._mqtt.client import Incoming, MqttConnector
from mqferry._runtime.delivery import Ticket
from mqferry._types import Status

pytestmark = pytest.mark.integration

HOST = os.environ.get("MQFERRY_MQTT_HOST", "127.0.0.1")
PORT = int(os.environ.get("MQFERRY_MQTT_PORT", "1883"))


def config(name: str, **changes: object) -> MqttConfig:
    return MqttConfig(server=f"{HOST}:{PORT}", clientid=name, session_expiry="60s",
                      reconnect_min="100ms", reconnect_max="500ms", **changes)


async def until(check, timeout: float = 10.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not check():
        assert asyncio.get_running_loop().time() < deadline, "timed out"
        await asyncio.sleep(0.02)


class Crashing(MqttConnector):
    """Its connection loop crashes once, with an error the loop does not expect, after the
    broker redelivered the messages of the previous connection on the new one."""

    crash_after: int | None = None

    async def _subscribe(self, proto, filters: Iterable[str]) -> None:
        if self.crash_after is not None:
            received, self.crash_after = self.crash_after, None
            await until(lambda: len(self.received) > received)
            raise RuntimeError("injected failure")
        await super()._subscribe(proto, filters)

    received: list[tuple[Incoming, Ticket | None]]


async def test_a_crashed_loop_is_reported_restarted_and_never_acks_for_a_dead_connection():
    name = f"crash-{uuid.uuid4().hex[:8]}"
    received: list[tuple[Incoming, Ticket | None]] = []

    def hold(message: Incoming, ticket: Ticket | None) -> None:
        assert ticket is not None
        ticket.hold()
        ticket.seal()
        received.append((message, ticket))

    conn = Crashing(config=config(name), handler=hold)
    conn.received = received
    await conn.set_subscriptions([f"{name}/#"])
    await conn.start()
    try:
        await conn.wait_connected(10)
        pub = await asyncio.create_subprocess_exec(
            "mosquitto_pub", "-h", HOST, "-p", str(PORT), "-q", "1", "-V", "5",
            "-t", f"{name}/a", "-m", "m1")
        assert await asyncio.wait_for(pub.wait(), 10) == 0
        await until(lambda: len(received) == 1)
        # A new connection: the broker redelivers m1 on it, then the loop crashes.
        conn.crash_after = 1
        await conn.stop()
        await conn.start()
        await until(lambda: conn._status.status is Status.DISCONNECTED)
        health = await conn.health()
        assert "connection task failed: RuntimeError('injected failure')" in health.reason
        assert "restarting in" in health.reason
        await until(lambda: conn.is_connected and len(received) == 3)  # restarted; m1 again
        assert [m.payload for m, _ in received] == [b"m1"] * 3
        # The earlier connections' tickets settle late: they must not ack m1 on this one.
        received[0][1].release()
        received[1][1].release()
        await asyncio.sleep(0.3)
        await conn.stop()
        await conn.start()
        await until(lambda: len(received) == 4)  # still unacknowledged: redelivered again
        assert received[3][0].payload == b"m1" and received[3][0].dup
        received[3][1].release()
    finally:
        await conn.stop()


async def test_keepalive_keeps_an_idle_session_up():
    name = f"idle-{uuid.uuid4().hex[:8]}"
    conn = MqttConnector(config=config(name, keepalive="1s"))
    await conn.start()
    try:
        await conn.wait_connected(10)
        await asyncio.sleep(3.5)  # the broker drops a silent client after 1.5 keepalives
        assert conn.is_connected and conn.connects == 1
    finally:
        await conn.stop()
