"""The MQTT connector against the real broker: a crashed connection loop, keepalive."""

from __future__ import annotations

import asyncio
import os
import re
import uuid
from collections.abc import Iterable

import pytest

from mqferry._config.models import MqttConfig
from mqferry._errors import MqttUnavailable
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


async def test_two_clients_with_one_client_id_back_off_instead_of_kicking_each_other(caplog):
    # A stalled cluster node and its slot's new owner, or two bridges given one client id: each
    # connect takes the session over from the other. Reconnecting at the shortest delay after a
    # takeover makes them fight several times a second for as long as both run.
    name = f"takeover-{uuid.uuid4().hex[:8]}"
    cfg = config(name).model_copy(update={"reconnect_max": 10.0})
    first = MqttConnector(config=cfg, handler=lambda message, ticket: None)
    second = MqttConnector(config=cfg, handler=lambda message, ticket: None)
    await first.start()
    await until(lambda: first.is_connected)
    await second.start()
    try:
        await asyncio.sleep(6)
        connects = first.connects + second.connects
        print(f"connects in 6 s: {first.connects} + {second.connects}")
    finally:
        await first.stop()
        await second.stop()
    # Reconnecting after 100 ms each time: about 60 connects in 6 s; backing off (0.1, 0.2,
    # 0.4, ... s, jittered, for each of the two): under 20.
    assert connects <= 20, connects
    # Mosquitto closes the taken-over connection without a DISCONNECT reason: the back-off
    # grows because each connection ended at once.
    delays = [float(d) for d in re.findall(r"retrying in ([0-9.]+)s", caplog.text)]
    assert delays and max(delays) >= 0.8, delays


async def test_the_unacknowledged_messages_stay_within_the_receive_maximum():
    # Mosquitto 2.0 sends beyond the receive maximum of CONNECT once acks flow; the client
    # stops reading at the limit, so what it holds is bounded by it plus one read.
    name = f"window-{uuid.uuid4().hex[:8]}"
    loop = asyncio.get_running_loop()
    window: list[int] = []
    received = 0

    def slow(message: Incoming, ticket: Ticket | None) -> None:
        nonlocal received
        assert ticket is not None
        received += 1
        ticket.hold()
        ticket.seal()
        loop.call_later(0.05, ticket.release)  # an action securing it 50 ms later

    conn = MqttConnector(config=config(name, receive_maximum=100), handler=slow)
    await conn.set_subscriptions({f"{name}/#"})
    await conn.start()
    try:
        await until(lambda: conn.is_connected)
        pub = await asyncio.create_subprocess_exec(
            "mosquitto_pub", "-h", HOST, "-p", str(PORT), "-q", "1", "-t", f"{name}/x", "-l",
            stdin=asyncio.subprocess.PIPE)
        assert pub.stdin is not None
        pub.stdin.write((("x" * 200) + "\n").encode() * 5000)
        pub.stdin.close()
        deadline = loop.time() + 60
        while received < 5000 and loop.time() < deadline:
            window.append(len(conn.acks))
            await asyncio.sleep(0.01)
        await pub.wait()
    finally:
        await conn.stop()
    assert received == 5000
    # 100 plus at most one read of ~225-byte packets (64 KiB: 291 at most); without holding
    # back, thousands (16,720 of 20,000 measured with a receive maximum of 100)
    print(f"peak window {max(window)}")
    assert max(window) <= 450, max(window)


async def test_a_disconnect_that_ends_the_session_leaves_nothing_queued_for_it():
    from mqferry._mqtt.connect import open_session

    cfg = config(f"end-{uuid.uuid4().hex[:8]}")
    topic = f"mqferry-test/end/{uuid.uuid4().hex[:8]}"
    proto, connack = await open_session(cfg, client_id=cfg.clientid, clean_start=True,
                                        session_expiry=300, on_publish=lambda m: None)
    await proto.requests.subscribe([(topic, 1)], timeout=10)
    proto.disconnect()  # the session lives on: what is published now is queued for it
    await proto.closed
    pub = await asyncio.create_subprocess_exec(
        "mosquitto_pub", "-h", HOST, "-p", str(PORT), "-t", topic, "-q", "1", "-m", "kept")
    assert await pub.wait() == 0
    got: list[bytes] = []
    proto, connack = await open_session(cfg, client_id=cfg.clientid, clean_start=False,
                                        session_expiry=300,
                                        on_publish=lambda m: got.append(m.payload))
    assert connack.session_present
    await until(lambda: got == [b"kept"])
    proto.disconnect(end_session=True)
    await proto.closed
    pub = await asyncio.create_subprocess_exec(
        "mosquitto_pub", "-h", HOST, "-p", str(PORT), "-t", topic, "-q", "1", "-m", "dropped")
    assert await pub.wait() == 0
    got.clear()
    proto, connack = await open_session(cfg, client_id=cfg.clientid, clean_start=False,
                                        session_expiry=0,
                                        on_publish=lambda m: got.append(m.payload))
    assert not connack.session_present  # the broker dropped it at the DISCONNECT
    await asyncio.sleep(0.5)
    assert got == []
    proto.disconnect()


