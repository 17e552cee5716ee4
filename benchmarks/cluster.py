"""Several mqferry nodes on this machine: aggregate throughput with 1, 2 and 3 nodes, and failover.

    python benchmarks/cluster.py                      # both directions, 1-3 nodes, 3 rounds
    python benchmarks/cluster.py --repeat 1 --count 60000   # a first look
    python benchmarks/cluster.py --direction kafka-mqtt --failover 2

Throughput: each round runs 1, 2 and 3 nodes one after the other (interleaved, so a slow spell of
the machine hits every node count alike). Nodes are ``mqferry run`` processes of the multi-node
harness (``tests/integration/cluster_nodes.py``) from one configuration, the bench bridges'
(``benchmarks/bridges.py``): Kafka -> MQTT, a ``kafka_consumer`` source whose consumer group the
nodes share, over a topic of ``--partitions`` partitions; MQTT -> Kafka, a rule and a Kafka
producer action with the MQTT subscription shared by ``mqtt.share_group``. The nodes are started
and settled (partitions shared out, or every node ready) before the load starts; the load is the
bench plugin's (its Kafka records carry an explicit partition, so every partition gets an equal
share); the verifiers are the bench plugin's. The figure is the median of the 1 s delivery
windows; the load average is read at the end of each run.

Failover (Kafka -> MQTT): three nodes, a steady stream, ``kill -9`` of the node holding the
partitions of some keys; reported: the time from the kill to the first message of those keys
delivered again (the gap a reader of those keys sees), loss and duplicates.

With ``--cluster`` the MQTT -> Kafka nodes have a ``cluster:`` section (session slots on Kafka)
instead of ``mqtt.share_group``, and the MQTT -> Kafka failover is measured too: three nodes, a
steady QoS 1 stream, ``kill -9`` of one; reported: when the messages stranded in its sessions reach
Kafka, counted from the kill (their takeover by the live nodes). Without session slots a dead
node's unacknowledged messages wait in its session at the broker until it returns.
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests.integration.cluster_nodes

from bridges import Brokers, mqferry_config
from harness import check_broker_store, save, spec_for
from run import machine
from tests.integration.cluster_nodes import ClusterNodes, merged

from mqferry_bench.admin import create_topic, delete_topics, probe_mqtt_to_kafka
from mqferry_bench.mqtt_verify import MqttVerifier
from mqferry_bench.payload import encode
from mqferry_bench.report import summary_row
from mqferry_bench.resources import ProcessWatch
from mqferry_bench.runner import BenchRun, run
from mqferry_bench.stats import timing

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results"
SOURCE = "kafka_consumer:src"
#: The cluster's default ``session_slots``.
SESSION_SLOTS = 8


# ------------------------------------------------------------------------------ the Kafka load


def produce(bootstrap: str, topic: str, out: Any, *, keys: int, partitions: int, count: int,
            rate: float, size: int) -> None:
    """Produce ``count`` bench payloads round-robin over keys ``p<i>``, key ``p<i>`` to
    partition ``i % partitions``; put ``(per-key counts, started, finished)`` on ``out``.

    Runs in a process of its own, so it competes with the nodes as any other producer would.
    """
    from confluent_kafka import Producer

    producer = Producer({"bootstrap.servers": bootstrap, "acks": "all",
                         "enable.idempotence": True, "linger.ms": 5, "log_level": 2,
                         "queue.buffering.max.messages": 500_000})
    names = [f"p{i}" for i in range(keys)]
    per_key = dict.fromkeys(names, 0)
    started = time.time()
    t0 = time.monotonic()
    for n in range(count):
        seq, i = divmod(n, keys)
        key = names[i]
        if rate:
            ahead = t0 + n / rate - time.monotonic()
            if ahead > 0.001:
                time.sleep(ahead)
        value = encode(key, seq, time.time_ns() // 1000, size)
        while True:
            try:
                producer.produce(topic, value, key.encode(), partition=i % partitions)
                break
            except BufferError:
                producer.poll(0.05)
        per_key[key] += 1
        if n % 256 == 0:
            producer.poll(0)
    finished = time.time()
    left = producer.flush(120)
    out.put((per_key, started, finished, left))


class KeyTimes(MqttVerifier):
    """The bench MQTT verifier, also noting when each key's messages arrive after a mark."""

    def __init__(self, **kw: Any) -> None:
        super().__init__(**kw)
        self.mark_time: float | None = None
        self.after: dict[str, list[float]] = {}

    def mark(self) -> None:
        """From now on, note arrival times per key."""
        self.mark_time = time.time()

    def _count(self, payload: bytes | bytearray) -> None:
        super()._count(payload)
        if self.mark_time is not None and payload[:1] == b"{":
            # the key sits at a fixed place in a bench payload: {"k":"p0",...
            key = bytes(payload[6:payload.index(b'"', 6)]).decode()
            self.after.setdefault(key, []).append(time.time())


