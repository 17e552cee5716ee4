"""The MQTT load generator: one process per publisher connection, paho-mqtt directly.

At QoS 1 a publisher keeps at most ``inflight`` messages unacknowledged and waits for the PUBACK
of every message before it reports: a message counts as published once the broker took
responsibility for it. paho resends unacknowledged messages after a reconnect, so a broker
restart does not make the generator lose messages of its own.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion

from mqferry.bench.payload import encode

log = logging.getLogger(__name__)

#: How often (in messages) a worker copies its counters to the shared ones.
_SYNC_EVERY = 64


@dataclass(frozen=True, slots=True)
class PublisherPlan:
    """What one publisher connection sends.

    Attributes:
        host: MQTT broker host.
        port: MQTT broker port.
        topic: the topic it publishes to.
        key: its stream key (carried in every payload).
        count: messages to send, or ``None`` to send for ``duration`` seconds.
        duration: seconds to send when ``count`` is ``None``.
        rate: messages per second; 0 sends as fast as the inflight window allows.
        size: payload size in bytes.
        qos: 0 or 1.
        inflight: most unacknowledged messages at once (QoS 1).
        text_seqs: sequence numbers ``[start, stop)`` sent as non-JSON text payloads.
        oversize: payload sizes for particular sequence numbers.
        ack_timeout: seconds to wait for the last PUBACKs before giving up.
    """

    host: str
    port: int
    topic: str
    key: str
    count: int | None = None
    duration: float | None = None
    rate: float = 0.0
    size: int = 200
    qos: int = 1
    inflight: int = 1000
    text_seqs: tuple[int, int] = (0, 0)
    oversize: dict[int, int] = field(default_factory=dict)
    ack_timeout: float = 300.0


class _Acks:
    """PUBACK bookkeeping shared by the sending thread and paho's network thread."""

    def __init__(self) -> None:
        self.acked = 0
        self.cond = threading.Condition()
        self.connected = threading.Event()

    def on_publish(self, client: Any, userdata: Any, mid: int, rc: Any, props: Any) -> None:
        with self.cond:
            self.acked += 1
            self.cond.notify()

    def on_connect(self, client: Any, userdata: Any, flags: Any, rc: Any, props: Any) -> None:
        if not rc.is_failure:
            self.connected.set()


def _client(plan: PublisherPlan, acks: _Acks) -> paho.Client:
    client = paho.Client(CallbackAPIVersion.VERSION2,
                         client_id=f"mqferry-bench-{plan.key}-{uuid.uuid4().hex[:6]}",
                         protocol=paho.MQTTv311, clean_session=True)
    # The sender keeps the inflight window itself (see _send). paho's own limit would make it
    # rescan every queued message on each PUBACK, which costs more CPU the larger the window.
    client.max_inflight_messages_set(0)
    client.max_queued_messages_set(0)
    client.reconnect_delay_set(1, 2)
    client.on_publish = acks.on_publish
    client.on_connect = acks.on_connect
    return client


def publish(plan: PublisherPlan, shared: Any = None, go: Any = None) -> dict[str, Any]:
    """Send the plan's messages; return ``published``, ``acked``, ``started``, ``finished``.

    Args:
        plan: what to send.
        shared: optional ``multiprocessing`` array of three signed 64-bit ints: the counts sent
            and acknowledged so far (for a progress display), and 1 once connected.
        go: optional event to wait for after connecting, so that all publishers start together.
    """
    acks = _Acks()
    client = _client(plan, acks)
    client.connect(plan.host, plan.port, keepalive=30)
    client.loop_start()
    try:
        if not acks.connected.wait(30):
            raise ConnectionError(f"no CONNACK from {plan.host}:{plan.port} in 30 s")
        if shared is not None:
            shared[2] = 1
        if go is not None:
            go.wait()
        sent, started = _send(plan, client, acks, shared)
        finished = time.time()
        deadline = time.monotonic() + plan.ack_timeout
        with acks.cond:
            while acks.acked < sent and time.monotonic() < deadline:
                acks.cond.wait(0.2)
        acked = acks.acked
    finally:
        client.disconnect()
        client.loop_stop()
    if shared is not None:
        shared[0], shared[1] = sent, acked
    return {"key": plan.key, "published": sent, "acked": acked, "started": started,
            "finished": finished}


def _send(plan: PublisherPlan, client: paho.Client, acks: _Acks,
          shared: Any) -> tuple[int, float]:
    key, size, qos, topic, window = plan.key, plan.size, plan.qos, plan.topic, plan.inflight
    text_lo, text_hi = plan.text_seqs
    started = time.time()
    t0 = time.monotonic()
    stop_at = t0 + plan.duration if plan.count is None and plan.duration else None
    interval = 1.0 / plan.rate if plan.rate > 0 else 0.0
    seq = 0
    while True:
        if plan.count is not None and seq >= plan.count:
            break
        if stop_at is not None and (seq & 63) == 0 and time.monotonic() >= stop_at:
            break
        if interval:
            ahead = t0 + seq * interval - time.monotonic()
            if ahead > 0.001:
                time.sleep(ahead)
        if qos and seq - acks.acked >= window:
            with acks.cond:
                while seq - acks.acked >= window:
                    acks.cond.wait(0.5)
        payload = encode(key, seq, time.time_ns() // 1000, plan.oversize.get(seq, size),
                         json=not text_lo <= seq < text_hi)
        client.publish(topic, payload, qos=qos)
        seq += 1
        if shared is not None and (seq % _SYNC_EVERY) == 0:
            shared[0], shared[1] = seq, acks.acked
    return seq, started
