"""Kafka -> MQTT throughput: mqferry's topic mapping against a hand-written baseline, same run.

Each run preloads a fresh topic with ``--records`` records of ``--size`` bytes, starts an MQTT
subscriber (a separate process), then starts the bridge, which drains the backlog to MQTT at
QoS 1. The rate is the number of messages the subscriber received divided by the time between
its first and its last message, so start-up is not counted. Contenders alternate within a run.

- ``mqferry``: ``mqferry run`` with one ``topic_mapping`` entry (QoS 1, ``payload_template:
  ${.value}``, ``offset_reset_policy: earliest``): commits only after MQTT acks.
- ``baseline``: confluent-kafka consumer with automatic commits + paho-mqtt publishing every
  value at QoS 1 (``max_inflight_messages`` 1000, its network loop in a thread), as users write
  it.

    .venv/bin/python benchmarks/bench_kafka_to_mqtt.py --kafka 127.0.0.1:9092 \
        --mqtt 127.0.0.1:1883 --records 200000 --runs 5
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[1]


def create_topic(bootstrap: str, name: str, partitions: int) -> None:
    """Create ``name`` and wait for its leaders."""
    from confluent_kafka.admin import AdminClient, NewTopic

    admin = AdminClient({"bootstrap.servers": bootstrap})
    admin.create_topics([NewTopic(name, partitions, 1)])[name].result(30)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        meta = admin.list_topics(name, timeout=10).topics.get(name)
        if meta is not None and meta.error is None and len(meta.partitions) == partitions and all(
                p.leader >= 0 for p in meta.partitions.values()):
            return
        time.sleep(0.1)
    raise TimeoutError(f"topic {name} has no leaders")


def delete_topic(bootstrap: str, name: str) -> None:
    """Delete ``name`` (best effort)."""
    from confluent_kafka.admin import AdminClient

    AdminClient({"bootstrap.servers": bootstrap}).delete_topics([name])


def preload(bootstrap: str, topic: str, count: int, size: int) -> None:
    """Produce ``count`` records of ``size`` bytes, spread over the partitions by key."""
    from confluent_kafka import Producer

    producer = Producer({"bootstrap.servers": bootstrap, "linger.ms": 20,
                         "batch.num.messages": 10000, "queue.buffering.max.messages": 1000000})
    body = b"x" * size
    for i in range(count):
        while True:
            try:
                producer.produce(topic, body, key=str(i % 16).encode())
                break
            except BufferError:
                producer.poll(0.05)
        if i % 10000 == 0:
            producer.poll(0)
    producer.flush(60)


def subscriber(address: tuple[str, int], topic: str, count: int, ready: Any, out: Any) -> None:
    """Count messages on ``topic`` (QoS 1 subscription); report first/last arrival times."""
    import paho.mqtt.client as mqtt

    state = {"n": 0, "first": 0.0, "last": 0.0}
    done = threading.Event()

    def on_message(client: Any, userdata: Any, msg: Any) -> None:
        now = time.monotonic()
        if state["n"] == 0:
            state["first"] = now
        state["n"] += 1
        state["last"] = now
        if state["n"] >= count:
            done.set()

    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"sub-{uuid.uuid4().hex[:8]}",
                         protocol=mqtt.MQTTv5)
    client.on_message = on_message
    client.on_subscribe = lambda *a: ready.set()
    client.connect(*address)
    client.subscribe(topic, qos=1)
    client.loop_start()
    idle_since = time.monotonic()
    seen = 0
    while not done.wait(1.0):
        if state["n"] != seen:
            seen, idle_since = state["n"], time.monotonic()
        elif time.monotonic() - idle_since > 30:
            break
    client.loop_stop()
    out.put((state["n"], state["first"], state["last"]))


def baseline(bootstrap: str, topic: str, host: str, port: int, mqtt_topic: str) -> None:
    """The hand-written bridge; runs until SIGTERM."""
    import paho.mqtt.client as mqtt
    from confluent_kafka import Consumer

    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2,
                         client_id=f"baseline-{uuid.uuid4().hex[:8]}", protocol=mqtt.MQTTv5)
    client.max_inflight_messages_set(1000)
    client.connect(host, port)
    client.loop_start()
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": f"bl-{uuid.uuid4().hex}",
                         "auto.offset.reset": "earliest", "enable.auto.commit": True})
    consumer.subscribe([topic])
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    while not stop.is_set():
        for msg in consumer.consume(num_messages=500, timeout=0.1):
            if msg.error() is None:
                client.publish(mqtt_topic, msg.value(), qos=1)
    consumer.close()
    client.loop_stop()


def mqferry_config(bootstrap: str, host: str, port: int, topic: str,
                   mqtt_topic: str) -> dict[str, Any]:
    """One source with one topic mapping, QoS 1, draining from the earliest offset."""
    return {
        "mqtt": {"server": f"{host}:{port}", "clientid": f"bench-{uuid.uuid4().hex[:8]}"},
        "log": {"level": "warning"},
        "connectors": {"kafka_consumer": {"k": {"bootstrap_hosts": bootstrap}}},
        "sources": {"kafka_consumer": {"bench": {"connector": "k", "parameters": {
            "offset_reset_policy": "earliest",
            "topic_mapping": [{"kafka_topic": topic, "mqtt_topic": mqtt_topic, "qos": 1,
                               "payload_template": "${.value}"}]}}}},
    }


def one(kind: str, args: argparse.Namespace) -> float:
    """One contender, one run: messages per second as the subscriber saw them."""
    host, port = args.mqtt.rsplit(":", 1)
    topic = f"bench-k2m-{kind}-{uuid.uuid4().hex[:8]}"
    mqtt_topic = f"bench/k2m/{uuid.uuid4().hex[:8]}"
    create_topic(args.kafka, topic, args.partitions)
    preload(args.kafka, topic, args.records, args.size)
    ready, out = mp.Event(), mp.Queue()
    sub = mp.Process(target=subscriber, args=((host, int(port)), mqtt_topic, args.records,
                                              ready, out))
    sub.start()
    ready.wait(10)
    with tempfile.TemporaryDirectory() as tmp:
        if kind == "mqferry":
            cfg = Path(tmp) / "mqferry.yaml"
            cfg.write_text(yaml.safe_dump(mqferry_config(args.kafka, host, int(port), topic,
                                                         mqtt_topic)))
            cmd = [str(Path(sys.executable).with_name("mqferry")), "run", "-c", str(cfg)]
        else:
            cmd = [sys.executable, __file__, "--baseline-bridge", topic, mqtt_topic,
                   "--kafka", args.kafka, "--mqtt", args.mqtt]
        bridge = subprocess.Popen(cmd, cwd=tmp, stdout=subprocess.DEVNULL,
                                  stderr=subprocess.DEVNULL)
        n, first, last = out.get(timeout=600)
        bridge.send_signal(signal.SIGTERM)
        bridge.wait(60)
    sub.join(10)
    delete_topic(args.kafka, topic)
    if n < args.records:
        print(f"  {kind}: only {n} of {args.records} messages arrived", file=sys.stderr)
    return n / (last - first) if last > first else 0.0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--kafka", default=os.environ.get("MQFERRY_KAFKA_BOOTSTRAP") or (
        "127.0.0.1:" + os.environ.get("MQFERRY_KAFKA_PORT", "9092")))
    ap.add_argument("--mqtt", default="127.0.0.1:" + os.environ.get("MQFERRY_MQTT_PORT", "1883"))
    ap.add_argument("--records", type=int, default=200_000)
    ap.add_argument("--size", type=int, default=200)
    ap.add_argument("--partitions", type=int, default=4)
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--only", choices=("mqferry", "baseline"))
    ap.add_argument("--baseline-bridge", nargs=2, metavar=("TOPIC", "MQTT_TOPIC"),
                    help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.baseline_bridge:
        host, port = args.mqtt.rsplit(":", 1)
        baseline(args.kafka, args.baseline_bridge[0], host, int(port), args.baseline_bridge[1])
        return
    kinds = [args.only] if args.only else ["mqferry", "baseline"]
    rates: dict[str, list[float]] = {k: [] for k in kinds}
    for i in range(args.runs):
        order = kinds if i % 2 == 0 else kinds[::-1]
        for kind in order:
            rate = one(kind, args)
            rates[kind].append(rate)
            print(f"run {i + 1} {kind}: {rate:,.0f} msg/s", flush=True)
    for kind, values in rates.items():
        print(f"{kind}: median {statistics.median(values):,.0f} msg/s "
              f"(runs: {', '.join(f'{v:,.0f}' for v in values)})")
    if len(kinds) == 2:
        ratio = statistics.median(rates["mqferry"]) / statistics.median(rates["baseline"])
        print(f"mqferry / baseline: {ratio:.2f}")


if __name__ == "__main__":
    main()