# ------------------------------------------------------------------------------ node sets


def k2m_nodes(brokers: Brokers, n: int, workdir: Path, *, topic: str, prefix: str,
              tag: str) -> ClusterNodes:
    """``n`` Kafka -> MQTT nodes sharing one consumer group on ``topic``."""
    cfg = mqferry_config("mqferry-alo", "kafka-mqtt", brokers, prefix=prefix, kafka_topic=topic,
                         clientid="unused")
    cfg = merged(cfg, {"sources": {"kafka_consumer": {"src": {
        "parameters": {"group_id": f"bench-cluster-{tag}"}}}}})
    return ClusterNodes(cfg, workdir, n, name=f"bench{tag}-",
                        overrides=lambda i: {"mqtt": {"clientid": f"bench-k2m-{tag}-{i}"}})


def m2k_nodes(brokers: Brokers, n: int, workdir: Path, *, topic: str, prefix: str,
              tag: str, cluster: bool) -> ClusterNodes:
    """``n`` MQTT -> Kafka nodes sharing the rule's subscription.

    With ``cluster``, a ``cluster:`` section (session slots on Kafka, the defaults otherwise);
    without, plain nodes on one ``mqtt.share_group``.
    """
    cfg = mqferry_config("mqferry-alo", "mqtt-kafka", brokers, prefix=prefix, kafka_topic=topic,
                         clientid=f"bench-m2k-{tag}")
    if cluster:
        cfg = merged(cfg, {"cluster": {"name": f"bench-{tag}", "bootstrap_hosts": brokers.kafka}})
        return ClusterNodes(cfg, workdir, n, name=f"bench{tag}-")
    cfg = merged(cfg, {"mqtt": {"share_group": f"bench{tag}"}})
    return ClusterNodes(cfg, workdir, n, name=f"bench{tag}-",
                        overrides=lambda i: {"mqtt": {"clientid": f"bench-m2k-{tag}-{i}"}})


def pids(nodes: ClusterNodes) -> list[int]:
    """The pids of the live nodes."""
    return [node.pid for node in nodes.live]


# ------------------------------------------------------------------------------ runs


