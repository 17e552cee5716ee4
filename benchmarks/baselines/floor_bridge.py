"""The floor of a one-process Python bridge, MQTT -> Kafka: the least work per message.

    python benchmarks/baselines/floor_bridge.py --mqtt 127.0.0.1:1883 --topic 'bench/x/#' \
        --kafka 127.0.0.1:9092 --kafka-topic bench-x --client-id floor-1

A measuring stick, not a product: what one asyncio process with aiokafka can carry when every
message costs only what the standard benchmark's work needs. It keeps the delivery guarantee of
mqferry's at-least-once mode (a PUBACK only after Kafka acknowledged the record; order kept, one
partition), decodes each PUBLISH with mqferry's compiled codec and each payload with orjson (the
standard rule reads ``payload.x``), and appends the payload to an aiokafka batch. It has no rule
engine, events, templates, metrics, buffers, retries, reconnects or failure handling: one error
and it exits. If this floor does not reach a target on a machine, no design of the same process
shape can; how far mqferry is above it is what its features cost per message.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections import deque

import orjson
from aiokafka import AIOKafkaProducer

from mqferry._mqtt import codec, control

RECEIVE_MAXIMUM = 1000


class Floor(asyncio.Protocol):
    """MQTT side: decode, queue for Kafka, acknowledge what Kafka acknowledged."""

    def __init__(self, topic_filter: str) -> None:
        self.filter = topic_filter
        self.transport: asyncio.Transport | None = None
        self.rest = b""
        self.pending: list[tuple[int, bytes]] = []  # (mid, value) not yet in a batch
        self.ready = asyncio.Event()
        self.closed: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport

    def start(self, client_id: str) -> None:
        assert self.transport is not None
        self.transport.write(control.connect_packet(
            client_id, keepalive=60, clean_start=True, session_expiry=0,
            receive_maximum=RECEIVE_MAXIMUM))
        self.transport.write(control.subscribe_packet(1, [(self.filter, 1)]))

    def data_received(self, data: bytes) -> None:
        buf = self.rest + data if self.rest else data
        pos, end = 0, len(buf)
        loads, pending = orjson.loads, self.pending
        while pos < end:
            frame = codec.frame_at(buf, pos, end)
            if frame is None:
                break
            start, stop = frame
            command = buf[pos]
            pos = stop
            if command & 0xF0 == codec.PUBLISH:
                msg = codec.decode_publish(command, buf, start, stop)
                loads(msg.payload).get("x")  # the standard rule's `payload.x`
                pending.append((msg.mid, msg.payload))
        self.rest = buf[pos:]
        if pending:
            self.ready.set()

    def ack(self, mids: list[int]) -> None:
        if self.transport is not None:
            self.transport.write(codec.puback_packets(mids))

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.closed.done():
            self.closed.set_result(None)


async def send_loop(floor: Floor, producer: AIOKafkaProducer, topic: str,
                    hold: int = 0) -> None:
    """Move what arrived into batches, in order; one batch at a time per partition.

    ``hold``: with that many batches in flight, wait for one to settle before the next, so that
    what arrives meanwhile leaves together in one larger batch (as mqferry's sink does, with 2);
    0 sends a batch per read.
    """
    inflight: deque[tuple[asyncio.Future[object], list[int]]] = deque()
    room = asyncio.Event()

    def settle(_: asyncio.Future[object]) -> None:
        while inflight and inflight[0][0].done():
            fut, mids = inflight.popleft()
            fut.result()  # an error ends the floor
            floor.ack(mids)
        room.set()

    while True:
        await floor.ready.wait()
        while hold and len(inflight) >= hold:
            room.clear()
            await room.wait()
        floor.ready.clear()
        items, floor.pending = floor.pending, []
        while items:
            batch = producer.create_batch()
            mids = []
            for n, (mid, value) in enumerate(items):
                if batch.append(key=None, value=value, timestamp=None) is None:
                    items = items[n:]
                    break
                mids.append(mid)
            else:
                items = []
            fut = await producer.send_batch(batch, topic, partition=0)
            inflight.append((fut, mids))
            fut.add_done_callback(settle)


def floor_arguments(doc: str) -> argparse.ArgumentParser:
    """The command line every one-process floor bridge takes (``doc``: its module docstring)."""
    ap = argparse.ArgumentParser(description=doc.split("\n", maxsplit=1)[0])
    ap.add_argument("--mqtt", required=True, help="host:port")
    ap.add_argument("--topic", required=True, help="MQTT topic filter")
    ap.add_argument("--kafka", required=True, help="bootstrap host:port")
    ap.add_argument("--kafka-topic", required=True)
    ap.add_argument("--client-id", required=True)
    return ap


async def main() -> int:
    ap = floor_arguments(__doc__)
    ap.add_argument("--hold", type=int, default=0,
                    help="batches in flight before the next waits (0: a batch per read)")
    args = ap.parse_args()
    producer = AIOKafkaProducer(bootstrap_servers=args.kafka, acks="all",
                                enable_idempotence=True, max_request_size=4 * 1024 * 1024)
    await producer.start()
    host, _, port = args.mqtt.rpartition(":")
    loop = asyncio.get_running_loop()
    _, floor = await loop.create_connection(lambda: Floor(args.topic), host, int(port))
    floor.start(args.client_id)
    sender = asyncio.ensure_future(send_loop(floor, producer, args.kafka_topic, args.hold))
    done, _ = await asyncio.wait([sender, floor.closed], return_when=asyncio.FIRST_COMPLETED)
    sender.cancel()
    await producer.stop()
    for d in done:
        if d.exception() is not None:
            print(f"floor bridge failed: {d.exception()!r}", file=sys.stderr)
            return 1
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