async def test_publish_with_tells_each_publish_once_in_order_beyond_the_in_flight_window():
    # More QoS 1 publishes than the window holds: the rest wait in the backlog; every one is
    # told once, after the broker's PUBACK, and an independent subscriber gets them all.
    name = f"pubwith-{uuid.uuid4().hex[:8]}"
    topic = f"mqferry-test/{name}"
    sub = await asyncio.create_subprocess_exec(
        "mosquitto_sub", "-h", HOST, "-p", str(PORT), "-q", "1", "-t", topic, "-C", "500",
        "-W", "30", stdout=asyncio.subprocess.PIPE)
    await asyncio.sleep(0.5)  # subscribed before the first publish
    conn = MqttConnector(config=config(name, receive_maximum=20))
    await conn.start()
    outcomes: dict[int, list[BaseException | None]] = {}
    try:
        await until(lambda: conn.is_connected)
        for i in range(500):
            outcomes[i] = []
            conn.publish_with(topic, str(i).encode(), outcomes[i].append, qos=1)
        assert sum(1 for o in outcomes.values() if o) < 500  # most wait for their PUBACK
        await until(lambda: all(outcomes.values()))
    finally:
        await conn.stop()
    assert all(o == [None] for o in outcomes.values())
    out, _ = await sub.communicate()
    assert out.decode().split() == [str(i) for i in range(500)]


async def test_publish_with_refuses_an_invalid_topic_without_telling_and_tells_a_lost_session():
    name = f"pubwith-lost-{uuid.uuid4().hex[:8]}"
    conn = MqttConnector(config=config(name, receive_maximum=5))
    await conn.start()
    told: list[BaseException | None] = []
    try:
        await until(lambda: conn.is_connected)
        with pytest.raises(ValueError, match="invalid MQTT topic"):
            conn.publish_with("a/#", b"x", told.append, qos=1)
        for _ in range(50):  # 5 in flight, 45 in the backlog
            conn.publish_with(f"mqferry-test/{name}", b"x", told.append, qos=1)
    finally:
        await conn.stop()
    await until(lambda: len(told) == 50)
    lost = [o for o in told if o is not None]
    assert lost and all(isinstance(o, MqttUnavailable) for o in lost)


async def test_changing_the_filters_leaves_no_gap_in_which_a_message_matches_neither():
    # Switching between two filters that both match the topic: the new one is subscribed
    # before the old one goes, so every message arrives (some twice, which at-least-once
    # allows). Unsubscribing first lost a few messages per switch.
    name = f"swap-{uuid.uuid4().hex[:8]}"
    got: set[bytes] = set()

    def take(message: Incoming, ticket: Ticket | None) -> None:
        got.add(bytes(message.payload))
        if ticket is not None:
            ticket.seal()

    sub = MqttConnector(config=config(name), handler=take)
    pub = MqttConnector(config=config(f"{name}-pub"), handler=take)
    await sub.set_subscriptions({f"{name}/#"})
    await sub.start()
    await pub.start()
    count = 6000
    try:
        await until(lambda: sub.is_connected and pub.is_connected)

        async def publish() -> None:
            for i in range(count):
                await pub.publish(f"{name}/x", b"%d" % i, qos=1)

        async def switch() -> None:
            for i in range(60):
                await sub.set_subscriptions({f"{name}/+"} if i % 2 == 0 else {f"{name}/#"})
                await asyncio.sleep(0.01)

        await asyncio.gather(publish(), switch())
        await until(lambda: len(got) >= count, timeout=15)
    except AssertionError:
        pass  # reported below, with what was missing
    finally:
        await sub.stop()
        await pub.stop()
    missing = count - len(got)
    assert missing == 0, f"{missing} of {count} messages never arrived"


async def test_each_copy_names_the_filter_of_the_subscription_it_came_for(tmp_path):
    from mqferry._mqtt.subscriptions import SubscriptionIds

    name = f"routes-{uuid.uuid4().hex[:8]}"
    received: list[tuple[str, tuple[str, ...]]] = []

    def take(message: Incoming, ticket: Ticket | None) -> None:
        received.append((message.topic, message.routes))
        if ticket is not None:
            ticket.seal()

    conn = MqttConnector(config=config(name), handler=take)
    conn.subscriber.ids = SubscriptionIds(tmp_path / "s.json")
    filters = [f"{name}/#", f"{name}/+", f"{name}/a"]
    await conn.set_subscriptions(filters)
    await conn.start()
    try:
        await conn.wait_connected(10)
        pub = await asyncio.create_subprocess_exec(
            "mosquitto_pub", "-h", HOST, "-p", str(PORT), "-q", "1", "-V", "5",
            "-t", f"{name}/a", "-m", "m1")
        assert await asyncio.wait_for(pub.wait(), 10) == 0
        await until(lambda: len(received) == 3)
        await asyncio.sleep(0.3)  # no fourth copy
    finally:
        await conn.stop()
    # Mosquitto sends a copy per subscription; each names its own filter
    assert sorted(received) == [(f"{name}/a", (f,)) for f in sorted(filters)]