def k2m_run(brokers: Brokers, n: int, workdir: Path, *, count: int, partitions: int,
            keys: int, size: int) -> dict[str, Any]:
    """Kafka -> MQTT with ``n`` nodes: the load as fast as it goes, once the group settled."""
    tag = uuid.uuid4().hex[:6]
    topic, prefix = f"bench-cluster-k2m-{tag}", f"bench/cluster-{tag}"
    create_topic(brokers.kafka, topic, partitions)
    nodes = k2m_nodes(brokers, n, workdir / tag, topic=topic, prefix=prefix, tag=tag)
    verifier = MqttVerifier(host=brokers.mqtt_host, port=brokers.mqtt_port,
                            topic_filter=f"{prefix}/#")
    try:
        nodes.start()
        nodes.wait_until("partitions shared out", lambda: nodes.shared_out(SOURCE, partitions),
                         120)
        verifier.start()
        watch = ProcessWatch(lambda: pids(nodes))
        watch.start()
        out: Any = mp.get_context("spawn").Queue()
        proc = mp.get_context("spawn").Process(
            target=produce, args=(brokers.kafka, topic, out),
            kwargs={"keys": keys, "partitions": partitions, "count": count, "rate": 0.0,
                    "size": size})
        proc.start()
        per_key, first, last, left = out.get(timeout=600)
        proc.join(30)
        _drain(verifier, count, idle=20.0)
        usage = watch.stop()
        load = os.getloadavg()
        verifier.stop()
        report = verifier.tally.report(per_key)
        times = timing(verifier.tally.samples)
        return {"label": f"kafka-mqtt {n} node(s)", "direction": "kafka-mqtt", "nodes": n,
                "loss": report.as_dict(),
                "timing": times.as_dict(), "resources": usage.as_dict(report.delivered),
                "publish": {"published": sum(per_key.values()), "unflushed": left,
                            "rate": round(count / (last - first), 1) if last > first else None},
                "loadavg": [round(x, 2) for x in load],
                "failures": {k: v[:5] for k, v in nodes.failures().items() if v}}
    finally:
        verifier.stop()
        nodes.stop()
        delete_topics(brokers.kafka, [topic])


def _drain(verifier: MqttVerifier, want: int, idle: float) -> None:
    last, since = -1, time.monotonic()
    while verifier.delivered < want:
        if verifier.arrivals != last:
            last, since = verifier.arrivals, time.monotonic()
        elif time.monotonic() - since > idle:
            break
        time.sleep(0.1)
    time.sleep(1.0)


def m2k_run(brokers: Brokers, n: int, workdir: Path, *, count: int, size: int,
            cluster: bool) -> dict[str, Any]:
    """MQTT -> Kafka with ``n`` nodes on one shared subscription: the bench publishers at full
    speed."""
    tag = uuid.uuid4().hex[:6]
    topic, prefix = f"bench-cluster-m2k-{tag}", f"bench/cluster-{tag}"
    create_topic(brokers.kafka, topic, 1)
    nodes = m2k_nodes(brokers, n, workdir / tag, topic=topic, prefix=prefix, tag=tag,
                      cluster=cluster)
    try:
        _settle_m2k(brokers, nodes, topic, prefix, SESSION_SLOTS if cluster else 0)
        spec = spec_for("mqtt-kafka", brokers, prefix, topic, count=count, rate=0.0, size=size,
                        streams=4, qos=1, idle_timeout=20.0, settle=1.0)
        result = run(spec, watch=lambda: pids(nodes))
        result.update({"label": f"mqtt-kafka {n} node(s)", "direction": "mqtt-kafka",
                       "nodes": n, "cluster": cluster,
                       "loadavg": [round(x, 2) for x in os.getloadavg()],
                       "failures": {k: v[:5] for k, v in nodes.failures().items() if v}})
        return result
    finally:
        nodes.stop()
        delete_topics(brokers.kafka, [topic])


def _settle_m2k(brokers: Brokers, nodes: ClusterNodes, topic: str, prefix: str,
                slots: int = 0) -> None:
    nodes.start()
    nodes.wait_until("every node ready",
                     lambda: all(nodes.status(x.index)["ready"] for x in nodes), 120,
                     detail=lambda: [nodes.status(x.index) for x in nodes])
    if slots:
        # Ready does not wait for the slots: until a slot session subscribed, the broker
        # drops what is published on a shared subscription nobody holds.
        nodes.wait_until("every slot held and connected", lambda: nodes.slots_settled(slots),
                         120, detail=lambda: [nodes.slots(x.index) for x in nodes])
    probe_mqtt_to_kafka(brokers.mqtt_host, brokers.mqtt_port, f"{prefix}/probe",
                        brokers.kafka, topic)


