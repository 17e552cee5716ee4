"""The nodes of a cluster on the real Kafka: heartbeats on the status topic, ``/nodes`` on every
node, a dead node dropping out within ``node_timeout``, and a node name used twice refused."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import time
import uuid
from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx
import orjson
import pytest

from mqferry._api import KeyStore, create_api
from mqferry._cluster.nodes import NodeDirectory, NodeNameTaken
from mqferry._plugins import load_plugins
from mqferry._runtime.reconfig import Controller
from mqferry.testing import build_app

HEARTBEAT = 1.0
TIMEOUT = 6.0
RULES = {"r1": {"sql": 'SELECT payload FROM "nodes-live/#"'}}

#: A node in its own process: claims its name, heartbeats, says "up", and runs until killed.
NODE_PROCESS = """
import asyncio, sys
from mqferry._cluster.nodes import NodeDirectory, NodeNameTaken
from mqferry._plugins import load_plugins
from mqferry.testing import build_app

async def main(config):
    plugins = load_plugins()
    app = build_app(config, plugins=plugins).app
    transport = plugins.cluster_transport(app.config.raw.cluster, app.node)
    await transport.start()
    nodes = NodeDirectory(app, transport, app.config.raw.cluster)
    try:
        await nodes.claim()
    except NodeNameTaken as exc:
        print("refused:", exc, flush=True)
        return
    await nodes.start()
    print("up", flush=True)
    await asyncio.Event().wait()

