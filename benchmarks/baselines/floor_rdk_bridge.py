"""The floor bridge with librdkafka as its Kafka client, MQTT -> Kafka.

    python benchmarks/baselines/floor_rdk_bridge.py --mqtt 127.0.0.1:1883 --topic 'bench/x/#' \
        --kafka 127.0.0.1:9092 --kafka-topic bench-x --client-id floor-rdk-1

A measuring stick, not a product, beside ``floor_bridge.py``: the same MQTT side (mqferry's
compiled codec, orjson for the standard rule's ``payload.x``, a PUBACK only after Kafka
acknowledged the record, in order), with confluent-kafka's producer in place of aiokafka. The
record batches, their compression and the produce requests are then built and sent by
librdkafka's own threads, outside the interpreter's lock, as in the C pipe's ``kcat``; the
Python thread only hands each payload over (``produce``) and takes the delivery reports back
(one callback per record, on a polling thread). It answers one question: with the Kafka side
off the interpreter's thread, does a one-process Python bridge reach the pipe? No rule engine,
events, metrics, buffers or reconnects: one error and it exits.
"""

from __future__ import annotations

import asyncio
import sys
import threading
from collections import deque

from confluent_kafka import KafkaError, Producer
from floor_bridge import Floor, floor_arguments  # beside this script


class RdkFloor(Floor):
    """The floor's MQTT side, handing each payload to librdkafka as it is decoded."""

    def __init__(self, topic_filter: str, producer: Producer, topic: str) -> None:
        super().__init__(topic_filter)
        self.producer = producer
        self.topic = topic
        self.mids: deque[int] = deque()  # produced, not yet delivered, in order

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        items, self.pending = self.pending, []
        produce, topic, mids = self.producer.produce, self.topic, self.mids
        for mid, value in items:
            mids.append(mid)  # first: its delivery report may come before produce() returns
            produce(topic, value, partition=0)


class Deliveries:
    """librdkafka's delivery reports, counted on the polling thread (one partition: in order)."""

    def __init__(self) -> None:
        self.count = 0
        self.failed: list[KafkaError] = []

    def on_delivery(self, err: KafkaError | None, _msg: object) -> None:
        if err is not None:
            self.failed.append(err)
        self.count += 1


def poll_deliveries(floor: RdkFloor, deliveries: Deliveries, loop: asyncio.AbstractEventLoop,
                    stop: threading.Event) -> None:
    """Take the delivery reports; hand each poll's packet ids to the loop for their PUBACKs."""
    producer_poll, popleft = floor.producer.poll, floor.mids.popleft
    while not stop.is_set() and not deliveries.failed:
        producer_poll(0.05)
        if deliveries.count:
            mids = [popleft() for _ in range(deliveries.count)]
            deliveries.count = 0
            loop.call_soon_threadsafe(floor.ack, mids)
    if deliveries.failed:
        loop.call_soon_threadsafe(floor.connection_lost, None)  # ends main()


async def main() -> int:
    ap = floor_arguments(__doc__)
    ap.add_argument("--linger-ms", type=float, default=5.0, help="librdkafka's linger.ms")
    args = ap.parse_args()
    loop = asyncio.get_running_loop()
    deliveries = Deliveries()
    producer = Producer({
        "bootstrap.servers": args.kafka, "acks": "all", "enable.idempotence": True,
        "linger.ms": args.linger_ms, "message.max.bytes": 4 * 1024 * 1024,
        # A record counts against this until its delivery report is taken; the standard load
        # is 200,000 records, and a full queue would end the floor (it has no back-pressure).
        "queue.buffering.max.messages": 1_000_000,
        "on_delivery": deliveries.on_delivery,
    })
    host, _, port = args.mqtt.rpartition(":")
    _, floor = await loop.create_connection(
        lambda: RdkFloor(args.topic, producer, args.kafka_topic), host, int(port))
    stop = threading.Event()
    poller = threading.Thread(target=poll_deliveries, name="deliveries",
                              args=(floor, deliveries, loop, stop), daemon=True)
    poller.start()
    floor.start(args.client_id)
    await floor.closed
    stop.set()
    poller.join()
    producer.flush(5)
    if deliveries.failed:
        print(f"floor-rdk bridge failed: {deliveries.failed[0]}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
