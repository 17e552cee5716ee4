"""A hand-written MQTT -> Kafka bridge, the way users write one: paho-mqtt + confluent-kafka.

Subscribes at QoS 1 with paho's automatic PUBACK (the message is acknowledged as soon as the
callback returns, before Kafka has it) and produces each payload to one Kafka topic with
``acks=all``. No rules, no at-least-once: it is the baseline mqferry is measured against.

    python benchmarks/baselines/mqtt_to_kafka_bridge.py --mqtt 127.0.0.1:1883 \
        --topic 'bench/#' --kafka 127.0.0.1:9092 --kafka-topic bench
"""

from __future__ import annotations

import argparse
import signal
import threading
import uuid

import paho.mqtt.client as mqtt
from confluent_kafka import Producer


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--mqtt", default="127.0.0.1:1883")
    ap.add_argument("--topic", required=True, help="MQTT topic filter")
    ap.add_argument("--kafka", default="127.0.0.1:9092")
    ap.add_argument("--kafka-topic", required=True)
    args = ap.parse_args()
    host, port = args.mqtt.rsplit(":", 1)

    producer = Producer({"bootstrap.servers": args.kafka, "acks": "all", "linger.ms": 5})

    def on_message(client: mqtt.Client, userdata: object, msg: mqtt.MQTTMessage) -> None:
        while True:
            try:
                producer.produce(args.kafka_topic, msg.payload)
                break
            except BufferError:
                producer.poll(0.05)
        producer.poll(0)

    def on_connect(client: mqtt.Client, userdata: object, flags: object, rc: object,
                   props: object) -> None:
        client.subscribe(args.topic, qos=1)

    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2,
                         client_id=f"baseline-m2k-{uuid.uuid4().hex[:8]}")
    client.max_inflight_messages_set(1000)
    client.on_message = on_message
    client.on_connect = on_connect
    client.connect(host, int(port))
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    client.loop_start()
    while not stop.wait(0.1):
        producer.poll(0)
    client.disconnect()
    client.loop_stop()
    producer.flush(30)


if __name__ == "__main__":
    main()
