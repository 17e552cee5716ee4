"""Kafka topics for benchmark runs, and a readiness probe through the bridge under test."""

from __future__ import annotations

import time
import uuid
from typing import Any

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion

#: JSON, so that a rule reading ``payload.x`` lets it through; not a benchmark payload, so a
#: verifier counts it as foreign.
PROBE = b'{"probe":"mqferry-bench"}'


def create_topic(bootstrap: str, name: str, partitions: int = 1, *,
                 max_message_bytes: int | None = None, timeout: float = 30.0) -> None:
    """Create a Kafka topic and wait until every partition has a leader.

    Args:
        bootstrap: Kafka bootstrap servers.
        name: the topic.
        partitions: its partition count.
        max_message_bytes: the topic's ``max.message.bytes``, when the broker default (1 MB)
            is too small for the run.
        timeout: seconds to wait.
    """
    from confluent_kafka.admin import AdminClient, NewTopic  # type: ignore[attr-defined]

    admin = AdminClient({"bootstrap.servers": bootstrap, "log_level": 3})
    config = {"max.message.bytes": str(max_message_bytes)} if max_message_bytes else {}
    futures = admin.create_topics([NewTopic(name, partitions, 1, config=config)],
                                  operation_timeout=timeout)
    futures[name].result(timeout)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        meta = admin.list_topics(name, timeout=timeout).topics.get(name)
        if meta is not None and meta.error is None and len(meta.partitions) == partitions and all(
                p.leader >= 0 for p in meta.partitions.values()):
            return
        time.sleep(0.1)
    raise TimeoutError(f"Kafka topic {name!r} has no leaders after {timeout} s")


def delete_topics(bootstrap: str, names: list[str], timeout: float = 30.0) -> None:
    """Delete Kafka topics (errors are ignored: this is clean-up)."""
    from confluent_kafka.admin import AdminClient

    admin = AdminClient({"bootstrap.servers": bootstrap, "log_level": 3})
    for fut in admin.delete_topics(names, operation_timeout=timeout).values():
        try:
            fut.result(timeout)
        except Exception:  # noqa: S112 - clean-up of a topic that may be gone already
            continue


def probe_mqtt_to_kafka(host: str, port: int, topic: str, bootstrap: str, kafka_topic: str,
                        *, timeout: float = 60.0) -> float:
    """Publish probes on ``topic`` until one arrives in ``kafka_topic``; the seconds it took.

    The probe payload is not a benchmark payload: a verifier counts it as foreign.
    """
    from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition

    consumer: Any = Consumer({"bootstrap.servers": bootstrap, "group.id": f"probe-{uuid.uuid4()}",
                              "enable.auto.commit": False})
    parts = consumer.list_topics(kafka_topic, timeout=timeout).topics[kafka_topic].partitions
    consumer.assign([TopicPartition(kafka_topic, p, OFFSET_BEGINNING) for p in parts])
    client = paho.Client(CallbackAPIVersion.VERSION2,
                         client_id=f"mqferry-bench-probe-{uuid.uuid4().hex[:8]}")
    client.connect(host, port)
    client.loop_start()
    start = time.monotonic()
    try:
        while time.monotonic() - start < timeout:
            client.publish(topic, PROBE, qos=1)
            for msg in consumer.consume(num_messages=100, timeout=0.5):
                if msg.error() is None and msg.value() == PROBE:
                    return time.monotonic() - start
        raise TimeoutError(f"no probe from MQTT {topic!r} reached Kafka {kafka_topic!r} in "
                           f"{timeout} s: is the bridge running?")
    finally:
        client.disconnect()
        client.loop_stop()
        consumer.close()


def probe_kafka_to_mqtt(bootstrap: str, kafka_topic: str, host: str, port: int,
                        topic_filter: str, *, timeout: float = 60.0) -> float:
    """Produce probes into ``kafka_topic`` until one arrives on ``topic_filter``; seconds taken."""
    import threading

    from confluent_kafka import Producer

    got = threading.Event()

    def on_message(client: Any, userdata: Any, msg: paho.MQTTMessage) -> None:
        if msg.payload == PROBE:
            got.set()

    subscribed = threading.Event()
    client = paho.Client(CallbackAPIVersion.VERSION2,
                         client_id=f"mqferry-bench-probe-{uuid.uuid4().hex[:8]}")
    client.on_message = on_message
    client.on_subscribe = lambda *a: subscribed.set()
    client.connect(host, port)
    client.loop_start()
    producer = Producer({"bootstrap.servers": bootstrap})
    start = time.monotonic()
    try:
        client.subscribe(topic_filter, qos=1)
        subscribed.wait(10)
        while time.monotonic() - start < timeout:
            producer.produce(kafka_topic, PROBE, b"probe")
            producer.flush(5)
            if got.wait(0.5):
                return time.monotonic() - start
        raise TimeoutError(f"no probe from Kafka {kafka_topic!r} reached MQTT {topic_filter!r} "
                           f"in {timeout} s: is the bridge running?")
    finally:
        client.disconnect()
        client.loop_stop()
