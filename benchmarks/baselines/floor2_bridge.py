"""The floor of a two-process Python bridge, MQTT -> Kafka: the floor bridge split in two.

    python benchmarks/baselines/floor2_bridge.py kafka --sock /tmp/f.sock --kafka 127.0.0.1:9092 \
        --kafka-topic bench-x
    python benchmarks/baselines/floor2_bridge.py mqtt --sock /tmp/f.sock --mqtt 127.0.0.1:1883 \
        --topic 'bench/x/#' --client-id floor2-1

A measuring stick, not a product, beside ``floor_bridge.py``: the same work per message and the
same guarantee (a PUBACK only after Kafka acknowledged the record; order kept), in two processes
as the C pipe has (``mosquitto_sub | kcat``). The MQTT process decodes each PUBLISH with mqferry's
compiled codec and each payload with orjson (the standard rule's ``payload.x``), and hands the
payloads of one read to the Kafka process over a Unix socket in one write; the Kafka process
appends them to aiokafka batches and sends back the packet ids of each batch Kafka acknowledged,
which the MQTT process acknowledges. It answers one question: does a second process on the data
path, with acknowledgements travelling back between them, close the whole-run gap to the pipe
under the standard load? No rule engine, events, metrics, buffers, retries or reconnects: one
error and it exits.
"""

from __future__ import annotations

import argparse
import asyncio
import struct
import sys
from collections import deque

import orjson
from aiokafka import AIOKafkaProducer
from floor_bridge import Floor  # beside this script

from mqferry._mqtt import codec

#: a chunk between the processes: its byte length, then items or packet ids
_LEN = struct.Struct("!I")
#: an item: packet id, payload length, then the payload
_ITEM = struct.Struct("!HI")


class Chunks(asyncio.Protocol):
    """Length-prefixed chunks on the Unix socket between the two processes."""

    def __init__(self, on_chunk) -> None:  # type: ignore[no-untyped-def]
        self.on_chunk = on_chunk
        self.rest = b""
        self.transport: asyncio.Transport | None = None
        self.closed: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        buf = self.rest + data if self.rest else data
        pos, end = 0, len(buf)
        while end - pos >= 4:
            (size,) = _LEN.unpack_from(buf, pos)
            if end - pos - 4 < size:
                break
            self.on_chunk(buf[pos + 4:pos + 4 + size])
            pos += 4 + size
        self.rest = buf[pos:]

    def send(self, chunk: bytes) -> None:
        if self.transport is not None:
            self.transport.write(_LEN.pack(len(chunk)) + chunk)

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.closed.done():
            self.closed.set_result(None)


# -- the MQTT process ------------------------------------------------------------------------

class MqttSide(Floor):
    """The floor's MQTT side, handing the payloads of each read to the Kafka process."""

    def __init__(self, topic_filter: str, link: Chunks) -> None:
        super().__init__(topic_filter)
        self.link = link

    def data_received(self, data: bytes) -> None:
        buf = self.rest + data if self.rest else data
        pos, end = 0, len(buf)
        loads, pack = orjson.loads, _ITEM.pack
        out: list[bytes] = []
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
                out.append(pack(msg.mid, len(msg.payload)))
                out.append(msg.payload)
        self.rest = buf[pos:]
        if out:
            self.link.send(b"".join(out))

    def acked(self, chunk: bytes) -> None:
        self.ack(list(struct.unpack(f"!{len(chunk) // 2}H", chunk)))


async def mqtt_main(args: argparse.Namespace) -> int:
    loop = asyncio.get_running_loop()
    side: MqttSide | None = None
    link = Chunks(lambda chunk: side.acked(chunk) if side is not None else None)
    for _ in range(200):
        try:
            await loop.create_unix_connection(lambda: link, args.sock)
            break
        except (FileNotFoundError, ConnectionRefusedError):
            await asyncio.sleep(0.05)
    else:
        print(f"floor2: no Kafka process at {args.sock}", file=sys.stderr)
        return 1
    host, _, port = args.mqtt.rpartition(":")
    _, side = await loop.create_connection(lambda: MqttSide(args.topic, link), host, int(port))
    side.start(args.client_id)
    await asyncio.wait([side.closed, link.closed], return_when=asyncio.FIRST_COMPLETED)
    return 0


# -- the Kafka process -----------------------------------------------------------------------

async def kafka_main(args: argparse.Namespace) -> int:
    producer = AIOKafkaProducer(bootstrap_servers=args.kafka, acks="all",
                                enable_idempotence=True, max_request_size=4 * 1024 * 1024)
    await producer.start()
    pending: list[tuple[int, bytes]] = []
    ready = asyncio.Event()
    link: Chunks | None = None

    def on_chunk(chunk: bytes) -> None:
        pos, end, unpack = 0, len(chunk), _ITEM.unpack_from
        while pos < end:
            mid, size = unpack(chunk, pos)
            pos += 6
            pending.append((mid, chunk[pos:pos + size]))
            pos += size
        ready.set()

    connected: asyncio.Future[Chunks] = asyncio.get_running_loop().create_future()

    def accept() -> Chunks:
        nonlocal link
        link = Chunks(on_chunk)
        if not connected.done():
            connected.set_result(link)
        return link

    server = await asyncio.get_running_loop().create_unix_server(accept, args.sock)
    link = await connected
    inflight: deque[tuple[asyncio.Future[object], list[int]]] = deque()

    def settle(_: asyncio.Future[object]) -> None:
        while inflight and inflight[0][0].done():
            fut, mids = inflight.popleft()
            fut.result()  # an error ends the floor
            assert link is not None
            link.send(struct.pack(f"!{len(mids)}H", *mids))

    async def send_loop() -> None:
        nonlocal pending
        while True:
            await ready.wait()
            ready.clear()
            items, pending = pending, []
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
                fut = await producer.send_batch(batch, args.kafka_topic, partition=0)
                inflight.append((fut, mids))
                fut.add_done_callback(settle)

    sender = asyncio.ensure_future(send_loop())
    done, _ = await asyncio.wait([sender, link.closed], return_when=asyncio.FIRST_COMPLETED)
    sender.cancel()
    server.close()
    await producer.stop()
    for d in done:
        if d.exception() is not None:
            print(f"floor2 Kafka process failed: {d.exception()!r}", file=sys.stderr)
            return 1
    return 0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("role", choices=["mqtt", "kafka"])
    ap.add_argument("--sock", required=True, help="the Unix socket between the two processes")
    ap.add_argument("--mqtt", help="host:port")
    ap.add_argument("--topic", help="MQTT topic filter")
    ap.add_argument("--client-id")
    ap.add_argument("--kafka", help="bootstrap host:port")
    ap.add_argument("--kafka-topic")
    args = ap.parse_args()
    return asyncio.run(mqtt_main(args) if args.role == "mqtt" else kafka_main(args))


if __name__ == "__main__":
    sys.exit(main())
