"""The node directory on the in-memory cluster: heartbeats, liveness, the node name's claim."""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import subprocess
import sys
import time

import orjson
import pytest

from mqferry import ClusterConfig, Status
from mqferry._cluster import nodes as nodes_module
from mqferry._cluster.nodes import NodeDirectory, NodeNameTaken, directory_of
from mqferry.testing import ClusterBus, ClusterTwin, build_app
from tests.api.fakes import fake_plugins

CONFIG = {
    "connectors": {"fake": {"c1": {"url": "fake://one"}}},
    "actions": {"fake": {"a1": {"connector": "c1", "parameters": {"topic": "out"}}}},
    "rules": {"r1": {"sql": 'SELECT payload.v AS v FROM "t/#"', "actions": ["fake:a1"]}},
}
CLUSTER = ClusterConfig.model_validate({"name": "plant-7", "heartbeat_interval": "50ms",
                                        "node_timeout": "400ms"})


class Cluster:
    """What the start-up wiring sets as ``app.cluster``: the parts it runs."""

    def __init__(self, *parts: object) -> None:
        self.parts = list(parts)


class Slots:
    def describe(self) -> dict[str, object]:
        return {"part": "slots", "slots": [5, 1]}


def directory(bus: ClusterBus, node: str, transport: ClusterTwin | None = None) -> NodeDirectory:
    app = build_app({**CONFIG, "node": node}, plugins=fake_plugins()).app
    return NodeDirectory(app, transport or bus.transport(node), CLUSTER)


def dead_pid() -> int:
    """The pid of a process that ran on this machine and has ended."""
    done = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True)
    return int(done.stdout)


