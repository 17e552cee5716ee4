"""Shared MQTT ingress on three nodes against the real Kafka and Mosquitto.

Each node is its own process (``tests/integration/slot_node.py``) with the same configuration
but its ``node``: the slot group on Kafka divides the session slots, each node's slot sessions
subscribe ``$share/<cluster>/<filter>`` and the rule writes every message to one Kafka topic,
keyed by the message's sequence number. An independent consumer (kcat) counts the keys.
"""

from __future__ import annotations

import collections
import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import yaml
from paho.mqtt.enums import CallbackAPIVersion

REPO_ROOT = Path(__file__).resolve().parents[2]


class SlotNode:
    """A node process and what it printed (see ``slot_node.py``)."""

    def __init__(self, config: dict[str, Any], node: str, workdir: Path) -> None:
        workdir.mkdir(parents=True, exist_ok=True)
        path = workdir / "mqferry.yaml"
        path.write_text(yaml.safe_dump({**config, "node": node,
                                        "data_dir": str(workdir / "data")}))
        self.node = node
        self.held: set[int] = set()
        self.connected: set[int] = set()
        self.first: dict[int, list[float]] = collections.defaultdict(list)
        self.log = (workdir / "stderr.log").open("w")
        env = dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path), PYTHONUNBUFFERED="1")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "tests.integration.slot_node", str(path)], cwd=REPO_ROOT,
            env=env, stdout=subprocess.PIPE, stderr=self.log, text=True)
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            what, _, rest = line.strip().partition(" ")
            if what == "held":
                self.held = {int(s) for s in rest.split(",") if s}
                self.connected &= self.held
            elif what == "connected":
                self.connected.add(int(rest))
            elif what == "first":
                slot, when = rest.split()
                self.first[int(slot)].append(float(when))

    def kill(self) -> None:
        """``kill -9``."""
        self.proc.kill()
        self.proc.wait()

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._reader.join(5)
        assert self.proc.stdout is not None
        self.proc.stdout.close()
        self.log.close()


