"""Kafka -> MQTT on three nodes: they share one consumer group per source, and ``kill -9`` of one
during a stream loses nothing: its partitions move to the live nodes, duplicates stay within the
in-flight window.

Real Kafka (a librdkafka producer writes the keyed stream), real Mosquitto (``mosquitto_sub`` at
QoS 1 is the witness), three ``mqferry run`` processes of the multi-node harness.
"""

from __future__ import annotations

import re
import time
import uuid

import pytest

from tests.integration.cluster_nodes import ClusterNodes, kafka_to_mqtt
from tests.integration.keyed_stream import KeyedProducer, missing, summary, tally

pytestmark = pytest.mark.integration

PARTITIONS = 6
MAX_INFLIGHT = 1000


def test_three_nodes_share_a_source_and_a_killed_node_loses_nothing(
        kafka_bootstrap, mqtt_broker, new_topic, mosquitto_sub, tmp_path):
    tag = uuid.uuid4().hex[:8]
    topic = new_topic(PARTITIONS)
    # No group_id: the default one must be the same on every node.
    source, prefix = f"k2m_{tag}", f"cluster-k2m-{tag}"
    sid = f"kafka_consumer:{source}"
    config = kafka_to_mqtt(kafka_bootstrap, str(mqtt_broker), source=source, topic=topic,
                           prefix=prefix, max_inflight=MAX_INFLIGHT)
    nodes = ClusterNodes(config, tmp_path, 3,
                         overrides=lambda i: {"mqtt": {"clientid": f"k2m-{tag}-{i}"}})
    producer = KeyedProducer(kafka_bootstrap, topic, partitions=PARTITIONS, count=40_000,
                             rate=2000.0)
    try:
        nodes.start()
        nodes.wait_until("the three nodes share the partitions",
                         lambda: nodes.shared_out(sid, PARTITIONS), timeout=90)
        groups = {re.search(r"as group (\S+)", n.log).group(1) for n in nodes}  # type: ignore[union-attr]
        assert groups == {f"mqferry-kafka-consumer-{source}"}, groups
        victim = nodes[1]
        theirs = nodes.assignment(victim.index, sid)
        with mosquitto_sub(f"{prefix}/#", 10**9, timeout=600) as sub:
            producer.start()
            deadline = time.monotonic() + 60
            while len(sub.messages) < producer.count // 4 and time.monotonic() < deadline:
                time.sleep(0.1)
            before = {n.name: nodes.metrics(n.index, "sources", sid)["received"]
                      for n in nodes if n is not victim}
            nodes.kill(victim.index)
            killed_at = time.monotonic()
            print(f"\nkilled {victim.name} (partitions {sorted(theirs)}) after "
                  f"{len(sub.messages)} messages")
            counts = producer.join()
            deadline = time.monotonic() + 120
            while missing(counts, tally(m.payload for m in sub.messages)) and \
                    time.monotonic() < deadline:
                time.sleep(0.5)
            time.sleep(2)  # late duplicates
            got = tally(m.payload for m in sub.messages)
        print(summary(counts, got))
        print(f"last delivery {time.monotonic() - killed_at:.1f}s after the kill")
        assert not missing(counts, got), (missing(counts, got), nodes.failures_text())
        dup = sum(t.duplicated for t in got.values())
        # The dead node redelivers at most its window; a live node's window only if its drain
        # before the rebalance timed out.
        assert dup <= len(nodes) * MAX_INFLIGHT, dup
        # The dead node's partitions moved to the live nodes, whose counters grew.
        assert nodes.shared_out(sid, PARTITIONS), nodes.assignments(sid)
        after = {n.name: nodes.metrics(n.index, "sources", sid)["received"] for n in nodes.live}
        print(f"received by the live nodes at the kill {before}, at the end {after}")
        assert all(after[name] > before[name] for name in before), (before, after)
        moved = set().union(*(nodes.assignment(n.index, sid) for n in nodes.live))
        assert theirs and theirs <= moved
    finally:
        codes = nodes.stop()
    assert all(code == 0 for code in codes.values()), (codes, nodes.failures_text())