async def eventually(check, timeout: float = 3.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "condition not met in time"
        await asyncio.sleep(0.02)


def names(d: NodeDirectory, status: str = "running") -> list[str]:
    return [b["node"] for b in d.nodes() if b["status"] == status]


async def test_every_node_lists_the_others_from_their_heartbeats():
    bus = ClusterBus()
    a, b = directory(bus, "a@h"), directory(bus, "b@h")
    b.app.cluster = Cluster(Slots(), b)  # type: ignore[attr-defined]
    for d in (a, b):
        await d.claim()
        await d.start()
    try:
        await eventually(lambda: names(a) == ["a@h", "b@h"] and names(b) == ["a@h", "b@h"])
        beat = a.find("b@h")
        assert beat is not None
        assert beat["instance"] == b.instance != a.instance
        assert beat["pid"] == os.getpid() and beat["host"] == socket.gethostname()
        assert beat["version"] and beat["uptime"] >= 0 and beat["started_at"] <= beat["at"]
        assert {"load1", "load5", "load15", "memory_total", "memory_used"} <= set(beat)
        assert beat["runs"] == {"sources": [], "rules": ["r1"], "slots": [1, 5]}
        assert set(beat["metrics"]) == {"rule:r1", "fake:a1", "mqtt"}
        assert a.find("nobody@h") is None
        assert (await a.health()).status is Status.CONNECTED
        assert directory_of(b.app) is b and directory_of(a.app) is None
    finally:
        await a.stop()
        await b.stop()


async def test_a_silent_node_drops_out_after_node_timeout_and_a_stopped_one_says_so():
    bus = ClusterBus()
    b_transport = bus.transport("b@h")
    a, b, c = directory(bus, "a@h"), directory(bus, "b@h", b_transport), directory(bus, "c@h")
    for d in (a, b, c):
        await d.start()
    await eventually(lambda: names(a) == ["a@h", "b@h", "c@h"])
    b_transport.cut()  # b's heartbeats no longer reach the cluster
    await c.stop()
    await asyncio.sleep(0.1)
    assert names(a, "stopped") == ["c@h"]
    silent_since = time.monotonic()
    await eventually(lambda: "b@h" not in names(a))
    assert time.monotonic() - silent_since < CLUSTER.node_timeout + 0.2
    await eventually(lambda: names(a, "stopped") == [])  # a stopped node goes after the timeout
    assert names(a) == ["a@h"]
    assert list(a.node_metrics()) == ["a@h"]
    health = await b.health()
    assert health.status is Status.CONNECTING and "heartbeat not written" in health.reason
    await b_transport.restore()
    await eventually(lambda: names(a) == ["a@h", "b@h"])
    await a.stop()
    await b.stop()


async def test_a_second_instance_of_a_live_node_is_refused_with_a_clear_error():
    bus = ClusterBus()
    first = directory(bus, "n1@h")
    await first.claim()
    await first.start()
    second = directory(bus, "n1@h")
    with pytest.raises(NodeNameTaken) as refused:
        await second.claim()
    message = str(refused.value)
    assert message.startswith("node 'n1@h' is already running in cluster 'plant-7' (pid "
                              f"{os.getpid()} on host {socket.gethostname()}, last heartbeat ")
    assert message.endswith("s ago): give each node its own `node`")
    assert names(first) == ["n1@h"]  # nothing else disturbed
    assert (await first.health()).status is Status.CONNECTED
    await first.stop()
    # once the first has stopped, the name is free
    third = directory(bus, "n1@h")
    await third.claim()


async def test_a_previous_life_on_this_host_or_an_old_heartbeat_does_not_block():
    bus = ClusterBus()
    dead = dead_pid()
    now = int(time.time() * 1000)
    log = bus.transport("x").log("status")
    # killed a moment ago on this machine: its pid runs no more
    await log.append("n1@h", orjson.dumps({"node": "n1@h", "instance": "old", "status": "running",
                                           "host": socket.gethostname(),
                                           "pid": dead, "at": now}))
    # another machine's node, silent for longer than node_timeout
    await log.append("n2@h", orjson.dumps({"node": "n2@h", "instance": "old", "status": "running",
                                           "host": "elsewhere", "pid": 1, "at": now - 5000}))
    # this machine's live node on another host: refused below
    await log.append("n3@h", orjson.dumps({"node": "n3@h", "instance": "other",
                                           "status": "running", "host": "elsewhere", "pid": 1,
                                           "at": now}))
    await log.append("junk", b"not json")
    for name in ("n1@h", "n2@h"):
        await directory(bus, name).claim()
    with pytest.raises(NodeNameTaken, match="pid 1 on host elsewhere"):
        await directory(bus, "n3@h").claim()


async def test_a_running_node_reports_another_instance_heartbeating_its_name(caplog):
    bus = ClusterBus()
    first, second = directory(bus, "n1@h"), directory(bus, "n1@h")
    await first.claim()
    await first.start()
    with caplog.at_level(logging.ERROR, logger="mqferry._cluster.nodes"):
        await second.start()  # started without its claim (a wiring that skipped it)
        for _ in range(100):
            health = await first.health()
            if health.status is not Status.CONNECTED:
                break
            await asyncio.sleep(0.02)
    assert health.status is Status.DISCONNECTED
    assert "another instance runs as node 'n1@h' in cluster 'plant-7'" in health.reason
    errors = [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR]
    assert any("another instance runs as node 'n1@h'" in e for e in errors)
    assert len([e for e in errors if "another instance" in e]) <= 2  # once per node, not a flood
    await second.stop()
    await asyncio.sleep(CLUSTER.node_timeout + 0.1)
    assert (await first.health()).status is Status.CONNECTED
    await first.stop()


async def test_live_heartbeats_are_aged_by_arrival_not_by_the_senders_clock():
    bus = ClusterBus()
    a = directory(bus, "a@h")
    await a.start()
    log = bus.transport("x").log("status")
    skewed = int(time.time() * 1000) - 60_000  # a node whose clock is a minute behind
    await log.append("far@h", orjson.dumps({"node": "far@h", "instance": "i", "status": "running",
                                            "host": "far", "pid": 1, "at": skewed}))
    await eventually(lambda: "far@h" in names(a))
    await a.stop()


async def test_metrics_per_node_hold_each_live_nodes_latest_snapshot():
    bus = ClusterBus()
    a, b = directory(bus, "a@h"), directory(bus, "b@h")
    b.app.rules["r1"].metrics.inc("matched", 3)
    for d in (a, b):
        await d.start()
    await eventually(lambda: list(a.node_metrics()) == ["a@h", "b@h"])
    assert a.node_metrics()["b@h"]["rule:r1"]["matched"] == 3
    a.app.rules["r1"].metrics.inc("matched", 2)
    assert a.node_metrics()["a@h"]["rule:r1"]["matched"] == 2  # this node's is made now
    await a.stop()
    await b.stop()
    await b.stop()  # idempotent
    assert (await b.health()).status is Status.STOPPED
    stopped = orjson.loads(bus.logs["status"].records[-1].value)
    assert stopped["node"] == "b@h" and stopped["status"] == "stopped"


async def test_at_start_a_node_reads_only_the_tail_of_a_long_status_log(monkeypatch):
    monkeypatch.setattr(nodes_module, "CATCH_UP_TAIL", 10)
    bus = ClusterBus()
    log = bus.transport("x").log("status")
    now = int(time.time() * 1000)

    def beat(node: str) -> bytes:
        return orjson.dumps({"node": node, "instance": "i", "status": "running",
                             "host": "far", "pid": 1, "at": now})

    await log.append("early@h", beat("early@h"))  # before the tail: not read
    for i in range(30):
        await log.append(f"old{i}@h", beat(f"old{i}@h"))
    await log.append("late@h", beat("late@h"))
    a = directory(bus, "a@h")
    await a.claim()
    listed = set(names(a))
    assert {"a@h", "late@h"} <= listed and "early@h" not in listed
    assert len(listed) == 11  # a@h and the last ten records


async def test_a_heartbeat_too_large_is_written_without_its_metrics(monkeypatch, caplog):
    monkeypatch.setattr(nodes_module, "MAX_HEARTBEAT_BYTES", 300)
    bus = ClusterBus()
    a, b = directory(bus, "a@h"), directory(bus, "b@h")
    with caplog.at_level(logging.WARNING, logger="mqferry._cluster.nodes"):
        await a.start()
        await b.start()
        await eventually(lambda: names(b) == ["a@h", "b@h"])
    beat = b.find("a@h")
    assert beat is not None and beat["metrics"] == {}
    assert beat["metrics_omitted"].endswith("bytes with the metrics")
    assert any("written without them" in r.getMessage() for r in caplog.records)
    await a.stop()
    await b.stop()
