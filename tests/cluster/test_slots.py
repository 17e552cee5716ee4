"""Shared MQTT ingress through session slots, on the in-memory cluster and MQTT twins."""

from __future__ import annotations

import asyncio
import copy
from typing import Any

import pytest

from mqferry._cluster.slots import SlotSessions
from mqferry._config import validate_config
from mqferry._plugins import load_plugins
from mqferry._types import Status
from mqferry.testing import ClusterBus, MqttTwin, RecordingAction, build_app, wait_until

CONFIG: dict[str, Any] = {
    "mqtt": {"clientid": "bridge", "session_expiry": "10m"},
    "cluster": {"name": "plant-7", "session_slots": 6, "bootstrap_hosts": "127.0.0.1:1"},
    "rules": {"r": {"sql": 'SELECT payload FROM "t/#"'}},
}


@pytest.fixture(scope="module")
def plugins():
    return load_plugins()


class Node:
    """One node of the in-memory cluster: an app on MQTT twins, its slot sessions."""

    def __init__(self, plugins, bus: ClusterBus, name: str, *, hold: bool = False,
                 config: dict[str, Any] | None = None) -> None:
        data = copy.deepcopy(config or CONFIG)
        data["node"] = name
        self.harness = build_app(data, plugins=plugins)
        self.app = self.harness.app
        self.action = RecordingAction(f"rec:{name}", hold=hold)
        self.harness.wire("r", self.action)
        self.transport = bus.transport(name)
        self.slots = SlotSessions(self.app, self.transport, self.app.config.raw.cluster,
                                  drain_timeout=2.0)

    async def start(self) -> None:
        await self.harness.start()
        await self.transport.start()
        await self.slots.start()

    async def stop(self) -> None:
        await self.slots.stop()
        await self.transport.stop()
        await self.harness.stop()

    def twin(self, slot: int) -> MqttTwin:
        connector = self.slots.sessions[slot].connector
        assert isinstance(connector, MqttTwin)
        return connector

    @property
    def held(self) -> set[int]:
        return set(self.slots.sessions)


@pytest.fixture
async def nodes(plugins):
    bus = ClusterBus()
    made: list[Node] = []

    async def make(name: str, **options: Any) -> Node:
        node = Node(plugins, bus, name, **options)
        made.append(node)
        await node.start()
        return node

    yield make
    for node in made:
        await node.stop()


async def test_the_slots_are_divided_and_each_session_takes_the_rule_topics(nodes):
    a, b, c = [await nodes(n) for n in ("n1@h", "n2@h", "n3@h")]
    assert [len(n.held) for n in (a, b, c)] == [2, 2, 2]
    assert a.held | b.held | c.held == set(range(6))
    for node in (a, b, c):
        # the app's own session only publishes, under a client id of its own
        assert node.app.mqtt.config.clientid == f"bridge-{node.app.node}"
        assert node.harness.mqtt.subscriptions == set()
        for slot in node.held:
            twin = node.twin(slot)
            assert twin.config.clientid == f"plant-7-slot-{slot}"
            assert twin.config.share_group == "plant-7"
            assert twin.config.clean_start is False
            assert twin.config.session_expiry >= 3600
            assert twin.subscriptions == {"t/#"}
            assert twin.is_connected
    slot = min(b.held)
    mid = b.twin(slot).deliver("t/1", b"hello")
    await b.twin(slot).settle()
    assert [o["payload"] for o in b.action.outputs] == ["hello"]
    assert a.action.outputs == [] and c.action.outputs == []
    assert b.twin(slot).acked == [mid]
    described = b.slots.describe()
    assert described["slots"] == sorted(b.held)
    assert described["sessions"][str(slot)]["clientid"] == f"plant-7-slot-{slot}"
    assert described["sessions"][str(slot)]["connected"] is True


async def test_a_killed_nodes_slots_are_opened_by_the_others(nodes):
    a, b, c = [await nodes(n) for n in ("n1@h", "n2@h", "n3@h")]
    lost = set(a.held)
    await a.transport.kill()
    assert a.held == lost  # a dead node is not told; its sessions are the broker's to keep
    assert b.held | c.held == set(range(6)) and not (b.held & c.held)
    for slot in lost:
        owner = b if slot in b.held else c
        assert owner.twin(slot).config.clientid == f"plant-7-slot-{slot}"
        assert owner.twin(slot).subscriptions == {"t/#"}


async def test_a_revoked_slot_drains_its_messages_then_disconnects(nodes):
    a = await nodes("a@h", hold=True)
    assert a.held == set(range(6))
    twin = a.twin(1)
    first = twin.deliver("t/1", b"in flight")
    joining = asyncio.ensure_future(nodes("b@h"))  # the rebalance revokes a's odd slots
    await wait_until(lambda: a.slots.sessions.get(1) is None)
    assert twin.is_connected and not joining.done()  # draining: b waits for slot 1
    later = twin.deliver("t/1", b"after the revocation")
    assert len(a.action.outputs) == 1  # not taken: left to the next owner
    await asyncio.sleep(0.1)
    assert twin.acked == [] and twin.is_connected
    a.action.release_all()
    b = await joining
    assert twin.acked == [first] and later not in twin.acked
    assert not twin.is_connected
    assert a.held == {0, 2, 4} and b.held == {1, 3, 5}