def m2k_failover(brokers: Brokers, workdir: Path, *, count: int, rate: float,
                 size: int) -> dict[str, Any]:
    """Three cluster nodes (session slots), a steady QoS 1 stream, ``kill -9`` of one a third
    of the way through; when its sessions' messages reach Kafka.

    A message that was sent before the kill and reaches Kafka more than a second after it was
    stranded in the dead node's sessions (under load the others take milliseconds): the first
    and the last of them, counted from the kill, are when its sessions were taken over and
    drained.
    """
    tag = uuid.uuid4().hex[:6]
    topic, prefix = f"bench-cluster-m2k-fo-{tag}", f"bench/cluster-{tag}"
    create_topic(brokers.kafka, topic, 1)
    nodes = m2k_nodes(brokers, 3, workdir / tag, topic=topic, prefix=prefix, tag=tag,
                      cluster=True)
    killed: list[float] = []
    seen: list[BenchRun] = []

    def tick(bench: BenchRun) -> None:
        if not seen:
            seen.append(bench)
        if not killed and bench.delivered() >= count // 3:
            nodes.kill(1)
            killed.append(time.time())

    try:
        _settle_m2k(brokers, nodes, topic, prefix, SESSION_SLOTS)
        spec = spec_for("mqtt-kafka", brokers, prefix, topic, count=count, rate=rate, size=size,
                        streams=4, qos=1, idle_timeout=60.0, settle=2.0)
        result = run(spec, tick=tick)
        samples = seen[0].verifier.tally.samples if seen else []
        when = killed[0] if killed else time.time()
        stranded = sorted(t for t, lat in samples if t - lat / 1000 < when and t > when + 1.0)
        return {"direction": "mqtt-kafka", "nodes": 3, "rate": rate, "killed": nodes[1].name,
                "stranded": len(stranded),
                "first_after_s": round(stranded[0] - when, 2) if stranded else None,
                "last_after_s": round(stranded[-1] - when, 2) if stranded else None,
                "loss": result["loss"], "loadavg": [round(x, 2) for x in os.getloadavg()],
                "failures": {k: v[:5] for k, v in nodes.failures().items() if v}}
    finally:
        nodes.stop()
        delete_topics(brokers.kafka, [topic])


def k2m_failover(brokers: Brokers, workdir: Path, *, count: int, rate: float,
                 partitions: int, keys: int, size: int) -> dict[str, Any]:
    """Three nodes, a steady stream, ``kill -9`` of one a third of the way through."""
    tag = uuid.uuid4().hex[:6]
    topic, prefix = f"bench-cluster-fo-{tag}", f"bench/cluster-{tag}"
    create_topic(brokers.kafka, topic, partitions)
    nodes = k2m_nodes(brokers, 3, workdir / tag, topic=topic, prefix=prefix, tag=tag)
    verifier = KeyTimes(host=brokers.mqtt_host, port=brokers.mqtt_port,
                        topic_filter=f"{prefix}/#")
    try:
        nodes.start()
        nodes.wait_until("partitions shared out", lambda: nodes.shared_out(SOURCE, partitions),
                         120)
        verifier.start()
        out: Any = mp.get_context("spawn").Queue()
        proc = mp.get_context("spawn").Process(
            target=produce, args=(brokers.kafka, topic, out),
            kwargs={"keys": keys, "partitions": partitions, "count": count, "rate": rate,
                    "size": size})
        proc.start()
        while verifier.delivered < count // 3:
            time.sleep(0.05)
        victim = nodes[1]
        theirs = nodes.assignment(victim.index, SOURCE)
        dead_keys = {f"p{i}" for i in range(keys) if i % partitions in theirs}
        verifier.mark()
        nodes.kill(victim.index)
        killed = time.time()
        per_key, _first, _last, _left = out.get(timeout=600)
        proc.join(30)
        _drain(verifier, count, idle=30.0)
        load = os.getloadavg()
        verifier.stop()
        report = verifier.tally.report(per_key)
        # Arrivals of the dead node's keys after the kill: any in the first moments are on
        # their way already; the takeover is where they resume after the gap.
        arrivals = sorted(t for k in dead_keys for t in verifier.after.get(k, []))
        resumed = _resumption(arrivals, killed)
        return {"direction": "kafka-mqtt", "nodes": 3, "rate": rate,
                "killed": victim.name, "partitions": sorted(theirs),
                "resumed_after_s": None if resumed is None else round(resumed - killed, 2),
                "loss": report.as_dict(), "loadavg": [round(x, 2) for x in load],
                "failures": {k: v[:5] for k, v in nodes.failures().items() if v}}
    finally:
        verifier.stop()
        nodes.stop()
        delete_topics(brokers.kafka, [topic])


