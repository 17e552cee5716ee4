"""``/nodes`` and the cluster's totals of the metrics endpoints, on the in-memory cluster."""

from __future__ import annotations

import asyncio
import os
import socket
import time

import httpx
import pytest

from mqferry import ClusterConfig
from mqferry._api import create_api
from mqferry._cluster.nodes import NodeDirectory
from mqferry._version import __version__
from mqferry.testing import ClusterBus, build_app
from tests.api.conftest import BASE_CONFIG
from tests.api.helpers import publish

CLUSTER = ClusterConfig.model_validate({"name": "plant-7", "heartbeat_interval": "50ms",
                                        "node_timeout": "400ms"})


class Cluster:
    """What the start-up wiring sets as ``app.cluster``: the parts it runs."""

    def __init__(self, *parts: object) -> None:
        self.parts = list(parts)


async def eventually(check, timeout: float = 3.0) -> None:
    deadline = time.monotonic() + timeout
    while not await check():
        assert time.monotonic() < deadline, "condition not met in time"
        await asyncio.sleep(0.02)


async def test_without_a_cluster_the_nodes_are_this_node(client, controller):
    r = await client.get("/nodes")
    assert r.status_code == 200
    [node] = r.json()
    assert node["node"] == controller.app.node == "mqferry@localhost"
    assert node["node_status"] == "running" and node["version"] == __version__
    assert node["pid"] == os.getpid() and node["host"] == socket.gethostname()
    assert node["uptime"] > 0 and node["memory_total"] >= node["memory_used"] > 0
    assert {"load1", "load5", "load15", "max_fds", "process_used"} <= set(node)
    assert node["runs"] == {"sources": [], "rules": ["r1"]}
    assert "metrics" not in node  # they have their own endpoints
    one = await client.get("/nodes/mqferry@localhost")
    assert one.status_code == 200 and one.json()["node"] == "mqferry@localhost"
    missing = await client.get("/nodes/other@host")
    assert missing.status_code == 404
    assert missing.json() == {"code": "NOT_FOUND", "message": "node other@host not found"}
    publish(controller.app, "t/1", b'{"v": 1}')
    m = (await client.get("/rules/r1/metrics")).json()
    assert m["metrics"]["matched"] == 1
    assert m["node_metrics"] == [{"node": "mqferry@localhost", "metrics": m["metrics"]}]


async def test_a_viewer_reads_the_nodes(controller, keys):
    store, _ = keys
    key, secret = store.create("dashboards", role="viewer")
    api = create_api(controller, store)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=api),
                                 base_url="http://mqferry/api/v5",
                                 auth=(key.api_key, secret)) as c:
        assert (await c.get("/nodes")).status_code == 200
        assert (await c.get("/nodes/mqferry@localhost")).status_code == 200


@pytest.fixture
async def two_nodes(controller, plugins):
    """``controller``'s app as node ``mqferry@localhost`` and a second node, in one cluster."""
    bus = ClusterBus()
    here = NodeDirectory(controller.app, bus.transport("mqferry@localhost"), CLUSTER)
    controller.app.cluster = Cluster(here)
    other = build_app({**BASE_CONFIG, "node": "other@host"}, plugins=plugins)
    there = NodeDirectory(other.app, bus.transport("other@host"), CLUSTER)
    for d in (here, there):
        await d.claim()
        await d.start()
    yield here, there
    for d in (here, there):
        await d.stop()
    del controller.app.cluster


async def test_every_node_lists_the_cluster_and_sums_its_metrics(client, controller, two_nodes):
    _, there = two_nodes

    async def both_listed() -> bool:
        nodes = (await client.get("/nodes")).json()
        return [n["node"] for n in nodes] == ["mqferry@localhost", "other@host"]

    for _ in range(3):
        publish(controller.app, "t/1", b'{"v": 1}')
    there.app.rules["r1"].metrics.inc("matched", 4)
    there.app.rules["r1"].metrics.inc("passed", 4)
    there.app.actions["fake:a1"].metrics.inc("matched", 4)
    await eventually(both_listed)

    async def counted() -> bool:
        m = (await client.get("/rules/r1/metrics")).json()
        return bool(m["metrics"]["matched"] == 7)

    await eventually(counted)
    other = (await client.get("/nodes/other@host")).json()
    assert other["node_status"] == "running" and other["instance"] == there.instance
    m = (await client.get("/rules/r1/metrics")).json()
    per_node = {e["node"]: e["metrics"] for e in m["node_metrics"]}
    assert per_node["mqferry@localhost"]["matched"] == 3 and per_node["other@host"]["matched"] == 4
    assert m["metrics"]["passed"] == 7
    # the rule's rates keep EMQX's names on every node, and the total sums them
    assert "matched.rate" in per_node["other@host"] and "rate" not in per_node["other@host"]
    assert m["metrics"]["matched.rate"] == (per_node["mqferry@localhost"]["matched.rate"]
                                            + per_node["other@host"]["matched.rate"])
    a = (await client.get("/actions/fake:a1/metrics")).json()
    assert [e["node"] for e in a["node_metrics"]] == ["mqferry@localhost", "other@host"]
    assert a["metrics"]["matched"] == 7
    assert a["metrics"]["queuing"] == sum(e["metrics"]["queuing"] for e in a["node_metrics"])

    # the other node stops: it is listed as stopped, its metrics leave the totals
    await there.stop()

    async def stopped() -> bool:
        nodes = {n["node"]: n["node_status"] for n in (await client.get("/nodes")).json()}
        return nodes.get("other@host") == "stopped"

    await eventually(stopped)
    m = (await client.get("/rules/r1/metrics")).json()
    assert m["metrics"]["matched"] == 3 and len(m["node_metrics"]) == 1

    async def gone() -> bool:
        return (await client.get("/nodes/other@host")).status_code == 404

    await eventually(gone, timeout=CLUSTER.node_timeout + 1)