async def test_a_drain_is_bounded(nodes, caplog):
    a = await nodes("a@h", hold=True)
    a.slots.drain_timeout = 0.2
    twin = a.twin(1)
    twin.deliver("t/1", b"never secured")
    b = await asyncio.wait_for(nodes("b@h"), 2.0)
    assert 1 in b.held and not twin.is_connected and twin.acked == []
    assert "1 messages still unacknowledged" in caplog.text


async def test_rule_changes_reach_every_slot_session(nodes, plugins):
    from mqferry._runtime.reconfig import apply_rule

    a, b = await nodes("a@h"), await nodes("b@h")
    data = copy.deepcopy(CONFIG)
    data["rules"]["u"] = {"sql": 'SELECT payload FROM "u/+/x"'}
    new = validate_config(data, plugins.registries(), plugins.function_table())
    for node in (a, b):
        await apply_rule(node.app, "u", new.rules["u"], new)
    for node in (a, b):
        assert node.harness.mqtt.subscriptions == set()
        for slot in node.held:
            assert node.twin(slot).subscriptions == {"t/#", "u/+/x"}
    # a whole new configuration (a reload) too
    data["rules"] = {"v": {"sql": 'SELECT payload FROM "v/#"'}}
    reload = validate_config(data, plugins.registries(), plugins.function_table())
    await a.app.reconfigure(reload)
    assert all(a.twin(s).subscriptions == {"v/#"} for s in a.held)
    assert a.harness.mqtt.subscriptions == set()
    # slots opened later take the current filters
    await b.transport.kill()
    assert a.held == set(range(6))
    assert all(a.twin(s).subscriptions == {"v/#"} for s in a.held)


async def test_the_mqtt_health_covers_the_slot_sessions(nodes):
    a = await nodes("a@h", hold=True)
    assert (await a.app.mqtt_health()).status is Status.CONNECTED
    a.app.ack_stall_after = 0.2
    a.twin(3).deliver("t/1", b"held")
    assert (await a.app.mqtt_health()).status is Status.CONNECTED
    await asyncio.sleep(0.3)
    health = await a.app.mqtt_health()
    assert health.status is Status.CONNECTING and "acknowledgements stalled" in health.reason
    a.action.release_all()
    assert (await a.app.mqtt_health()).status is Status.CONNECTED
    await a.twin(4).stop()  # its connection is down
    health = await a.app.mqtt_health()
    assert health.status is not Status.CONNECTED and health.reason.startswith("slot 4:")
    assert (await a.slots.health()).reason.startswith("slot 4:")


async def test_stop_closes_every_session_and_stops_following_the_rules(nodes, plugins):
    a = await nodes("a@h")
    twins = [a.twin(s) for s in sorted(a.held)]
    await a.slots.stop()
    assert a.slots.sessions == {} and not any(t.is_connected for t in twins)
    assert a.app.ingress == []
    await a.slots.assigned(frozenset({0}))  # a late assignment opens nothing
    assert a.slots.sessions == {}


async def test_without_a_cluster_the_app_subscribes_its_own_session(plugins):
    data = copy.deepcopy(CONFIG)
    del data["cluster"]
    async with build_app(data, plugins=plugins) as h:
        assert h.app.clustered is False
        assert h.app.mqtt.config.clientid == "bridge"
        assert h.mqtt.subscriptions == {"t/#"}


async def test_a_reconfiguration_that_strands_messages_reconnects_the_slot_sessions(tmp_path):
    from mqferry._runtime.reconfig import Controller
    from tests.api.fakes import fake_plugins, reset_fakes

    reset_fakes()
    plugins = fake_plugins()
    data = {
        "mqtt": {"server": "127.0.0.1:1"},
        "cluster": {"name": "c", "session_slots": 2, "bootstrap_hosts": "127.0.0.1:1"},
        "connectors": {"fake": {"c1": {"url": "fake://one"}}},
        "actions": {"fake": {"hold": {"connector": "c1", "parameters": {
            "topic": "h", "hold": True, "strand": True}}}},
        "rules": {"held": {"sql": 'SELECT payload FROM "h/#"', "actions": ["fake:hold"]}},
    }
    h = build_app(data, plugins=plugins, data_dir=tmp_path)
    transport = ClusterBus().transport("a@h")
    slots = SlotSessions(h.app, transport, h.app.config.raw.cluster)
    await h.start()
    await slots.start()
    try:
        twin = slots.sessions[1].connector
        assert isinstance(twin, MqttTwin)
        twin.deliver("h/1", b"held by an action that gives up")
        assert len(twin.acks) == 1
        generation = twin.acks.generation
        ctrl = Controller(h.app, plugins, data=copy.deepcopy(data))
        plan = await ctrl.change(
            lambda d: d["actions"]["fake"]["hold"]["parameters"].update(topic="new"))
        assert plan.mqtt_reconnected
        assert len(twin.acks) == 0 and twin.acks.generation == generation + 1
        assert twin.acked == [] and twin.is_connected  # the broker redelivers it
    finally:
        await slots.stop()
        await transport.stop()
        await h.stop()


def test_a_drain_fits_in_half_the_node_timeout(plugins):
    for timeout, drain in (("10s", 5.0), ("6s", 3.0), ("30s", 5.0)):
        data = copy.deepcopy(CONFIG)
        data["cluster"]["node_timeout"] = timeout
        app = build_app(data, plugins=plugins).app
        slots = SlotSessions(app, ClusterBus().transport("a"), app.config.raw.cluster)
        assert slots.drain_timeout == drain