def _resumption(arrivals: list[float], killed: float, gap: float = 1.0) -> float | None:
    """The first arrival after the kill that ends a silence of ``gap`` seconds or more."""
    previous = killed
    for t in arrivals:
        if t - previous >= gap:
            return t
        previous = t
    return None


# ------------------------------------------------------------------------------ report


def _median(values: list[float]) -> float | None:
    return statistics.median(values) if values else None


def markdown(results: list[dict[str, Any]], failovers: list[dict[str, Any]]) -> str:
    """The tables for RESULTS.md."""
    out = []
    for direction in ("kafka-mqtt", "mqtt-kafka"):
        rows = [r for r in results if r["direction"] == direction]
        if not rows:
            continue
        out.append(f"\n#### {direction}\n")
        out.append("| nodes | runs | delivered | lost | dup | msg/s (median 1 s; range) "
                   "| vs 1 node | CPU s / 100k | load avg 1 min (range) |")
        out.append("|" + " --- |" * 9)
        base = None
        for n in sorted({r["nodes"] for r in rows}):
            mine = [r for r in rows if r["nodes"] == n]
            flat = [summary_row(r) for r in mine]
            rate = _median([f["msg_s"] for f in flat]) or 0.0
            base = base if base is not None else rate
            loads = [r["loadavg"][0] for r in mine]
            cpu = _median([f["cpu_s_per_100k"] for f in flat if f["cpu_s_per_100k"]])
            out.append(
                f"| {n} | {len(mine)} | {sum(f['delivered'] for f in flat):,} | "
                f"{sum(f['lost'] for f in flat):,} | {sum(f['duplicated'] for f in flat):,} | "
                f"{rate:,.0f} ({min(f['msg_s'] for f in flat):,.0f}-"
                f"{max(f['msg_s'] for f in flat):,.0f}) | "
                f"{rate / base if base else 0:.2f} | {cpu or 0:,.2f} | "
                f"{_median(loads):.2f} ({min(loads):.2f}-{max(loads):.2f}) |")
    k2m = [f for f in failovers if f["direction"] == "kafka-mqtt"]
    m2k = [f for f in failovers if f["direction"] == "mqtt-kafka"]
    if m2k:
        out.append("\n#### mqtt-kafka failover: kill -9 one of three cluster nodes\n")
        out.append("| rate msg/s | published | delivered | lost | dup | stranded in its sessions "
                   "| kill -9 to the first of them in Kafka, s | to the last, s | load avg 1 min |")
        out.append("|" + " --- |" * 9)
        for f in m2k:
            loss = f["loss"]
            out.append(f"| {f['rate']:,.0f} | {loss['published']:,} | {loss['delivered']:,} | "
                       f"{loss['lost']:,} | {loss['duplicated']:,} | {f['stranded']:,} | "
                       f"{f['first_after_s']} | {f['last_after_s']} | {f['loadavg'][0]:.2f} |")
    if k2m:
        out.append("\n#### kafka-mqtt failover: kill -9 one of three nodes\n")
        out.append("| rate msg/s | published | delivered | lost | dup | partitions moved "
                   "| kill -9 to their first delivery, s | load avg 1 min |")
        out.append("|" + " --- |" * 8)
        for f in k2m:
            loss = f["loss"]
            out.append(f"| {f['rate']:,.0f} | {loss['published']:,} | {loss['delivered']:,} | "
                       f"{loss['lost']:,} | {loss['duplicated']:,} | {f['partitions']} | "
                       f"{f['resumed_after_s']} | {f['loadavg'][0]:.2f} |")
    return "\n".join(out)


