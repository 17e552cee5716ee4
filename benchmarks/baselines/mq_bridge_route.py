"""mq-bridge (Rust core, PyPI ``mq-bridge``) as a baseline: one route, MQTT <-> Kafka, QoS 1.

mq-bridge is the strongest packaged peer a Python user would pick: routing, batching and broker
I/O run in Rust; Python only builds the route from a dict. The route has no rules; MQTT is
subscribed or published at QoS 1 and ``required_delivery`` is at-least-once (the source is
acknowledged after the sink), its own default bookkeeping otherwise.

    python benchmarks/baselines/mq_bridge_route.py --direction mqtt-kafka --mqtt 127.0.0.1:1883 \
        --topic 'bench/#' --kafka 127.0.0.1:9092 --kafka-topic bench --client-id x
"""

from __future__ import annotations

import argparse
import signal
import threading
from typing import Any

from mq_bridge import Route


def route_config(args: argparse.Namespace) -> dict[str, Any]:
    """The route of one direction."""
    mqtt = {"url": f"mqtt://{args.mqtt}", "client_id": args.client_id, "qos": 1,
            "protocol": "v3", "clean_session": False}
    kafka: dict[str, Any] = {"url": args.kafka, "topic": args.kafka_topic}
    if args.direction == "mqtt-kafka":
        source, sink = {"mqtt": {**mqtt, "topic": args.topic}}, {"kafka": kafka}
    else:
        # mq-bridge publishes a route to one MQTT topic (no per-record key in the topic), like
        # the C pipe; the bench's subscriber listens on <prefix>/#.
        source = {"kafka": {**kafka, "group_id": args.client_id}}
        sink = {"mqtt": {**mqtt, "topic": args.topic}}
    return {"input": source, "output": sink, "required_delivery": "at_least_once"}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--direction", choices=["mqtt-kafka", "kafka-mqtt"], required=True)
    ap.add_argument("--mqtt", default="127.0.0.1:1883")
    ap.add_argument("--topic", required=True, help="MQTT filter (source) or topic (sink)")
    ap.add_argument("--kafka", default="127.0.0.1:9092")
    ap.add_argument("--kafka-topic", required=True)
    ap.add_argument("--client-id", required=True)
    args = ap.parse_args()
    route = Route.from_config(route_config(args))
    done = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: done.set())
    signal.signal(signal.SIGINT, lambda *_: done.set())
    route.start()
    print("mq-bridge route started", flush=True)
    done.wait()
    route.stop()
    route.join()


if __name__ == "__main__":
    main()
