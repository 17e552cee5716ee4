"""The in-memory cluster transport that the cluster's unit tests run on."""

import asyncio

import pytest

from mqferry import ClusterConfig, MqferryError
from mqferry.testing import ClusterBus


class Listener:
    def __init__(self):
        self.owned: set[int] = set()
        self.events: list[tuple[str, frozenset[int]]] = []

    async def assigned(self, slots):
        self.owned |= slots
        self.events.append(("assigned", slots))

    async def revoked(self, slots):
        self.owned -= slots
        self.events.append(("revoked", slots))


async def test_logs_are_shared_in_order_and_survive_a_cut():
    bus = ClusterBus()
    a, b = bus.transport("a"), bus.transport("b")
    assert await a.log("config").append("k", b"1") == 0
    assert await b.log("config").append("k", b"2") == 1
    assert await a.log("config").end() == 2
    reader = b.log("config").read(1)
    assert (await anext(reader)).value == b"2"
    a.cut()
    with pytest.raises(MqferryError, match="unreachable"):
        await a.log("config").append("k", b"3")
    await b.log("config").append("k", b"3")
    assert (await anext(reader)).value == b"3"
    later = asyncio.ensure_future(anext(a.log("config").read(2)))
    await asyncio.sleep(0.01)
    assert not later.done()  # a cut node waits for the log
    await a.restore()
    assert (await asyncio.wait_for(later, 1)).value == b"3"


async def test_slots_move_from_a_killed_node_to_the_live_ones():
    bus = ClusterBus()
    nodes = {n: (bus.transport(n), Listener()) for n in ("a", "b", "c")}
    for transport, listener in nodes.values():
        await transport.start()
        await transport.join_slots(6, listener)
    assert [sorted(listener.owned) for _, listener in nodes.values()] == [[0, 3], [1, 4], [2, 5]]
    await nodes["b"][0].kill()
    assert ("revoked", frozenset({1, 4})) not in nodes["b"][1].events  # it was not told
    assert sorted(nodes["a"][1].owned | nodes["c"][1].owned) == list(range(6))
    assert not nodes["a"][1].owned & nodes["c"][1].owned


def test_cluster_section_keeps_the_transport_fields_for_the_plugin():
    cfg = ClusterConfig.model_validate({"name": "plant-7", "bootstrap_hosts": "k:9092",
                                        "session_slots": 4})
    assert cfg.session_slots == 4 and cfg.transport_options() == {"bootstrap_hosts": "k:9092"}
    with pytest.raises(ValueError, match="node_timeout must be at least twice"):
        ClusterConfig(name="x", heartbeat_interval=5, node_timeout=6)
