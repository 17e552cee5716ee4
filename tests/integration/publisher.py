"""A bulk QoS 1 publisher for integration tests (paho-mqtt, waiting for every PUBACK)."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Sequence

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion


def publish_many(host: str, port: int, messages: Sequence[tuple[str, bytes]],
                 timeout: float = 60.0) -> None:
    """Publish ``(topic, payload)`` pairs at QoS 1; return once the broker acknowledged all."""
    acked: set[int] = set()
    # paho calls on_publish holding its own locks: never hold ours while calling into paho
    lock = threading.Lock()

    def on_publish(client, userdata, mid, reason_code, properties):
        with lock:
            acked.add(mid)

    client = mqtt.Client(CallbackAPIVersion.VERSION2,
                         client_id=f"test-pub-{uuid.uuid4().hex[:8]}", protocol=mqtt.MQTTv5)
    client.max_inflight_messages_set(1000)
    client.on_publish = on_publish
    client.connect(host, port)
    client.loop_start()
    try:
        mids = {client.publish(topic, payload, qos=1).mid for topic, payload in messages}
        deadline = time.monotonic() + timeout
        while True:
            with lock:
                missing = len(mids - acked)
            if not missing:
                return
            if time.monotonic() > deadline:
                raise TimeoutError(f"{missing} of {len(mids)} publishes not acknowledged")
            time.sleep(0.02)
    finally:
        client.disconnect()
        client.loop_stop()
