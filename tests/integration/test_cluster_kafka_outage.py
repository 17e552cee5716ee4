"""Three nodes ride out Kafka outages: Kafka unreachable when they start, and a Kafka restart
under load. They keep running, say so in ``/status``, converge when Kafka is back (the partitions
shared out again), and nothing produced is lost on the way to MQTT.

A private Kafka of this test (``scripts/services.sh`` in a temporary directory) is stopped and
started; the shared one is never touched. Witness: ``mosquitto_sub`` at QoS 1.
"""

from __future__ import annotations

import contextlib
import time
import uuid
from typing import Any

import httpx
import pytest

from tests.integration.cluster_nodes import ClusterNodes, kafka_to_mqtt
from tests.integration.conftest import _create_topic, _run_in_thread
from tests.integration.keyed_stream import (
    KeyedProducer,
    KeyedPublisher,
    missing,
    summary,
    tally,
)
from tests.integration.private_kafka import private_kafka_or_skip
from tests.integration.witnesses import kcat_consume

pytestmark = pytest.mark.integration

PARTITIONS = 6
MAX_INFLIGHT = 1000


def kafka_problem(nodes: ClusterNodes, index: int, sid: str) -> str | None:
    """What node ``index``'s ``/status`` says about Kafka being away, or None if it says nothing.

    The node must be running and not ready, and the source itself (not only its connector's
    periodic check) not connected, with a reason.
    """
    status = nodes.status(index)
    if status["ready"] or status["status"] != "running":
        return None
    source = nodes.component(index, "sources", sid)
    if source["status"] == "connected" or not source.get("status_reason"):
        return None
    connector = nodes.component(index, "connectors", "kafka_consumer:kc")
    return (f"source {source['status']}: {source['status_reason']}; "
            f"connector {connector['status']}")


def converged(nodes: ClusterNodes, sid: str) -> bool:
    """Every live node is ready with its source consuming, and the partitions are shared out."""
    for n in nodes.live:
        status = nodes.status(n.index)
        if not status["ready"] or nodes.component(n.index, "sources", sid)["status"] != \
                "connected":
            return False
    return nodes.shared_out(sid, PARTITIONS)


@pytest.fixture
def private_kafka(tmp_path):
    kafka = private_kafka_or_skip(tmp_path / "kafka")
    try:
        yield kafka
    finally:
        if kafka.running:
            kafka.stop()


def test_nodes_ride_out_kafka_down_at_start_and_a_restart_under_load(
        private_kafka, mqtt_broker, mosquitto_sub, tmp_path):
    kafka = private_kafka
    tag = uuid.uuid4().hex[:8]
    topic, source, prefix = f"outage-{tag}", f"outage_{tag}", f"cluster-outage-{tag}"
    sid = f"kafka_consumer:{source}"
    # The topic exists (the cluster ran before); then Kafka goes away.
    kafka.start()
    _run_in_thread(lambda: _create_topic(kafka.bootstrap, topic, PARTITIONS, 60))
    kafka.stop()

    config = kafka_to_mqtt(kafka.bootstrap, str(mqtt_broker), source=source, topic=topic,
                           prefix=prefix, max_inflight=MAX_INFLIGHT)
    nodes = ClusterNodes(config, tmp_path / "nodes", 3,
                         overrides=lambda i: {"mqtt": {"clientid": f"outage-{tag}-{i}"}})
    producer = KeyedProducer(kafka.bootstrap, topic, partitions=PARTITIONS, count=30_000,
                             rate=1500.0)
    try:
        # 1. Kafka unreachable at cluster start: the nodes start, answer and say why not ready.
        nodes.start()
        nodes.wait_until("every node says Kafka is away",
                         lambda: all(kafka_problem(nodes, n.index, sid) for n in nodes), 60,
                         detail=lambda: [nodes.status(n.index) for n in nodes])
        time.sleep(5)  # a few retries later: still running, still saying so
        said = {n.name: kafka_problem(nodes, n.index, sid) for n in nodes}
        print(f"\nKafka down at start: {said}")
        assert len(nodes.live) == 3 and all(said.values()), (said, nodes.logs())

        kafka.start()
        nodes.wait_until("the nodes converge once Kafka is up",
                         lambda: converged(nodes, sid), 120,
                             detail=lambda: [nodes.status(n.index) for n in nodes])

        # 2. A Kafka restart under load.
        with mosquitto_sub(f"{prefix}/#", 10**9, timeout=900) as sub:
            producer.start()
            deadline = time.monotonic() + 60
            while len(sub.messages) < producer.count // 3 and time.monotonic() < deadline:
                time.sleep(0.1)
            kafka.stop()
            stopped = time.monotonic()
            stopped_after = len(sub.messages)
            nodes.wait_until("every node says Kafka is away",
                             lambda: all(kafka_problem(nodes, n.index, sid) for n in nodes),
                             30, detail=lambda: [nodes.status(n.index) for n in nodes])
            print(f"every node said so {time.monotonic() - stopped:.1f}s after the stop")
            said = {n.name: kafka_problem(nodes, n.index, sid) for n in nodes}
            print(f"Kafka stopped after {stopped_after} messages: {said}")
            assert len(nodes.live) == 3, nodes.logs()
            kafka.start()
            restarted = time.monotonic()
            nodes.wait_until("the nodes converge after the restart",
                             lambda: converged(nodes, sid), 120,
                             detail=lambda: [nodes.status(n.index) for n in nodes])
            print(f"converged {time.monotonic() - restarted:.1f}s after Kafka was back: "
                  f"{nodes.assignments(sid)}")
            counts = producer.join()
            deadline = time.monotonic() + 180
            while missing(counts, tally(m.payload for m in sub.messages)) and \
                    time.monotonic() < deadline:
                time.sleep(0.5)
            time.sleep(2)  # late duplicates
            got = tally(m.payload for m in sub.messages)
        print(summary(counts, got))
        assert not missing(counts, got), (missing(counts, got), nodes.failures_text())
        dup = sum(t.duplicated for t in got.values())
        assert dup <= len(nodes) * MAX_INFLIGHT, dup
        assert len(nodes.live) == 3, nodes.logs()
    finally:
        codes = nodes.stop()
    assert all(code == 0 for code in codes.values()), (codes, nodes.failures_text())