import json
asyncio.run(main(json.loads(sys.argv[1])))
"""


class Cluster:
    """What the start-up wiring sets as ``app.cluster``: the parts it runs."""

    def __init__(self, *parts: object) -> None:
        self.parts = list(parts)


def config(cluster: str, node: str, bootstrap: str) -> dict[str, Any]:
    return {"node": node, "rules": RULES,
            "cluster": {"name": cluster, "bootstrap_hosts": bootstrap,
                        "heartbeat_interval": f"{HEARTBEAT}s", "node_timeout": f"{TIMEOUT}s"}}


class Node:
    """One node in this process: an app, its cluster transport on Kafka, its directory, its API."""

    def __init__(self, cfg: dict[str, Any], tmp_path: Any) -> None:
        plugins = load_plugins()
        self.app = build_app(cfg, plugins=plugins, data_dir=tmp_path).app
        section = self.app.config.raw.cluster
        assert section is not None
        self.transport = plugins.cluster_transport(section, self.app.node)
        self.nodes = NodeDirectory(self.app, self.transport, section)
        self.app.cluster = Cluster(self.nodes)  # type: ignore[attr-defined]
        store = KeyStore(tmp_path / f"{self.app.node}-keys.json")
        key, secret = store.create("t")
        self.api = httpx.AsyncClient(
            transport=httpx.ASGITransport(app=create_api(Controller(self.app, plugins, data=cfg),
                                                         store)),
            base_url="http://mqferry/api/v5", auth=(key.api_key, secret))

    async def start(self) -> None:
        await self.transport.start()
        await self.nodes.claim()
        await self.nodes.start()

    async def stop(self) -> None:
        await self.nodes.stop()
        await self.transport.stop()
        await self.api.aclose()

    async def listed(self) -> dict[str, str]:
        r = await self.api.get("/nodes")
        assert r.status_code == 200, r.text
        return {n["node"]: n["node_status"] for n in r.json()}


@pytest.fixture
def cluster_name() -> str:
    return f"nodes-{uuid.uuid4().hex[:10]}"


@pytest.fixture
async def make_node(tmp_path, kafka_bootstrap, cluster_name) -> AsyncIterator[Callable[..., Any]]:
    made: list[Node] = []

    async def make(name: str) -> Node:
        path = tmp_path / name
        path.mkdir()
        node = Node(config(cluster_name, name, kafka_bootstrap), path)
        made.append(node)
        await node.start()
        return node

    yield make
    for node in made:
        await node.stop()


async def until(check: Callable[[], Any], timeout: float) -> float:
    """Wait until ``await check()`` is true; the seconds it took."""
    began = time.monotonic()
    while not await check():
        assert time.monotonic() - began < timeout, "condition not met in time"
        await asyncio.sleep(0.1)
    return time.monotonic() - began


async def test_every_node_lists_the_live_nodes_and_a_dead_one_drops_out(
        make_node, cluster_name, kcat_consume):
    a, b, c = [await make_node(f"n{i}@live") for i in (1, 2, 3)]
    everyone = {"n1@live": "running", "n2@live": "running", "n3@live": "running"}
    for node in (a, b, c):
        await until(lambda node=node: _equal(node.listed(), everyone), 4 * HEARTBEAT + 10)
    one = (await c.api.get("/nodes/n1@live")).json()
    assert one["instance"] == a.nodes.instance and one["pid"] == os.getpid()
    assert one["runs"]["rules"] == ["r1"]
    # an independent reader of the status topic sees the heartbeats, keyed by node
    records = await asyncio.to_thread(kcat_consume, f"mqferry-{cluster_name}-status", count=6,
                                      timeout=20)
    assert {r["key"] for r in records} >= {"n1@live", "n2@live", "n3@live"}
    assert orjson.loads(records[0]["payload"])["status"] == "running"

    # n2 dies: its transport goes first, so its last heartbeat ("stopped") cannot be written
    await b.transport.stop()
    await b.nodes.stop()
    dead_at = time.monotonic()
    await until(lambda: _equal(a.listed(), {"n1@live": "running", "n3@live": "running"}),
                TIMEOUT + 3 * HEARTBEAT)
    took = time.monotonic() - dead_at
    print(f"a dead node dropped out of /nodes after {took:.1f}s (node_timeout {TIMEOUT}s)")
    assert TIMEOUT - 2 * HEARTBEAT <= took <= TIMEOUT + 2 * HEARTBEAT
    assert _node_names((await a.api.get("/rules/r1/metrics")).json()) == ["n1@live", "n3@live"]

    # n3 stops: listed as stopped at once, then gone
    await c.nodes.stop()
    await until(lambda: _equal(a.listed(), {"n1@live": "running", "n3@live": "stopped"}),
                3 * HEARTBEAT + 5)
    await until(lambda: _equal(a.listed(), {"n1@live": "running"}), TIMEOUT + 3 * HEARTBEAT)


async def test_a_second_process_with_a_live_nodes_name_is_refused_and_a_dead_ones_is_not(
        make_node, kafka_bootstrap, cluster_name, tmp_path):
    cfg = config(cluster_name, "twin@live", kafka_bootstrap)
    first = await asyncio.create_subprocess_exec(
        sys.executable, "-c", NODE_PROCESS, orjson.dumps(cfg).decode(),
        stdout=asyncio.subprocess.PIPE)
    assert first.stdout is not None
    try:
        line = await asyncio.wait_for(first.stdout.readline(), 60)
        assert line.strip() == b"up", line
        # a second instance (this process) with the same node name is refused, clearly
        with pytest.raises(NodeNameTaken) as refused:
            await make_node("twin@live")
        message = str(refused.value)
        assert message.startswith(f"node 'twin@live' is already running in cluster "
                                  f"'{cluster_name}' (pid {first.pid} on host ")
        assert message.endswith("s ago): give each node its own `node`")
        assert first.returncode is None  # nothing else disturbed
    finally:
        first.send_signal(signal.SIGKILL)
        await first.wait()
    # the killed process was a previous life of this node on this machine: not a rival
    began = time.monotonic()
    path = tmp_path / "again"
    path.mkdir()
    again = Node(cfg, path)
    try:
        await again.start()
        assert time.monotonic() - began < TIMEOUT  # not made to wait for the timeout
        assert await again.listed() == {"twin@live": "running"}
    finally:
        await again.stop()


async def _equal(listed: Any, expected: dict[str, str]) -> bool:
    return bool(await listed == expected)


def _node_names(metrics: dict[str, Any]) -> list[str]:
    return [entry["node"] for entry in metrics["node_metrics"]]