def main() -> int:
    ap = argparse.ArgumentParser(description="mqferry nodes on one machine: 1-3 nodes, failover")
    ap.add_argument("--repeat", type=int, default=3, help="rounds of 1, 2, 3 nodes")
    ap.add_argument("--nodes", type=int, nargs="+", default=[1, 2, 3])
    ap.add_argument("--count", type=int, default=150_000, help="messages per throughput run")
    ap.add_argument("--size", type=int, default=200)
    ap.add_argument("--partitions", type=int, default=6)
    ap.add_argument("--keys", type=int, default=12)
    ap.add_argument("--direction", choices=["mqtt-kafka", "kafka-mqtt"], action="append")
    ap.add_argument("--failover", type=int, default=2, help="failover runs (0: none)")
    ap.add_argument("--failover-rate", type=float, default=3000.0)
    ap.add_argument("--failover-count", type=int, default=60_000)
    ap.add_argument("--cluster", action="store_true",
                    help="MQTT -> Kafka nodes with a cluster: section (session slots) instead "
                         "of plain nodes on mqtt.share_group; also measures its failover")
    ap.add_argument("-o", "--output", type=Path, default=RESULTS / "cluster-latest.json")
    args = ap.parse_args()
    brokers = Brokers()
    check_broker_store(brokers)
    directions = args.direction or ["kafka-mqtt", "mqtt-kafka"]
    workdir = Path(tempfile.mkdtemp(prefix="mqferry-bench-cluster-"))
    print(f"machine: {machine()}; {os.cpu_count()} CPUs; load average at start "
          f"{os.getloadavg()}", file=sys.stderr)
    results: list[dict[str, Any]] = []
    for rep in range(1, args.repeat + 1):
        for direction in directions:
            for n in args.nodes:
                print(f"round {rep}: {direction}, {n} node(s) ...", file=sys.stderr)
                if direction == "kafka-mqtt":
                    r = k2m_run(brokers, n, workdir, count=args.count,
                                partitions=args.partitions, keys=args.keys, size=args.size)
                else:
                    r = m2k_run(brokers, n, workdir, count=args.count, size=args.size,
                                cluster=args.cluster)
                r["repetition"] = rep
                results.append(r)
                row = summary_row(r)
                print(f"  {row['msg_s']:,.0f} msg/s, delivered {row['delivered']:,}, "
                      f"lost {row['lost']}, dup {row['duplicated']}, load {r['loadavg']}",
                      file=sys.stderr)
    failovers = []
    if "kafka-mqtt" in directions:
        for i in range(args.failover):
            print(f"failover {i + 1} ...", file=sys.stderr)
            f = k2m_failover(brokers, workdir, count=args.failover_count,
                             rate=args.failover_rate, partitions=args.partitions,
                             keys=args.keys, size=args.size)
            failovers.append(f)
            print(f"  {f['killed']} {f['partitions']}: resumed after {f['resumed_after_s']} s, "
                  f"lost {f['loss']['lost']}, dup {f['loss']['duplicated']}", file=sys.stderr)
    if "mqtt-kafka" in directions and args.cluster:
        for i in range(args.failover):
            print(f"MQTT -> Kafka failover {i + 1} ...", file=sys.stderr)
            f = m2k_failover(brokers, workdir, count=args.failover_count,
                             rate=args.failover_rate, size=args.size)
            failovers.append(f)
            print(f"  {f['killed']}: {f['stranded']} stranded messages, the first delivered "
                  f"{f['first_after_s']} s after the kill, the last {f['last_after_s']} s; "
                  f"lost {f['loss']['lost']}, dup {f['loss']['duplicated']}", file=sys.stderr)
    save(results + failovers, args.output)
    md = f"Machine: {machine()}.\n" + markdown(results, failovers)
    args.output.with_suffix(".md").write_text(md + "\n")
    print(md)
    return 0


if __name__ == "__main__":
    sys.exit(main())