def _until(predicate: Any, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {timeout}s: {what}")
        time.sleep(0.05)


class Stream:
    """A QoS 1 publisher sending ``count`` numbered messages at ``rate`` per second."""

    def __init__(self, host: str, port: int, prefix: str, count: int, rate: int) -> None:
        self.count, self.rate, self.prefix = count, rate, prefix
        self.acked = 0
        self._lock = threading.Lock()
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2,
                                  client_id=f"test-stream-{uuid.uuid4().hex[:8]}",
                                  protocol=mqtt.MQTTv5)
        self.client.max_inflight_messages_set(1000)
        self.client.max_queued_messages_set(0)
        self.client.on_publish = self._on_publish
        self.client.connect(host, port)
        self.client.loop_start()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _on_publish(self, client: Any, userdata: Any, mid: int, reason: Any,
                    properties: Any) -> None:
        with self._lock:
            self.acked += 1

    def _run(self) -> None:
        began = time.monotonic()
        batch = max(self.rate // 50, 1)
        for start in range(0, self.count, batch):
            for i in range(start, min(start + batch, self.count)):
                self.client.publish(f"{self.prefix}/d{i % 10}", f"{i:07d}".encode(), qos=1)
            pause = began + (start + batch) / self.rate - time.monotonic()
            if pause > 0:
                time.sleep(pause)

    def finish(self, timeout: float = 60.0) -> None:
        self.thread.join(timeout)
        _until(lambda: self.acked >= self.count, timeout, "the broker acknowledged every publish")
        self.client.disconnect()
        self.client.loop_stop()


def _config(run: str, kafka: str, mqtt_broker: Any, topic: str, prefix: str) -> dict[str, Any]:
    return {
        "mqtt": {"server": f"{mqtt_broker.host}:{mqtt_broker.port}", "clientid": f"t-{run}"},
        "cluster": {"name": f"slots-live-{run}", "session_slots": 6, "node_timeout": "6s",
                    "heartbeat_interval": "1s", "bootstrap_hosts": kafka},
        "connectors": {"kafka_producer": {"k": {"bootstrap_hosts": kafka}}},
        "actions": {"kafka_producer": {"sink": {"connector": "k", "parameters": {
            "topic": topic, "message": {"key": "${payload}", "value": "${node}"}}}}},
        "rules": {"r": {"sql": f'SELECT payload, node FROM "{prefix}/#"',
                        "actions": ["kafka_producer:sink"]}},
    }


def _count(records: list[dict[str, Any]], count: int) -> tuple[list[str], int]:
    """The keys missing from ``records`` and how many records are duplicates."""
    keys = collections.Counter(r["key"] for r in records)
    missing = [f"{i:07d}" for i in range(count) if f"{i:07d}" not in keys]
    return missing, sum(c - 1 for c in keys.values())


def test_kill_9_of_a_node_during_a_qos1_stream_loses_no_message(
        kafka_bootstrap, mqtt_broker, new_topic, kcat_consume, tmp_path):
    run = uuid.uuid4().hex[:8]
    topic = new_topic(partitions=3)
    prefix = f"slots-live/{run}"
    config = _config(run, kafka_bootstrap, mqtt_broker, topic, prefix)
    nodes = [SlotNode(config, f"n{i}@test", tmp_path / f"n{i}") for i in (1, 2, 3)]
    try:
        _until(lambda: all(len(n.held) == 2 and n.connected == n.held for n in nodes), 60,
               "three nodes holding two connected slots each")
        assert set().union(*(n.held for n in nodes)) == set(range(6))
        count, rate = 8000, 400
        stream = Stream(mqtt_broker.host, mqtt_broker.port, prefix, count, rate)
        stream.thread.start()
        time.sleep(5)
        victim, survivors = nodes[0], nodes[1:]
        dead_slots = set(victim.held)
        killed = time.time()
        victim.kill()
        stream.finish()
        records = kcat_consume(topic, count, timeout=90)
        missing, duplicates = _count(records, count)
        # per dead slot: when a survivor's session of it handed on its first message
        took = {s: min((t for n in survivors for t in n.first[s] if t > killed), default=None)
                for s in dead_slots}
        taken = {s for s, t in took.items() if t is not None}
        first = min((t for t in took.values() if t is not None), default=killed) - killed
        last = max((t for t in took.values() if t is not None), default=killed) - killed
        print(f"\nkill -9 of {victim.node} (slots {sorted(dead_slots)}) during a {rate} msg/s "
              f"QoS 1 stream of {count}: {len(missing)} missing, {duplicates} duplicates; "
              f"the first message from its sessions {first:.1f}s after the kill, from the "
              f"last of them {last:.1f}s after")
        assert not missing, f"{len(missing)} messages never reached Kafka: {missing[:10]}"
        assert taken == dead_slots  # every session of the dead node was taken over
        by_node = collections.Counter(r["payload"] for r in records)
        assert victim.node in by_node and set(by_node) <= {n.node for n in nodes}
    finally:
        for node in nodes:
            node.stop()


def test_nodes_joining_and_leaving_during_a_qos1_stream_lose_no_message(
        kafka_bootstrap, mqtt_broker, new_topic, kcat_consume, tmp_path):
    run = uuid.uuid4().hex[:8]
    topic = new_topic(partitions=3)
    prefix = f"slots-live/{run}"
    config = _config(run, kafka_bootstrap, mqtt_broker, topic, prefix)
    nodes = [SlotNode(config, f"n{i}@test", tmp_path / f"n{i}") for i in (1, 2)]
    try:
        _until(lambda: all(len(n.held) == 3 and n.connected == n.held for n in nodes), 60,
               "two nodes holding three connected slots each")
        count, rate = 6000, 400
        stream = Stream(mqtt_broker.host, mqtt_broker.port, prefix, count, rate)
        stream.thread.start()
        time.sleep(3)
        nodes.append(SlotNode(config, "n3@test", tmp_path / "n3"))  # every slot moves (eager)
        _until(lambda: all(len(n.held) == 2 for n in nodes), 60, "three nodes, two slots each")
        time.sleep(2)
        leaving = nodes[0]
        leaving.stop()  # SIGTERM: its slots drain, then the group hands them on
        assert leaving.proc.returncode == 0
        stream.finish()
        records = kcat_consume(topic, count, timeout=90)
        missing, duplicates = _count(records, count)
        print(f"\na node joining and one leaving during a {rate} msg/s QoS 1 stream of {count}: "
              f"{len(missing)} missing, {duplicates} duplicates")
        assert not missing, f"{len(missing)} messages never reached Kafka: {missing[:10]}"
        assert {n.node for n in nodes} == set(collections.Counter(r["payload"] for r in records))
    finally:
        for node in nodes:
            node.stop()
