"""A hand-written Kafka -> MQTT bridge, the way users write one: confluent-kafka + paho-mqtt.

Consumes one Kafka topic with automatic offset commits (an offset may be committed before its
record reached MQTT) and publishes each record value at QoS 1 to ``<prefix>/<record key>``. No
rules, no at-least-once: it is the baseline mqferry is measured against.

    python benchmarks/baselines/kafka_to_mqtt_bridge.py --kafka 127.0.0.1:9092 \
        --kafka-topic bench --mqtt 127.0.0.1:1883 --prefix bench/out
"""

from __future__ import annotations

import argparse
import signal
import threading
import uuid

import paho.mqtt.client as mqtt
from confluent_kafka import Consumer


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--kafka", default="127.0.0.1:9092")
    ap.add_argument("--kafka-topic", required=True)
    ap.add_argument("--group", default=None)
    ap.add_argument("--mqtt", default="127.0.0.1:1883")
    ap.add_argument("--prefix", required=True, help="MQTT topic prefix")
    args = ap.parse_args()
    host, port = args.mqtt.rsplit(":", 1)

    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2,
                         client_id=f"baseline-k2m-{uuid.uuid4().hex[:8]}")
    client.max_inflight_messages_set(1000)
    client.connect(host, int(port))
    client.loop_start()
    consumer = Consumer({"bootstrap.servers": args.kafka,
                         "group.id": args.group or f"baseline-k2m-{uuid.uuid4().hex[:8]}",
                         "auto.offset.reset": "earliest", "enable.auto.commit": True})
    consumer.subscribe([args.kafka_topic])
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    while not stop.is_set():
        msg = consumer.poll(0.5)
        if msg is None or msg.error() is not None:
            continue
        key = (msg.key() or b"none").decode()
        client.publish(f"{args.prefix}/{key}", msg.value(), qos=1)
    consumer.close()
    client.disconnect()
    client.loop_stop()


if __name__ == "__main__":
    main()
