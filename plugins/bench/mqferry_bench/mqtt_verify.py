"""The MQTT verifier: a paho-mqtt subscriber that tallies benchmark payloads as they arrive.

It uses a persistent MQTT 5 session (clean start off, a session expiry of five minutes), so that
messages queued for it while it reconnects after a broker restart are still delivered, and it
acknowledges each message after tallying it. Packets are read with mqferry's own reader
(:func:`mqferry.mqtt.paho_io.read_packets`), and the acks of one read leave together: paho's
per-message handling would make the verifier, not the bridge, the limit of a run.
"""

from __future__ import annotations

import threading
import time
import uuid
from typing import Any

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from mqferry.mqtt.paho_io import InMessage, coalesce_writes, puback_packets, read_packets
from mqferry_bench.payload import decode
from mqferry_bench.stats import Tally


class MqttVerifier:
    """Subscribes to ``topic_filter`` and tallies every arrival.

    Args:
        host: MQTT broker host.
        port: MQTT broker port.
        topic_filter: what to subscribe to.
        qos: subscription QoS.
    """

    def __init__(self, *, host: str, port: int, topic_filter: str, qos: int = 1) -> None:
        self.tally = Tally()
        self._lock = threading.Lock()
        self._subscribed = threading.Event()
        self._filter = topic_filter
        self._qos = qos
        self._host, self._port = host, port
        self.client = paho.Client(CallbackAPIVersion.VERSION2,
                                  client_id=f"mqferry-bench-verify-{uuid.uuid4().hex[:8]}",
                                  protocol=paho.MQTTv5)
        self.client.max_inflight_messages_set(65535)
        self.client.reconnect_delay_set(1, 2)
        self.client.on_connect = self._on_connect
        self.client.on_subscribe = self._on_subscribe
        self.client.on_message = self._on_message  # QoS 2 deliveries only
        self._acks: list[int] = []
        read_packets(self.client, self._on_publish, after_read=self._send_acks)
        coalesce_writes(self.client)

    def _on_connect(self, client: Any, userdata: Any, flags: Any, rc: Any, props: Any) -> None:
        if not rc.is_failure and not flags.session_present:
            client.subscribe(self._filter, qos=self._qos)

    def _on_subscribe(self, *args: Any) -> None:
        self._subscribed.set()

    def _on_publish(self, msg: InMessage) -> None:
        self._count(msg.payload)
        if msg.qos:
            self._acks.append(msg.mid)

    def _send_acks(self) -> None:
        if self._acks:
            acks, self._acks = self._acks, []
            self.client._packet_queue(0x40, puback_packets(acks), 0, 0)

    def _on_message(self, client: Any, userdata: Any, msg: paho.MQTTMessage) -> None:
        self._count(msg.payload)

    def _count(self, payload: bytes | bytearray) -> None:
        now = time.time()
        stamp = decode(payload)
        with self._lock:
            if stamp is None:
                self.tally.add_foreign()
            else:
                self.tally.add(stamp.key, stamp.seq, stamp.sent_us, now)

    def start(self, timeout: float = 30.0) -> None:
        """Connect and subscribe; return once the broker confirmed the subscription."""
        props = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
        props.SessionExpiryInterval = 300
        self.client.connect(self._host, self._port, keepalive=30, clean_start=False,
                            properties=props)
        self.client.loop_start()
        if not self._subscribed.wait(timeout):
            self.client.loop_stop()
            raise ConnectionError(f"no SUBACK from {self._host}:{self._port} in {timeout} s")

    def stop(self) -> None:
        """Disconnect; the broker drops the session five minutes later."""
        self.client.disconnect()
        self.client.loop_stop()

    @property
    def delivered(self) -> int:
        """Distinct benchmark messages received so far."""
        return self.tally.delivered

    @property
    def arrivals(self) -> int:
        """Every message received so far."""
        return self.tally.arrivals