def not_ready_because(status: dict[str, Any]) -> list[str]:
    """The reasons a node's ``/status`` gives for not being ready (empty when ready)."""
    if status["ready"]:
        return []
    reasons = []
    if status["mqtt"]["status"] != "connected":
        reasons.append(f"mqtt: {status['mqtt'].get('status_reason', status['mqtt']['status'])}")
    for kind in ("connectors", "actions", "sources"):
        reasons += [f"{item['id']}: {item.get('status_reason') or item['status']}"
                    for item in status[kind] if item["status"] != "connected"]
    cluster = status.get("cluster")
    if isinstance(cluster, dict) and cluster.get("status") not in (None, "connected"):
        reasons.append(f"cluster: {cluster.get('status_reason') or cluster['status']}")
    return reasons or ["not ready"]


def test_cluster_nodes_carry_mqtt_to_kafka_across_kafka_down_at_start_and_a_restart(
        private_kafka, mqtt_broker, tmp_path):
    kafka = private_kafka
    tag = uuid.uuid4().hex[:8]
    topic, prefix = f"outage-m2k-{tag}", f"cluster-outage-m2k/{tag}"
    kafka.start()
    _run_in_thread(lambda: _create_topic(kafka.bootstrap, topic, 3, 60))
    kafka.stop()
    config = {
        "mqtt": {"server": str(mqtt_broker), "clientid": f"outage-m2k-{tag}"},
        "cluster": {"name": f"outage-{tag}", "bootstrap_hosts": kafka.bootstrap,
                    "session_slots": 6, "heartbeat_interval": "1s", "node_timeout": "6s"},
        "connectors": {"kafka_producer": {"kp": {"bootstrap_hosts": kafka.bootstrap}}},
        "actions": {"kafka_producer": {"sink": {"connector": "kp", "parameters": {
            "topic": topic, "message": {"key": "", "value": "${payload}"}}}}},
        "rules": {"r": {"sql": f'SELECT payload FROM "{prefix}/#"',
                        "actions": ["kafka_producer:sink"]}},
    }
    nodes = ClusterNodes(config, tmp_path / "nodes", 3)
    publisher = KeyedPublisher(mqtt_broker.host, mqtt_broker.port, prefix, count=20_000,
                               rate=1000.0)
    try:
        # Kafka unreachable at cluster start: every node runs and says why it is not ready.
        for node in nodes:
            node.process.start()
        deadline = time.monotonic() + 60
        said: dict[str, list[str]] = {}
        while time.monotonic() < deadline and len(said) < len(nodes):
            for n in nodes:
                assert n.alive, f"{n.name} exited while Kafka was away:\n{n.log}"
                with contextlib.suppress(httpx.HTTPError, AssertionError):
                    said[n.name] = not_ready_because(nodes.status(n.index))
            time.sleep(0.5)
        print(f"\nKafka down at start: {said}")
        assert len(said) == 3 and all(said.values()), (said, nodes.failures_text())

        kafka.start()
        nodes.wait_until("every node ready once Kafka is up",
                         lambda: all(nodes.status(n.index)["ready"] for n in nodes), 120,
                         detail=lambda: [nodes.status(n.index) for n in nodes])
        # Until a slot session subscribed, the broker drops what nobody's shared subscription
        # takes; from then on the slots' persistent sessions keep it.
        nodes.wait_until("every slot held and connected", lambda: nodes.slots_settled(6), 120,
                         detail=lambda: [nodes.slots(n.index) for n in nodes])

        # A Kafka restart under load.
        publisher.start()
        while publisher.acked < publisher.count // 3:
            time.sleep(0.1)
        kafka.stop()
        nodes.wait_until("every node says it is not ready",
                         lambda: all(not_ready_because(nodes.status(n.index)) for n in nodes),
                         60, detail=lambda: [nodes.status(n.index) for n in nodes])
        print(f"Kafka stopped: {[not_ready_because(nodes.status(n.index)) for n in nodes]}")
        kafka.start()
        counts = publisher.join()
        nodes.wait_until("every node ready after the restart",
                         lambda: all(nodes.status(n.index)["ready"] for n in nodes), 120,
                         detail=lambda: [nodes.status(n.index) for n in nodes])
        nodes.wait_until("every slot held and connected after the restart",
                         lambda: nodes.slots_settled(6), 120,
                         detail=lambda: [nodes.slots(n.index) for n in nodes])
        records = kcat_consume(kafka.bootstrap, topic, publisher.count, timeout=180)
        got = tally(r["payload"].encode() for r in records)
        print(summary(counts, got))
        for n in nodes:
            m = nodes.metrics(n.index, "actions", "kafka_producer:sink")
            print(n.name, {k: v for k, v in m.items() if isinstance(v, int) and v})
            print("\n".join(line for line in n.process.lines
                            if "slot" in line or "WARNING" in line)[-3000:])
        assert not missing(counts, got), (missing(counts, got), nodes.failures_text())
        dup = sum(t.duplicated for t in got.values())
        # at most each slot session's receive window once, and the producer's retries
        assert dup <= 6 * 1000, dup
        assert len(nodes.live) == 3, nodes.logs()
    finally:
        codes = nodes.stop()
    assert all(code == 0 for code in codes.values()), (codes, nodes.failures_text())
